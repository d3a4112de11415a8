"""The experiment trackers of a training step (``--trackers tensorboard,wandb,...``),
used through accelerate: its tracker classes in ``Accelerator(log_with=...)``,
``init_trackers`` with the step's resolved flags as hyperparameters, and
``accelerator.log`` of the scalars of every ``train``/``eval`` event the step writes
(:class:`dcvc_bench.tracking.ScalarMap`: the same tags and steps as
``dcvc-bench export tensorboard`` of its ``events.jsonl``). Only the main process logs.

Where each one writes, under ``--tracker_dir`` (the run folder when the runner launches):
TensorBoard ``tb/<run>/``; W&B ``wandb/`` in offline mode unless ``WANDB_MODE`` is set
(``wandb sync`` uploads it later); MLflow a file store ``mlruns/`` unless
``MLFLOW_TRACKING_URI`` is set (``MLFLOW_ALLOW_FILE_STORE=true`` unless set: MLflow 3
refuses a file store without it); Aim the repository ``aim/``. ``<run>`` is
``--tracker_run`` (the runner: the step id, ``<track>-s<stage>g<gop>``); the project
(W&B project, MLflow experiment, Aim experiment) is ``--tracker_project`` (the
curriculum's name) and the group (W&B group, MLflow/Aim tag ``track``) ``--tracker_group``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dcvc_bench.errors import UserError
from dcvc_bench.events import EVENT_FIELDS
from dcvc_bench.tracking import ScalarMap, hyperparameters
from dcvc_bench.train.recipe import CheckedEvents

#: Seconds between TensorBoard's flushes to disk (its default, 120, loses two minutes of
#: curves to a killed step).
TB_FLUSH_S = 5


def tracker_instances(args: Any, run_name: str) -> list[Any]:
    """accelerate's tracker objects for ``args.trackers`` (none when the step has none)."""
    names = getattr(args, "trackers", None) or []
    if not names:
        return []
    from accelerate.tracking import AimTracker, MLflowTracker, TensorBoardTracker, WandBTracker

    root = Path(args.tracker_dir)
    project, group = args.tracker_project, args.tracker_group or run_name
    made: list[Any] = []
    for name in names:
        if name == "tensorboard":
            made.append(TensorBoardTracker(run_name, str(root / "tb"), flush_secs=TB_FLUSH_S))
        elif name == "wandb":
            os.environ.setdefault("WANDB_MODE", "offline")  # offline-safe; `wandb sync` uploads later
            root.mkdir(parents=True, exist_ok=True)
            made.append(WandBTracker(project, name=run_name, group=group, dir=str(root)))
        elif name == "mlflow":
            os.environ.setdefault("MLFLOW_TRACKING_URI", (root / "mlruns").resolve().as_uri())
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks before using one
            made.append(MLflowTracker(experiment_name=project, run_name=run_name, tags={"track": group}))
        elif name == "aim":
            made.append(AimTracker(run_name, str(root / "aim"), experiment=project))
    return made


def start_trackers(accelerator: Any, args: Any) -> None:
    """``init_trackers`` with the step's resolved flags as hyperparameters (main process)."""
    if not accelerator.log_with:
        return
    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    try:
        accelerator.init_trackers(args.tracker_project, config=hyperparameters(config))
    except Exception as exc:  # a tracker's own refusal (a store, a login): one line, exit 2
        package = type(exc).__module__.split(".")[0]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"--trackers: a tracker did not start ({package}: {first})") from None


def finish_trackers(accelerator: Any) -> None:
    """Close every tracker (flushes TensorBoard, ends the W&B/MLflow/Aim run); the process
    group stays (``end_training`` would destroy it)."""
    for tracker in list(getattr(accelerator, "trackers", [])):
        tracker.finish()
    accelerator.trackers = []


class TrackedEvents(CheckedEvents):
    """The step's event writer that also logs each event's scalars to the trackers."""

    def __init__(self, path: Any, accelerator: Any, schema: dict[str, tuple[str, ...]] = EVENT_FIELDS):
        super().__init__(path, schema)
        self.accelerator = accelerator
        self.scalars = ScalarMap()

    def emit(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        event = super().emit(kind, **fields)
        mapped = self.scalars(event)
        if mapped is not None and getattr(self.accelerator, "trackers", None):
            step, values = mapped
            self.accelerator.log(values, step=step)
        return event
