"""How an attempt of a step ended, from what the runner can see: the trainer's events,
its exit, its log, and the ``final`` checkpoint on disk.

- ``done``: ``step_end`` done and the step's own ``final`` verified by content;
- ``interrupted`` / ``diverged``: as the trainer reported (or the runner stopped it);
- ``write-error``: the trainer's one-line error (or its ``step_end`` message) is a write
  the file system refused (:data:`~dcvc_bench.checkpoints.WRITE_ERRNOS`), or it crashed
  while the run folder's file system has less free space than a checkpoint of its track
  takes (a disk so full that not even the error line reached the log): a full disk is
  not a crash, so it is not retried, and `run` exits 2 saying what to free;
- ``refused``: a one-line ``error: ...`` and either no event yet or the trainer's exit
  code 2 (bad input; ``accelerate launch`` reports it in the log and exits 1 itself);
- ``failed``: anything else (a crash), which the runner retries.

Only this attempt's part of the log is read (``StepExit.log_offset``): an error line of an
earlier run must not decide this one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from dcvc_bench.checkpoints import is_write_error_text
from dcvc_bench.curriculum import RunPaths, Step
from dcvc_bench.errors import EXIT_USAGE
from dcvc_bench.runner.display import human_size
from dcvc_bench.runner.launcher import StepExit
from dcvc_bench.runner.resume import probe

_ACCELERATE_EXIT = re.compile(r"returned non-zero exit status (-?\d+)")
#: Free space below which a crash counts as a full disk when the track has no checkpoint yet.
MIN_FREE_BYTES = 16 << 20


def classify(step: Step, result: StepExit, paths: RunPaths) -> tuple[str, str]:
    """(done | interrupted | diverged | failed | refused | write-error, message) of an
    attempt. ``refused`` and ``write-error`` are never retried."""
    said = (result.step_end or {}).get("message") or ""
    if result.status == "done":
        final = probe(paths.own_checkpoint(step, "final"), verify=True)
        if final.written_by(step) and final.finished:
            return "done", said
        return "failed", f"the trainer reported done but {final.path} is missing or does not match its sidecar"
    log = paths.stdout_log(step.id)
    error = last_error_line(log, start=result.log_offset)
    for text in (error, said):
        if is_write_error_text(text):  # a full disk is not a crash: a retry would fail the same way
            return "write-error", f"the trainer could not write: {_strip_error(text)}"
    if result.stopped_by_runner:
        if result.status == "interrupted":
            return "interrupted", said or "stopped; its latest checkpoint (the end of its last finished epoch) is kept"
        return "interrupted", "stopped by the runner without a clean end; it continues from its last saved epoch"
    if result.status == "interrupted":
        return "interrupted", f"the trainer was stopped from outside ({said})"
    if result.status == "diverged":
        return "diverged", said or "diverged"
    if result.status == "failed":
        return "failed", said or "failed"
    how = "before writing any event" if result.events == 0 else "without reporting an end"
    if error and (result.events == 0 or EXIT_USAGE in (result.returncode, trainer_exit_code(log, result.log_offset))):
        # The trainer refused its input (bad flag, missing data or weights; exit code 2):
        # a retry would be refused the same way.
        return "refused", (f"the trainer refused to start: {error}" if result.events == 0
                           else f"the trainer stopped on bad input: {error}")
    crash = f"the trainer exited with code {result.returncode} {how}" + (f" ({error})" if error else "")
    short = disk_too_full(paths, step)
    if short is not None:
        return "write-error", (f"{crash}, and the file system of {paths.run_dir} has {human_size(short[0])} "
                               f"free, less than a checkpoint of this track takes ({human_size(short[1])})")
    return "failed", crash


def disk_too_full(paths: RunPaths, step: Step) -> tuple[int, int] | None:
    """(free bytes, bytes needed) when the run folder's file system cannot take another
    checkpoint of the step's track (the largest one there, else MIN_FREE_BYTES)."""
    try:
        free = shutil.disk_usage(paths.run_dir).free
    except OSError:
        return None
    sizes = []
    for pth in paths.checkpoints_dir(step.track).glob("*.pth"):
        try:
            sizes.append(pth.stat().st_size)
        except OSError:
            continue
    need = max(sizes, default=MIN_FREE_BYTES)
    return (free, need) if free < need else None


def _log_tail(log: Path, start: int = 0, tail_bytes: int = 65536) -> list[str]:
    """The lines of a step's log after ``start`` (this attempt's), at most the last
    ``tail_bytes`` of them."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(fh.seek(0, os.SEEK_END) - tail_bytes, start, 0))
            return fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def last_error_line(log: Path, tail_bytes: int = 65536, start: int = 0) -> str | None:
    """The last ``error: ...`` line of a step's log after ``start`` (the trainer's
    one-line UserError), so a step refused by the trainer says why without opening the log."""
    lines = _log_tail(log, start, tail_bytes)
    return next((line.strip() for line in reversed(lines) if line.startswith("error: ")), None)


def trainer_exit_code(log: Path, start: int = 0) -> int | None:
    """The trainer's exit code as ``accelerate launch`` reports it in the log (accelerate
    itself then exits with 1, whatever the trainer's code was)."""
    for line in reversed(_log_tail(log, start)):
        match = _ACCELERATE_EXIT.search(line)
        if match:
            return int(match.group(1))
    return None


def _strip_error(line: str | None) -> str:
    line = line or ""
    return line[len("error: "):] if line.startswith("error: ") else line
