"""`dcvc-bench export tensorboard RUN_DIR`: TensorBoard event files from a run's
``steps/<id>/events.jsonl``, so a run trained without trackers (or before they existed)
can be viewed in TensorBoard too.

Each step becomes one TensorBoard run, ``<out>/<step-id>/`` (default out:
``<run_dir>/tb-export``; the live tracker writes ``<run_dir>/tb``, kept apart so the two
never mix), holding the scalars :class:`dcvc_bench.tracking.ScalarMap` makes of its
events: the tags and steps the live tracker logs, at each event's own time. Exporting
again replaces the step's earlier export.

TensorBoard's own writer (``tensorboard.summary.writer.event_file_writer``, with its
protobufs) is imported here, inside the command: it needs neither torch nor TensorFlow,
and the control plane never imports it at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcvc_bench.errors import UserError
from dcvc_bench.events import read_events
from dcvc_bench.tracking import ScalarMap, missing_message, missing_packages

EXPORT_DIR = "tb-export"
_EXPORT_SUFFIX = ".dcvc-export"  # marks the files an export wrote (and the next one replaces)


def _writer_parts() -> tuple[Any, Any, Any]:
    if missing_packages(["tensorboard"]):
        raise UserError(f"export tensorboard: {missing_message('tensorboard', 'tensorboard')}")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    return EventFileWriter, event_pb2, summary_pb2


def export_tensorboard(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, int, int]:
    """Write the event files; returns (out folder, steps exported, scalars written)."""
    run_dir = Path(run_dir)
    steps_dir = run_dir / "steps"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; give one such as runs/smoke")
    step_files = sorted(p for p in steps_dir.glob("*/events.jsonl") if p.is_file()) if steps_dir.is_dir() else []
    if not step_files:
        raise UserError(f"{run_dir} has no steps/<step-id>/events.jsonl; give a folder that `dcvc-bench run` "
                        "created, such as runs/smoke")
    out = Path(out_dir) if out_dir is not None else run_dir / EXPORT_DIR
    EventFileWriter, event_pb2, summary_pb2 = _writer_parts()
    exported = written = 0
    for events_file in step_files:
        points = []
        scalars = ScalarMap()
        for event in read_events(events_file):
            mapped = scalars(event)
            if mapped is not None:
                points.append((float(event.get("t", 0.0)), *mapped))
        if not points:
            continue
        logdir = out / events_file.parent.name
        logdir.mkdir(parents=True, exist_ok=True)
        for old in logdir.glob(f"events.out.tfevents.*{_EXPORT_SUFFIX}"):
            old.unlink()
        writer = EventFileWriter(str(logdir), filename_suffix=_EXPORT_SUFFIX)
        try:
            for wall_time, step, values in points:
                summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                                     for tag, value in values.items()])
                writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))
                written += len(values)
        finally:
            writer.close()
        exported += 1
    return out, exported, written


def export_tensorboard_command(run_dir: str | Path, out_dir: str | Path | None = None) -> int:
    out, steps, scalars = export_tensorboard(run_dir, out_dir)
    print(f"wrote {scalars} scalars of {steps} step{'' if steps == 1 else 's'} to {out}; "
          f"view them with `tensorboard --logdir {out}`")
    return 0
