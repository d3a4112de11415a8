"""The run ledger (``runs/<name>/ledger.json``): what the runner knows about each step.

One JSON document, rewritten whole with :func:`~dcvc_bench.checkpoints.atomic_write_json`
on every change, so a reader (``status``, the TUI, a second terminal) sees the previous
state or the next one, never half of one. Reading is tolerant: unknown fields are
ignored, missing or mistyped fields take their defaults, records of steps that are no
longer in the curriculum are kept. The ledger is a record, not the only truth: resume
decisions also look at the checkpoints on disk (see :mod:`dcvc_bench.runner.resume`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoints import atomic_write_json, json_safe

LEDGER_FILE = "ledger.json"
LEDGER_VERSION = 1
STATUSES = ("pending", "running", "done", "failed", "interrupted", "diverged", "skipped")
#: Statuses of a step that started and did not finish: its own latest may continue it.
UNFINISHED = ("running", "interrupted", "failed", "diverged")
#: Set only by the user (`dcvc-bench skip`, `k` in the TUI): the step is never launched and
#: its track continues as if it were absent, until `dcvc-bench skip --undo`.
SKIPPED = "skipped"


@dataclass
class StepRecord:
    """One step's entry. ``config`` is the resolved configuration whose hash is
    ``config_hash``; it is kept so that a later change can be explained key by key."""

    id: str
    track: str = ""
    status: str = "pending"
    config_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    epochs_done: int = 0
    epochs: int = 0
    best_loss: float | None = None
    last_eval: dict[str, Any] | None = None
    start_kind: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    message: str = ""
    #: The status a skipped step had before it was skipped (what ``--undo`` restores).
    skipped_from: str | None = None
    #: The step's Slurm job (its last one) and what Slurm last said of it (PENDING, RUNNING,
    #: COMPLETED, TIMEOUT, ...); None for a local step.
    job_id: str | None = None
    scheduler_state: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> StepRecord | None:
        """A record from parsed JSON; None when it has no usable id."""
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            return None
        record = cls(id=obj["id"])
        for f in fields(cls):
            if f.name == "id" or f.name not in obj:
                continue
            value = _coerce(f.name, obj[f.name])
            if value is not _INVALID:
                setattr(record, f.name, value)
        if record.status not in STATUSES:
            record.status = "pending"
        return record

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


_INVALID = object()
_INTS = ("attempts", "epochs_done", "epochs", "pid")
_FLOATS = ("best_loss", "started_at", "finished_at")
_STRS = ("track", "status", "config_hash", "start_kind", "message", "skipped_from", "job_id", "scheduler_state")


def _coerce(name: str, value: Any) -> Any:
    """The value of field ``name`` as its type, None where None is allowed, else _INVALID."""
    if value is None:
        return None if name in _FLOATS + ("config_hash", "start_kind", "pid", "last_eval", "skipped_from", "job_id",
                                          "scheduler_state") \
            else _INVALID
    if name in _INTS:
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _INVALID
    if name in _FLOATS:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _INVALID
    if name in _STRS:
        return value if isinstance(value, str) else _INVALID
    if name in ("config", "last_eval"):
        return value if isinstance(value, dict) else _INVALID
    return _INVALID


class Ledger:
    """In-memory ledger bound to its file. ``update`` changes one record and saves the
    whole ledger under a lock, so track threads running in parallel never lose an update."""

    def __init__(self, path: str | Path, records: list[StepRecord] | None = None,
                 warning: str | None = None):
        self.path = Path(path)
        self.records: dict[str, StepRecord] = {r.id: r for r in records or ()}
        #: Set when the file existed but could not be read (shown to the user).
        self.warning = warning
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path) -> Ledger:
        """Read a ledger; a missing file is an empty ledger, an unreadable one is an empty
        ledger with a warning (the checkpoints on disk still tell what finished)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            return cls(path, warning=f"cannot read {path}: {exc.strerror or exc}")
        try:
            doc = json.loads(text)
        except ValueError:
            return cls(path, warning=f"{path} is not valid JSON; its step states are ignored")
        steps = doc.get("steps") if isinstance(doc, dict) else None
        if not isinstance(steps, list):
            return cls(path, warning=f"{path} has no list of steps; its step states are ignored")
        records = [r for r in map(StepRecord.from_json, steps) if r is not None]
        return cls(path, records)

    def get(self, step_id: str) -> StepRecord | None:
        return self.records.get(step_id)

    def ensure(self, step_id: str, **defaults: Any) -> StepRecord:
        """The record of ``step_id``, created as pending (not saved) when missing."""
        with self._lock:
            record = self.records.get(step_id)
            if record is None:
                record = self.records[step_id] = StepRecord(id=step_id, **defaults)
            return record

    def reset(self, step_id: str, **fields_: Any) -> StepRecord:
        """Forget a step's history (its config or lineage changed): a fresh pending record
        with ``fields_`` (typically ``message`` saying why). Not saved; call :meth:`save`."""
        with self._lock:
            record = self.records[step_id] = StepRecord(id=step_id, **fields_)
            return record

    def update(self, step_id: str, **changes: Any) -> StepRecord:
        """Change fields of one record (created when missing) and save atomically."""
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"unknown step status {changes['status']!r}")
        with self._lock:
            record = self.records.get(step_id)
            if record is None:
                record = self.records[step_id] = StepRecord(id=step_id)
            for name, value in changes.items():
                if not hasattr(record, name):
                    raise AttributeError(f"StepRecord has no field {name!r}")
                setattr(record, name, value)
            self._save_locked()
            return record

    def save(self) -> None:
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        atomic_write_json(self.path, {
            "version": LEDGER_VERSION,
            "updated": time.time(),
            "steps": [r.to_json() for r in self.records.values()],
        })
