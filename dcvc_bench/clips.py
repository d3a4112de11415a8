"""Which files of a folder are clips: the one rule, shared by the trainer's datasets,
`eval` and `run`'s check before it launches anything; and a clip's frame size from its
MP4 header (:func:`clip_size`). Pure Python (no OpenCV, no torch), so the control plane
can use it.

Every ``*.mp4`` (any case: ``.MP4`` too) directly inside the folder, sorted by name;
sub-folders are not searched and hidden files (``.name.mp4``, e.g. macOS ``._clip.mp4``
resource forks or a half-written temp file) are ignored.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, Iterator

from dcvc_bench.errors import UserError

DEFAULT_HINT = "point it at a folder of .mp4 clips (or run `dcvc-bench data synth DIR`)"


def list_videos(folder: str | os.PathLike[str], what: str = "--train_video_dir", hint: str = DEFAULT_HINT) -> list[Path]:
    """The MP4 clips directly inside ``folder``, sorted by name. ``what`` names the
    option the folder came from and ``hint`` says what to do, for the error message: a
    missing folder, a file, an unreadable folder or one without clips is a UserError."""
    path = Path(folder)
    try:
        if not path.exists():
            raise UserError(f"{what}: folder {path} does not exist; {hint}")
        if not path.is_dir():
            raise UserError(f"{what}: {path} is not a folder; {hint}")
        clips = sorted(
            entry
            for entry in path.iterdir()
            if entry.suffix.lower() == ".mp4" and not entry.name.startswith(".") and entry.is_file()
        )
    except OSError as exc:
        raise UserError(f"{what}: cannot read folder {path}: {exc.strerror or exc}") from None
    if not clips:
        raise UserError(f"{what}: folder {path} has no .mp4 clips (sub-folders are not searched); {hint}")
    return clips


# ---------------------------------------------------------------- a clip's frame size

#: How much of a clip's ``moov`` box is read at most (it holds the sample tables).
_MAX_MOOV_BYTES = 64 << 20


def clip_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(width, height)`` of an MP4 clip's first video track, read from its header (the
    ``tkhd`` box of the track whose handler is ``vide``) without decoding anything; None
    when the file cannot be read or parsed (the trainer then says what is wrong with it).
    `plan` and `run` use it to refuse a crop larger than the clips before anything starts."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            found = _top_level_box(fh, b"moov", size)
            if found is None:
                return None
            start, length = found
            fh.seek(start)
            moov = fh.read(min(length, _MAX_MOOV_BYTES))
    except OSError:
        return None
    for kind, begin, end in _boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        boxes = {k: (b, e) for k, b, e in _boxes(moov, begin, end)}
        if b"tkhd" not in boxes or _handler(moov, boxes.get(b"mdia")) != b"vide":
            continue
        dims = _tkhd_size(moov, *boxes[b"tkhd"])
        if dims is not None:
            return dims
    return None


def _top_level_box(fh: Any, wanted: bytes, file_size: int) -> tuple[int, int] | None:
    """(content offset, content length) of a top-level box of the file."""
    offset = 0
    while offset + 8 <= file_size:
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I4s", header[:8])
        head = 8
        if size == 1:
            if len(header) < 16:
                return None
            size, head = struct.unpack(">Q", header[8:16])[0], 16
        elif size == 0:
            size = file_size - offset
        if size < head:
            return None
        if kind == wanted:
            return offset + head, size - head
        offset += size
    return None


def _boxes(data: bytes, begin: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, content begin, content end) of the boxes in ``data[begin:end]``."""
    offset = begin
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        head = 8
        if size == 1 and offset + 16 <= end:
            size, head = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
        elif size == 0:
            size = end - offset
        if size < head or offset + size > end:
            return
        yield kind, offset + head, offset + size
        offset += size


def _handler(data: bytes, mdia: tuple[int, int] | None) -> bytes | None:
    if mdia is None:
        return None
    for kind, begin, end in _boxes(data, *mdia):
        if kind == b"hdlr" and end - begin >= 12:
            return data[begin + 8:begin + 12]
    return None


def _tkhd_size(data: bytes, begin: int, end: int) -> tuple[int, int] | None:
    version = data[begin] if begin < end else None
    at = begin + (88 if version == 1 else 76)
    if version not in (0, 1) or at + 8 > end:
        return None
    width, height = struct.unpack(">II", data[at:at + 8])
    width, height = width >> 16, height >> 16
    return (width, height) if width and height else None
