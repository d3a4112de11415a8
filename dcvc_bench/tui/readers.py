"""Incremental, stat-first readers of a run folder's growing files.

Each reader costs one ``os.stat`` per look when nothing changed, so the TUI's watcher can
look ten times a second and stay idle. They run in the watcher thread; the
:class:`~dcvc_bench.tui.model.RunModel` guards what they keep with its lock. Pure Python:
no torch, no Textual.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoints import parse_checkpoint_name, parse_iframe_checkpoint_name, read_meta, sidecar_path
from dcvc_bench.evaldoc import EVAL_KIND, RD_KIND, VERSION, EvalResults, RDView, read_eval_results, read_rd_view
from dcvc_bench.evaldoc.views import EvalEntry
from dcvc_bench.events import EventTail

#: How much of an existing log is read when it is first shown.
LOG_TAIL_BYTES = 64 * 1024
#: Train metrics kept per step (the plotted ones).
TRAIN_FIELDS = ("loss", "mse", "psnr", "bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z", "lr",
                "frames_per_s",
                # the I-frame training step's terms (events.IFRAME_EVENT_FIELDS)
                "rec_loss", "perceptual_loss", "codebook_loss", "g_loss", "d_loss", "disc_weight")
#: Points kept per step: a days-long step writes a train event every half second.
MAX_POINTS = 2048


def stat_key(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or grows; None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(known) / len(known) if known else None


class TrainSeries:
    """One step's train metrics against ``epoch + iter / iters_per_epoch``, bounded in
    memory: past :data:`MAX_POINTS`, neighbours are averaged in pairs and later points
    arrive averaged as many at a time, so a long step keeps its shape at a fixed cost."""

    def __init__(self, max_points: int = MAX_POINTS):
        self.max_points = max_points
        self.x: list[float] = []
        self.y: dict[str, list[float | None]] = {name: [] for name in TRAIN_FIELDS}
        self._stride = 1
        self._pending: list[tuple[float, dict[str, Any]]] = []

    def add(self, event: dict[str, Any]) -> None:
        ipe = event.get("iters_per_epoch") or 1
        try:
            x = float(event.get("epoch") or 0) + float(event.get("iter") or 0) / float(ipe)
        except (TypeError, ValueError):
            return
        self._pending.append((x, event))
        if len(self._pending) < self._stride:
            return
        self.x.append(sum(p[0] for p in self._pending) / len(self._pending))
        for name, values in self.y.items():
            values.append(_mean([p[1].get(name) for p in self._pending]))
        self._pending = []
        if len(self.x) > self.max_points:
            self._halve()

    def _halve(self) -> None:
        self._stride *= 2
        self.x = [(a + b) / 2 for a, b in zip(self.x[::2], self.x[1::2])]
        for name, values in self.y.items():
            self.y[name] = [_mean([a, b]) for a, b in zip(values[::2], values[1::2])]

    def points(self, name: str) -> tuple[list[float], list[float]]:
        """(x, y) of one metric, leaving out the points where it was not finite."""
        pairs = [(x, y) for x, y in zip(self.x, self.y[name]) if y is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]


class StepEvents:
    """One step's ``events.jsonl`` as it grows, sorted by kind. Reading (:meth:`read`,
    watcher thread, no lock) is apart from keeping (:meth:`apply`, under the model's
    lock), so a long first read never holds up the interface. A file that shrinks or is
    replaced (a run folder reset by hand) is read again from the start."""

    def __init__(self, path: Path):
        self.path = path
        self._tail = EventTail(path)
        self._key: tuple[int, int, int] | None = None
        self._forget()

    def _forget(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.ends: list[dict[str, Any]] = []
        self.codebooks: list[dict[str, Any]] = []  # I-frame steps: per-layer codebook use, each epoch
        self.series = TrainSeries()
        self.last_train: dict[str, Any] | None = None
        #: The first train event after the last step_start: with the last one, the speed.
        self.attempt_first_train: dict[str, Any] | None = None

    def read(self) -> tuple[bool, list[dict[str, Any]]] | None:
        """(start over?, new events), or None when the file did not change."""
        key = stat_key(self.path)
        if key == self._key:
            return None
        restart = self._key is not None and (key is None or key[0] != self._key[0]
                                             or key[1] < self._tail.offset)
        if restart:
            self._tail = EventTail(self.path)
        self._key = key
        return restart, self._tail.poll()

    def apply(self, restart: bool, events: list[dict[str, Any]]) -> None:
        if restart:
            self._forget()
        for event in events:
            kind = event.get("event")
            if kind == "train":
                self.series.add(event)
                self.last_train = event
                if self.attempt_first_train is None:
                    self.attempt_first_train = event
            elif kind == "step_start":
                self.starts.append(event)
                self.attempt_first_train = None
            elif kind == "eval":
                self.evals.append(event)
            elif kind == "checkpoint":
                self.checkpoints.append(event)
            elif kind == "step_end":
                self.ends.append(event)
            elif kind == "codebook":
                self.codebooks.append(event)


class LogTail:
    """The last part of a text log, then whatever is appended to it. Carriage returns (a
    progress line redrawn in place) keep only their last state."""

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._buffer = b""
        self._key: tuple[int, int, int] | None = None

    def poll(self) -> tuple[bool, list[str]] | None:
        """(start over?, new complete lines), or None when the file did not change."""
        key = stat_key(self.path)
        if key == self._key or key is None:
            return None
        restart = self._key is not None and (key[0] != self._key[0] or key[1] < self._offset)
        if restart:
            self._offset, self._buffer = 0, b""
        self._key = key
        try:
            with open(self.path, "rb") as fh:
                if self._offset == 0 and key[1] > LOG_TAIL_BYTES:
                    fh.seek(key[1] - LOG_TAIL_BYTES)
                    fh.readline()  # drop the partial first line
                    self._offset = fh.tell()
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return None
        self._offset += len(chunk)
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        return restart, [raw.decode("utf-8", errors="replace").rstrip("\r").rsplit("\r", 1)[-1].rstrip()
                         for raw in complete]


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint on disk as its sidecar describes it (``meta`` None: no trustworthy
    sidecar, so only the name, size and age are known)."""

    path: Path
    size: int
    mtime: float
    meta: dict[str, Any] | None
    archived_for: str | None = None  # step id, for a step's archived ``final.pth``

    @property
    def kind(self) -> str:
        if self.archived_for is not None:
            return "final"
        parsed = parse_checkpoint_name(self.path.name)
        if parsed is not None:
            return parsed.kind
        iframe = parse_iframe_checkpoint_name(self.path.name)
        return iframe[2] if iframe else "?"

    @property
    def stage(self) -> int | None:
        if self.meta is not None and isinstance(self.meta.get("stage"), int):
            return self.meta["stage"]
        parsed = parse_checkpoint_name(self.path.name)
        return parsed.stage if parsed else None

    @property
    def problem(self) -> str:
        """Why the sidecar cannot be trusted ('' when it can)."""
        if self.meta is not None:
            return ""
        return "no sidecar" if not sidecar_path(self.path).is_file() else "sidecar does not match"


class CheckpointShelf:
    """A track's checkpoint folder plus the archived finals of its steps, re-listed only
    when one of those folders changes (every atomic replace changes its folder's mtime)."""

    def __init__(self, folder: Path, archives: dict[str, Path]):
        self.folder = folder
        self.archives = archives  # step id -> steps/<id>/final.pth
        self.files: list[CheckpointFile] = []
        self._keys: list[tuple[int, int, int] | None] = []

    def poll(self) -> bool:
        keys = [stat_key(self.folder)] + [stat_key(p.parent) for p in self.archives.values()]
        if keys == self._keys:
            return False
        self._keys = keys
        found = [_describe(p) for p in sorted(self.folder.glob("*.pth"))] if keys[0] else []
        found += [_describe(p, step_id) for step_id, p in self.archives.items()]
        self.files = [f for f in found if f is not None]
        return True


def _describe(path: Path, archived_for: str | None = None) -> CheckpointFile | None:
    try:
        st = path.stat()
    except OSError:  # missing, or replaced while listing
        return None
    return CheckpointFile(path, st.st_size, st.st_mtime, read_meta(path), archived_for)


class JsonDoc:
    """A JSON document that is replaced whole (``eval/latest.json``, ``eval/rd.json``:
    written atomically by `dcvc-bench eval`), parsed again only when its file changes.
    After :meth:`poll`: ``doc`` is the parsed object (None when missing or unreadable) and
    ``problem`` says why it could not be used ('' when missing or fine)."""

    def __init__(self, path: Path, format_name: str, version: int = 1):
        self.path = path
        self.format_name = format_name
        self.version = version
        self.doc: dict[str, Any] | None = None
        self.problem = ""
        self._key: tuple[int, int, int] | None | bool = False  # False: never looked

    @property
    def missing(self) -> bool:
        return self.doc is None and not self.problem

    def poll(self) -> bool:
        """Read the file again if it changed; True when it did (appeared, went, changed)."""
        key = stat_key(self.path)
        if key == self._key:
            return False
        self._key = key
        self.doc, self.problem = None, ""
        if key is None:
            return True
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            self.problem = f"cannot read {self.path}: {exc.strerror or exc}"
        except ValueError as exc:
            self.problem = f"{self.path} is not valid JSON ({exc})"
        else:
            if not isinstance(doc, dict) or doc.get("format") != self.format_name:
                self.problem = f"{self.path} is not a {self.format_name} file"
            elif doc.get("version") != self.version:
                self.problem = (f"{self.path} is {self.format_name} version {doc.get('version')!r}; "
                                f"this dcvc-bench reads version {self.version}")
            else:
                self.doc = doc
        return True


def read_eval_entry(eval_dir: Path, entry: EvalEntry) -> tuple[EvalResults, RDView]:
    """One evaluation of the history: its document and its RD curves (``missing`` when
    it wrote none), read now (call it from a worker thread: a document can be large)."""
    doc = JsonDoc(eval_dir / entry.file, EVAL_KIND, VERSION)
    doc.poll()
    results = read_eval_results(doc.path, doc.doc, missing=doc.missing, problem=doc.problem)
    if entry.rd_file is None:
        return results, RDView(eval_dir / f"{entry.file[:-len('.json')]}-rd.json")
    rd = JsonDoc(eval_dir / entry.rd_file, RD_KIND, VERSION)
    rd.poll()
    return results, read_rd_view(rd.path, rd.doc, missing=rd.missing, problem=rd.problem)
