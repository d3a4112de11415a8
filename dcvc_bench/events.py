"""The event schema: the one contract between the trainer, the runner and the TUI.

A training step appends one JSON object per line to ``events.jsonl``. Every line has
``"v": 1``, ``"t"`` (unix seconds) and ``"event"``. Readers ignore unknown fields and
tolerate a torn last line (a writer killed mid-line), so a file can be followed while
it grows. Pure Python: importing this module never imports torch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dcvc_bench.checkpoints import json_safe

SCHEMA_VERSION = 1

#: Required fields of each event kind (beyond ``v``, ``t`` and ``event``).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "step_start": ("step", "stage", "gop", "lambda", "epochs", "start_epoch", "lr",
                   "resumed_from", "lr_reset"),
    "train": ("step", "epoch", "iter", "iters_per_epoch", "loss", "mse", "psnr", "bpp",
              "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z", "lr", "frames_per_s"),
    "eval": ("step", "epoch", "psnr", "bpp", "ms_ssim", "rd_loss", "i_frame", "p_frame",
             "ema"),
    "checkpoint": ("step", "kind", "path", "epoch", "loss"),
    "step_end": ("step", "status", "epoch", "best_loss", "message"),
    # several processes only: every rank's weight digest (dcvc_bench/train/ranks.py)
    "ranks": ("step", "epoch", "iter", "optimizer_step", "digests", "consistent"),
}

#: The I-frame training step's events (``python -m dcvc_bench.train.iframe``): the same
#: file, envelope and ``checkpoint``/``step_end``; ``step_start`` says ``kind: "iframe"``.
#: Fields that do not apply are null: ``perceptual_loss`` when the LPIPS term is off,
#: ``codebook_loss`` for CompressAI, ``g_loss``/``d_loss``/``disc_weight`` before
#: ``--disc_start`` (and for CompressAI), ``depths`` unless the codec is an RVQ. ``bpp`` of
#: ``train`` is the uniform rate at the trained depth (VQ) or the likelihood estimate
#: (CompressAI). ``codebook`` (VQ only, at each evaluation) lists per trained layer
#: ``{layer, usage (% of K used), perplexity, dead}``; ``depths`` of ``eval`` lists
#: ``{layers, psnr, bpp_uniform, bpp_entropy}``. ``frames_per_s`` counts images.
IFRAME_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "step_start": ("step", "kind", "i_frame_type", "stage", "gop", "lambda", "epochs", "start_epoch",
                   "lr", "resumed_from", "lr_reset"),
    "train": ("step", "epoch", "iter", "iters_per_epoch", "loss", "lr", "frames_per_s", "rec_loss",
              "perceptual_loss", "codebook_loss", "g_loss", "d_loss", "disc_weight", "disc_on",
              "psnr", "bpp"),
    "codebook": ("step", "epoch", "iter", "layers"),
    "eval": ("step", "epoch", "psnr", "bpp", "rd_loss", "depths"),
    "checkpoint": EVENT_FIELDS["checkpoint"],
    "step_end": EVENT_FIELDS["step_end"],
}

STEP_STATUSES = ("done", "failed", "interrupted", "diverged")


class EventSchemaError(ValueError):
    """An event that does not follow the schema (a bug in the writer, never user input)."""


def make_event(kind: str, /, **fields: Any) -> dict[str, Any]:
    """Build an event dict, checking that every required field of ``kind`` is present."""
    return build_event(EVENT_FIELDS, kind, fields)


def build_event(schema: dict[str, tuple[str, ...]], kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """:func:`make_event` against ``schema`` (:data:`EVENT_FIELDS` or :data:`IFRAME_EVENT_FIELDS`)."""
    required = schema.get(kind)
    if required is None:
        raise EventSchemaError(f"unknown event kind {kind!r}")
    missing = [name for name in required if name not in fields]
    if missing:
        raise EventSchemaError(f"event {kind!r} is missing {', '.join(missing)}")
    if kind == "step_end" and fields["status"] not in STEP_STATUSES:
        raise EventSchemaError(f"step_end status must be one of {STEP_STATUSES}")
    return {"v": SCHEMA_VERSION, "t": time.time(), "event": kind, **json_safe(fields)}


class EventWriter:
    """Append-only writer. Each event is one ``write`` of one full line, flushed and
    fsynced, so a reader sees whole lines except possibly a torn last one after a kill."""

    def __init__(self, path: str | os.PathLike[str] | None,
                 schema: dict[str, tuple[str, ...]] = EVENT_FIELDS):
        self.path = Path(path) if path else None
        self.schema = schema
        self._checked_tail = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _starts_torn(self) -> bool:
        """Whether an earlier writer (killed mid-line) left the file without a final
        newline. Only the file as this writer found it can be torn: our lines are whole."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return False
                fh.seek(-1, os.SEEK_END)
                return fh.read(1) != b"\n"
        except FileNotFoundError:
            return False

    def emit(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        event = build_event(self.schema, kind, fields)
        if self.path is not None:
            line = json.dumps(event, separators=(",", ":")) + "\n"
            if not self._checked_tail:
                self._checked_tail = True
                if self._starts_torn():
                    line = "\n" + line  # start on a fresh line after the torn one
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        return event


def parse_line(line: str) -> dict[str, Any] | None:
    """One line -> event dict, or None for a torn, blank or foreign line."""
    line = line.strip()
    if not line:
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or "event" not in obj:
        return None
    return obj


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All whole events of a file (missing file -> empty list)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [e for e in map(parse_line, text.splitlines()) if e is not None]


@dataclass
class EventTail:
    """Incremental reader: ``poll()`` returns events appended since the last call.

    Only complete lines (ending in a newline) are consumed, so a line being written is
    picked up whole on a later poll instead of being lost as 'torn'.
    """

    path: Path
    offset: int = 0
    _buffer: bytes = field(default=b"", repr=False)

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self.offset:  # file replaced or truncated: start again
                    self.offset, self._buffer = 0, b""
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._buffer + chunk
        *lines, self._buffer = data.split(b"\n")
        out = []
        for raw in lines:
            event = parse_line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                out.append(event)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.poll())
