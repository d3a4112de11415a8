"""``[logging]``: the experiment trackers every P-frame step logs to. Pure Python.

    [logging]
    trackers = ["tensorboard", "wandb"]   # any of tensorboard, wandb, mlflow, aim

The names are :data:`dcvc_bench.tracking.TRACKERS`; whether each one's package is
installed is the preflight's check (:mod:`~dcvc_bench.curriculum.preflight`). The
trackers are not part of a step's config: adding one never re-runs a finished step.
"""

from __future__ import annotations

from pydantic import field_validator

from dcvc_bench.curriculum.base import CurriculumModel as _Model
from dcvc_bench.curriculum.messages import rule as _rule, show as _show
from dcvc_bench.tracking import unknown_tracker


class LoggingSpec(_Model):
    trackers: list[str] = []

    @field_validator("trackers", mode="before")
    @classmethod
    def _known(cls, value: object) -> object:
        if not isinstance(value, list):
            return value  # the type check says what it must be
        for i, name in enumerate(value):
            if not isinstance(name, str):
                raise _rule(f"must be a tracker name (a string), got {_show(name)}", i)
            if (problem := unknown_tracker(name)) is not None:
                raise _rule(problem, i)
            if name in value[:i]:
                raise _rule(f"{name!r} is listed twice", i)
        return value
