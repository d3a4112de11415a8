"""Which entries of a folder are clips: the one rule, shared by the trainer's datasets,
`eval` and `run`'s check before it launches anything; what kind of clip a path is; the
frame size, rate and bit depth a raw ``.yuv`` file's name gives; a clip's frame size from
its header (:func:`clip_size`). Pure Python (no OpenCV, no numpy, no torch), so the
control plane can use it. :mod:`dcvc_bench.data.sources` reads the clips.

A clip is one of
    - a video file: ``.mp4`` (any case), or another container OpenCV's FFmpeg backend
      reads (``.mkv .mov .avi .webm .m4v``);
    - a raw ``.yuv`` 4:2:0 file (8 or 10 bit; size from its name, see :func:`yuv_name_info`);
    - a folder of PNG/JPEG frames (``.png .jpg .jpeg``), in natural order (``im2`` before
      ``im10``); numbered frames must not have gaps.

The clips of a folder (:func:`list_videos`)
    - a Vimeo-90k root (it holds ``sep_trainlist.txt`` or ``sep_testlist.txt``) is one
      dataset: its clips are the septuplet folders ``sequences/<list line>`` named by
      ``sep_trainlist.txt`` (training) or ``sep_testlist.txt`` (validation, ``eval``);
    - a folder that holds frames and no video/``.yuv`` files is itself one clip;
    - otherwise its video files, ``.yuv`` files and sub-folders that hold frames, directly
      inside it, sorted by name; deeper folders are not searched, hidden entries
      (``.name.mp4``, e.g. macOS ``._clip.mp4`` resource forks or a half-written temp file)
      and sub-folders without frames are ignored.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any, Iterator, Optional

from dcvc_bench.errors import UserError

DEFAULT_HINT = "point it at a folder of .mp4 clips (or run `dcvc-bench data synth DIR`)"

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
YUV_SUFFIX = ".yuv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIMEO_LISTS = {"train": "sep_trainlist.txt", "test": "sep_testlist.txt"}


def list_videos(folder: str | os.PathLike[str], what: str = "--train_video_dir", hint: str = DEFAULT_HINT,
                *, split: str = "train") -> list[Path]:
    """The clips of ``folder`` (the rules above). ``what`` names the option the folder came
    from and ``hint`` says what to do, for the error message: a missing folder, a file, an
    unreadable folder or one without clips is a UserError. ``split`` picks a Vimeo-90k
    root's list: ``"train"`` (sep_trainlist.txt) or ``"test"`` (sep_testlist.txt)."""
    path = Path(folder)
    try:
        if not path.exists():
            raise UserError(f"{what}: folder {path} does not exist; {hint}")
        if not path.is_dir():
            raise UserError(f"{what}: {path} is not a folder; {hint}")
        if any((path / name).is_file() for name in VIMEO_LISTS.values()):
            return _vimeo_clips(path, what, split)
        entries = sorted(entry for entry in path.iterdir() if not entry.name.startswith("."))
        clips = [entry for entry in entries if clip_kind(entry) is not None]
        if not clips and any(_is_image(entry) for entry in entries):
            clips = [path]
    except OSError as exc:
        raise UserError(f"{what}: cannot read folder {path}: {exc.strerror or exc}") from None
    if not clips:
        raise UserError(f"{what}: folder {path} has no .mp4 clips (nor .yuv files or sub-folders of PNG/JPEG "
                        f"frames); {hint}")
    return clips


def clip_kind(path: str | os.PathLike[str]) -> Optional[str]:
    """``"video"``, ``"yuv"`` or ``"frames"`` (a folder holding PNG/JPEG files); None otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES and path.is_file():
        return "video"
    if suffix == YUV_SUFFIX and path.is_file():
        return "yuv"
    if path.is_dir():
        try:
            with os.scandir(path) as entries:
                if any(_is_image(Path(entry.path)) for entry in entries):
                    return "frames"
        except OSError:
            return None
    return None


def list_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """The PNG/JPEG frames of a frame folder in natural order (``im2`` before ``im10``).
    Numbered frames (``%05d.png``, ``im1.png``...) must run without a gap: a missing one is
    a UserError naming it and the folder."""
    folder = Path(folder)
    try:
        frames = sorted((entry for entry in folder.iterdir() if _is_image(entry)), key=_natural_key)
    except OSError as exc:
        raise UserError(f"cannot read frame folder {folder}: {exc.strerror or exc}") from None
    if not frames:
        raise UserError(f"frame folder {folder} has no .png/.jpg frames")
    numbered = [_NUMBERED.fullmatch(frame.name) for frame in frames]
    if all(numbered):
        previous = None
        for frame, match in zip(frames, numbered):
            number = int(match.group(2))
            if previous is not None and number != previous[1] + 1:
                head, digits, tail = previous[0].group(1), previous[0].group(2), previous[0].group(3)
                width = len(digits) if digits.startswith("0") else 0
                missing = f"{head}{previous[1] + 1:0{width}d}{tail}"
                raise UserError(f"frame folder {folder}: frame {missing} is missing (between "
                                f"{_name(previous[0])} and {frame.name}); restore it or renumber the frames")
            previous = (match, number)
    return frames


# ---------------------------------------------------------------- raw .yuv file names

_SIZE = re.compile(r"(?<![0-9a-z])(\d{2,5})x(\d{2,5})(?![0-9])", re.IGNORECASE)
_FPS = re.compile(r"(?:^|[_\-.])(\d{1,3}(?:\.\d+)?)(?:fps|hz|p)?(?=$|[_\-.])", re.IGNORECASE)
_FPS_TAGGED = re.compile(r"(?:^|[_\-.])(\d{1,3}(?:\.\d+)?)(?:fps|hz)(?=$|[_\-.])", re.IGNORECASE)
_BITS = re.compile(r"(?:^|[_\-.])(8|10|12|16)[-_]?(?:bits?|b)(?=$|[_\-.])|p(10|12|16)le", re.IGNORECASE)
_NOT_420 = re.compile(r"(?:^|[_\-.])(444|422|400)(?:p)?(?=$|[_\-.])", re.IGNORECASE)


def yuv_name_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a raw YUV file's name says: ``width``, ``height``, ``fps``, ``bit_depth`` (each
    only when the name gives it) and ``chroma`` (``"444"``/``"422"``/``"400"`` if the name
    says it is not 4:2:0). Patterns: ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv``,
    ``BQMall_832x480_60.yuv`` (the number after the size is the frame rate),
    ``X_3840x2160_50fps_10bit_420.yuv``, ``..._yuv420p10le.yuv``."""
    stem = Path(path).stem
    info: dict[str, Any] = {}
    size = None
    for size in _SIZE.finditer(stem):
        pass  # the last WxH in the name
    if size is not None:
        info["width"], info["height"] = int(size.group(1)), int(size.group(2))
        rest = stem[size.end():]
        tagged = _FPS_TAGGED.search(stem)
        plain = _FPS.match(rest)
        if tagged:
            info["fps"] = float(tagged.group(1))
        elif plain and plain.group(1) not in ("420", "444", "422"):
            info["fps"] = float(plain.group(1))
    bits = _BITS.search(stem)
    if bits:
        info["bit_depth"] = int(bits.group(1) or bits.group(2))
    chroma = _NOT_420.search(stem)
    if chroma:
        info["chroma"] = chroma.group(1)
    return info


# ---------------------------------------------------------------- helpers of the listing

_NUMBERED = re.compile(r"(.*?)(\d+)(\.[A-Za-z]+)")


def _name(match: "re.Match[str]") -> str:
    return match.string


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def _natural_key(path: Path) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", path.name) if part]


def _vimeo_clips(root: Path, what: str, split: str) -> list[Path]:
    """The septuplet folders a Vimeo-90k root's list names (``sequences/00001/0001``)."""
    listing = root / VIMEO_LISTS[split]
    if not listing.is_file():
        raise UserError(f"{what}: {root} is a Vimeo-90k tree without {listing.name} (the list of its "
                        f"{'training' if split == 'train' else 'test'} septuplets); restore it")
    clips = []
    for number, line in enumerate(listing.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        clip = root / "sequences" / entry
        if not clip.is_dir():
            raise UserError(f"{what}: {listing} line {number} names {entry}, but {clip} is not a folder; "
                            "restore the septuplet or remove the line")
        clips.append(clip)
    if not clips:
        raise UserError(f"{what}: {listing} lists no septuplets; {DEFAULT_HINT}")
    return clips


# ---------------------------------------------------------------- a clip's frame size

#: How much of a clip's ``moov`` box is read at most (it holds the sample tables).
_MAX_MOOV_BYTES = 64 << 20


def clip_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(width, height)`` of an MP4 clip's first video track, read from its header (the
    ``tkhd`` box of the track whose handler is ``vide``) without decoding anything; None
    when the file cannot be read or parsed (the trainer then says what is wrong with it).
    `plan` and `run` use it to refuse a crop larger than the clips before anything starts.
    A ``.yuv`` file's size is the one in its name; a frame folder's is its first frame's
    (PNG/JPEG header)."""
    kind = clip_kind(path)
    if kind == "yuv":
        info = yuv_name_info(path)
        return (info["width"], info["height"]) if "width" in info else None
    if kind == "frames":
        try:
            return image_size(list_frames(path)[0])
        except UserError:
            return None
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


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG (IHDR) or JPEG (its SOF marker) from its header; None
    when it is neither or cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                return (width, height) if width and height else None
            if head[:2] != b"\xff\xd8":
                return None
            fh.seek(2)
            while True:
                marker = fh.read(4)
                if len(marker) < 4 or marker[0] != 0xFF:
                    return None
                kind, length = marker[1], struct.unpack(">H", marker[2:4])[0]
                if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
                    sof = fh.read(5)
                    if len(sof) < 5:
                        return None
                    height, width = struct.unpack(">HH", sof[1:5])
                    return (width, height) if width and height else None
                fh.seek(length - 2, 1)
    except OSError:
        return None
