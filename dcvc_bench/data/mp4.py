"""MP4 (and other container) clips decoded with OpenCV's FFmpeg backend: the one video
decoder. Torch-free: :mod:`dcvc_bench.data.sources` reads clips through it, and
:mod:`dcvc_bench.data.video` builds its datasets on those readers.

Decoding is sequential, always from frame 0
    A clip is opened with OpenCV's FFmpeg backend and decoded from its first frame:
    ``grab()`` to skip up to the wanted start (decodes, skips the colour conversion), then
    ``read()`` for the frames we keep. Why: ``CAP_PROP_FRAME_COUNT`` is the container's
    claim (wrong for variable-frame-rate, edited or truncated files) and
    ``CAP_PROP_POS_FRAMES`` seeking lands on a nearby key frame with some codecs and
    builds, silently returning the wrong frames. A GOP of the wrong frames, or a clip that
    ends early, would corrupt training without any error. Frame counts are therefore
    measured by decoding (:func:`probe_video`), once per file and modification time.
    A file OpenCV cannot open or decode a single frame from is a ``UserError`` naming
    it; a clip that ends before the frames asked for raises :class:`ShortClipError`.

Colour: OpenCV converts the decoded YUV to RGB with FFmpeg's swscale defaults (the
stream's tagged matrix, BT.601 limited range when untagged), not with
:mod:`dcvc_bench.data.colour`; for exact, documented colour use raw ``.yuv`` sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dcvc_bench.errors import UserError

__all__ = ["ShortClipError", "VideoInfo", "clip_fps", "count_frames", "probe_cached", "probe_video", "read_frames"]

_NO_FRAMES = np.empty((0, 0, 0, 3), np.uint8)


@dataclass(frozen=True)
class VideoInfo:
    """A clip as actually decoded: frame size and the number of frames that decode."""

    width: int
    height: int
    frames: int


class ShortClipError(Exception):
    """A clip ended before the frames asked for. Not a user error by itself: callers
    decide (skip the clip, use what was decoded, or raise a ``UserError``)."""

    def __init__(self, path: Path, start: int, requested: int, total: int, frames: np.ndarray):
        self.path = path
        self.start = start
        self.requested = requested
        #: frames the clip has in all, as decoded
        self.total = total
        #: the frames from ``start`` that did decode, (n, H, W, 3) uint8 RGB, n < requested
        self.frames = frames
        super().__init__(
            f"{path}: asked for frames {start}..{start + requested - 1} but it decodes only {total} frames"
        )


def read_frames(path: str | os.PathLike[str], start: int, count: int) -> np.ndarray:
    """Decode frames ``start .. start+count-1`` of a clip as a ``(count, H, W, 3)`` uint8
    RGB array, decoding sequentially from frame 0 (see the module docstring for why).

    Raises ``UserError`` when the file cannot be decoded at all and
    :class:`ShortClipError` when it ends before ``start + count`` frames.
    """
    path = Path(path)
    if start < 0 or count < 1:
        raise ValueError(f"read_frames: need start >= 0 and count >= 1, got start={start}, count={count}")
    capture = _open(path)
    try:
        for skipped in range(start):
            if not capture.grab():
                if skipped == 0:
                    raise _undecodable(path)
                raise ShortClipError(path, start, count, skipped, _NO_FRAMES)
        out: np.ndarray | None = None
        for i in range(count):
            ok, bgr = capture.read()
            if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
                if start == 0 and i == 0:
                    raise _undecodable(path)
                decoded = out[:i] if out is not None else _NO_FRAMES
                raise ShortClipError(path, start, count, start + i, decoded)
            if out is None:
                out = np.empty((count, *bgr.shape), np.uint8)
            elif bgr.shape != out.shape[1:]:
                raise UserError(
                    f"cannot use {path}: its frame size changes mid-clip ({out.shape[2]}x{out.shape[1]} "
                    f"then {bgr.shape[1]}x{bgr.shape[0]}); re-encode it at one size with ffmpeg or remove it"
                )
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[i])
        assert out is not None
        return out
    finally:
        capture.release()


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Width, height and frame count of a clip, measured by decoding it once."""
    return _count_frames(Path(path), limit=None)


_PROBE_CACHE: dict[tuple[str, int, int], VideoInfo] = {}


def probe_cached(path: Path) -> VideoInfo:
    """:func:`probe_video`, remembered per (path, mtime, size) so that rebuilding a
    dataset over the same folder (train and val sharing clips, a new GOP step in the same
    process) does not decode every clip again."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    info = _PROBE_CACHE.get(key)
    if info is None:
        info = _PROBE_CACHE[key] = probe_video(path)
    return info


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            raise UserError(
                f"cannot decode {path}: this OpenCV build has no FFmpeg backend; "
                "install opencv-python-headless from PyPI"
            )
        raise _undecodable(path)
    return capture


def _undecodable(path: Path) -> UserError:
    return UserError(f"cannot decode {path}: not a readable video; re-encode it with ffmpeg or remove it")


def _count_frames(path: Path, limit: int | None) -> VideoInfo:
    """Decode the first frame (for its size) then ``grab()`` up to ``limit`` frames."""
    capture = _open(path)
    try:
        ok, first = capture.read()
        if not ok or first is None or first.ndim != 3:
            raise _undecodable(path)
        frames = 1
        while (limit is None or frames < limit) and capture.grab():
            frames += 1
        return VideoInfo(width=first.shape[1], height=first.shape[0], frames=frames)
    finally:
        capture.release()



def clip_fps(path: str | os.PathLike[str]) -> float | None:
    """The container's frame rate (what OpenCV reports), None when it does not say."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and fps > 0 else None


def count_frames(path: str | os.PathLike[str], limit: int) -> int:
    """How many of the first ``limit`` frames decode (``grab()``s at most ``limit`` frames)."""
    return _count_frames(Path(path), limit=limit).frames
