"""The decoded-frame cache: each clip decoded once to a uint8 ``.npy`` file, then read by offset.

Why: an MP4 GOP sample decodes from the clip's first frame up to the GOP (see
:mod:`dcvc_bench.data.mp4`), so one loader worker gives ~100 frames/s of 256² GOP crops
from 720p clips, far from what a GPU trains on. From the cache a sample is one ``pread``
of ``gop`` frames (no decoding, no seeking through the clip).

Layout: ``<cache>/<clip stem>-<key>.npy``, a plain NumPy ``.npy`` file of shape
``T × H × W × 3`` (uint8 RGB, exactly what :meth:`FrameSource.read_rgb8` returns), so
``np.load(path, mmap_mode="r")`` also reads it. ``key`` is a hash of the clip's resolved
path, size and mtime: a clip changed on disk gets a new file (old ones are left; delete the
folder to reclaim them). Files are written atomically
(:func:`dcvc_bench.checkpoints.atomic_file`); several processes building the same entry at
once only repeat work. Reads use ``os.pread`` on a file descriptor rather than a memory
map, so a worker's resident memory stays flat over an epoch (page cache is the kernel's,
not the process's).

A clip that decodes fewer frames than probed is cached with the frames that do decode.
Disk: 2.76 MB per 720p frame (a 60-frame 720p clip is 166 MB); a full-disk error is one
line naming the cache folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
import numpy as np

from dcvc_bench.data.sources import FrameSource
from dcvc_bench.errors import UserError

__all__ = ["CachedClip", "cache_path", "ensure_cached"]


def cache_path(clip: Path, folder: Path) -> Path:
    """Where ``clip``'s frames are cached: keyed by its resolved path, size and mtime."""
    stat = clip.stat()
    text = f"{clip.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    return folder / f"{clip.stem}-{key}.npy"


def ensure_cached(clip: Path, source: FrameSource, frames: int, folder: Path) -> "CachedClip":
    """The cache entry of ``clip`` (``frames`` probed frames), written first if missing."""
    path = cache_path(clip, folder)
    if not path.is_file():
        _write(path, source, frames, folder)
    return CachedClip(path)


class CachedClip:
    """Frames of one cached clip, read by offset (never mapped); picklable into workers."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if dtype != np.uint8 or fortran or len(shape) != 4 or shape[3] != 3:
            raise UserError(f"{path}: not a frame-cache entry (uint8 T×H×W×3); delete it and restart")
        self.shape: tuple[int, int, int, int] = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self._fd: int | None = None
        self._pid = -1

    @property
    def frames(self) -> int:
        return self.shape[0]

    def read(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start+count-1``, uint8 ``count × H × W × 3``."""
        if start < 0 or count < 1 or start + count > self.frames:
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} asked for, it has {self.frames}")
        if self._fd is None or self._pid != os.getpid():  # one descriptor per process (workers fork)
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        frame_bytes = self.shape[1] * self.shape[2] * 3
        size = count * frame_bytes
        data = os.pread(self._fd, size, self.offset + start * frame_bytes)
        if len(data) != size:
            raise UserError(f"{self.path}: frame-cache entry is truncated; delete it and restart")
        return np.frombuffer(data, np.uint8).reshape(count, *self.shape[1:])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}


def _write(path: Path, source: FrameSource, frames: int, folder: Path) -> None:
    from dcvc_bench.checkpoints import atomic_file

    try:
        folder.mkdir(parents=True, exist_ok=True)
        decoded = _decode_all(source, frames)
        with atomic_file(path) as fh:
            np.lib.format.write_array(fh, decoded, allow_pickle=False)
    except OSError as exc:
        raise UserError(f"frame cache {folder}: cannot write {path.name} ({exc.strerror or exc}); free space "
                        "or choose another --frame_cache folder") from None


def _decode_all(source: FrameSource, frames: int) -> np.ndarray:
    """All ``frames`` frames in one pass (an MP4 is decoded sequentially once; the clip
    is held in memory while its entry is written)."""
    from dcvc_bench.data.mp4 import ShortClipError

    try:
        return source.read_rgb8(0, frames)
    except ShortClipError as exc:
        if len(exc.frames) == 0:
            raise
        return exc.frames

