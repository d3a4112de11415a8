"""Experiment trackers: their names, the packages they need, and the scalars they get.
Pure Python (never imports torch, nor a tracker's package).

One contract for three users: the curriculum's ``[logging] trackers`` (validated against
:data:`TRACKERS`; the preflight checks :func:`missing_packages` before anything starts),
the trainer (which logs what :class:`ScalarMap` makes of each event it writes, through
accelerate's trackers) and ``dcvc-bench export tensorboard`` (which replays a finished
run's ``events.jsonl`` through the same :class:`ScalarMap`), so a live tracker and an
exported one hold the same tags, steps and values.

Tags are ``train/<field>`` and ``eval/<field>`` of the ``train`` and ``eval`` events
(:data:`TRAIN_SCALARS`, :data:`EVAL_SCALARS`; fields an event does not carry, or carries
as null, are left out). The step of a scalar is the step's global iteration: ``epoch *
iters_per_epoch + iter`` for ``train`` (``epoch`` counts the epochs done before it); an
``eval`` after epoch ``e`` sits at ``e * iters_per_epoch``, where that epoch's last
``train`` point is.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any, Iterable

#: Tracker name -> (the module it imports, what to ``pip install``).
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "aim": ("aim", "aim"),
}
TRAIN_SCALARS = ("loss", "mse", "psnr", "bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z", "lr")
EVAL_SCALARS = ("psnr", "bpp", "ms_ssim", "rd_loss")


def unknown_tracker(name: str) -> str | None:
    """Why ``name`` is not a tracker (with a suggestion), or None when it is one."""
    if name in TRACKERS:
        return None
    import difflib

    close = difflib.get_close_matches(name, list(TRACKERS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown tracker {name!r}{hint}; choose from {', '.join(TRACKERS)}"


def missing_packages(names: Iterable[str]) -> list[tuple[str, str]]:
    """``(tracker, pip name)`` of each tracker whose package is not installed (looked up,
    not imported)."""
    missing = []
    for name in names:
        module, pip_name = TRACKERS[name]
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append((name, pip_name))
    return missing


def missing_message(tracker: str, pip_name: str) -> str:
    return f"the {tracker!r} tracker needs the package {pip_name}, which is not installed; `pip install {pip_name}`"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class ScalarMap:
    """Events (in file order) -> ``(global step, {tag: value})`` for the trackers."""

    def __init__(self) -> None:
        self.iters_per_epoch = 0

    def __call__(self, event: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
        kind = event.get("event")
        ipe = event.get("iters_per_epoch")
        if isinstance(ipe, int) and not isinstance(ipe, bool) and ipe > 0:
            self.iters_per_epoch = ipe
        epoch = event.get("epoch")
        if kind not in ("train", "eval") or not isinstance(epoch, int):
            return None
        if kind == "train":
            it = event.get("iter")
            if not isinstance(it, int):
                return None
            step, names = epoch * self.iters_per_epoch + it, TRAIN_SCALARS
        else:
            step, names = epoch * self.iters_per_epoch, EVAL_SCALARS
        values = {f"{kind}/{name}": v for name in names if (v := _number(event.get(name))) is not None}
        return (step, values) if values else None


def hyperparameters(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """A step's resolved config as tracker hyperparameters: numbers, strings and booleans
    as they are, anything else (None, lists, specs) as its text; non-finite floats as text."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in sorted(config.items()):
        if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
            out[key] = value
        else:
            out[key] = str(value)
    return out
