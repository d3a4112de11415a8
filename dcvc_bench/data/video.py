"""MP4 GOP datasets decoded with OpenCV: what goes in, what comes out, and the rules.

Folders
    Every ``*.mp4`` (any case: ``.MP4`` too) directly inside the folder, sorted by name;
    sub-folders are not searched and hidden files (``.name.mp4``, e.g. macOS ``._clip.mp4``
    resource forks or a half-written temp file) are ignored. A missing folder, or one
    with no MP4 in it, is a :class:`~dcvc_bench.errors.UserError`. The rule lives in
    :func:`dcvc_bench.clips.list_videos` (torch-free: `run` checks folders with it).

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

Training samples (:class:`VideoGOPDataset`)
    - Clips with fewer than ``gop_size`` frames are skipped, with one warning naming them
      all; if every clip is skipped, that is a ``UserError``.
    - Clips smaller than the crop on either side are resized up (bicubic) keeping their
      aspect ratio, so that the short side equals ``crop_size``, before cropping.
    - A sample is a uniformly random usable clip, a random start in
      ``[0, frames - gop_size]``, ``gop_size`` consecutive frames and one random
      ``crop_size`` x ``crop_size`` window shared by all of them.
    - Samples are ``uint8`` tensors ``T x 3 x H x W`` (RGB). They stay uint8 through the
      DataLoader (4x less to copy); the training loop converts to float / 255 on device.
    - Randomness comes from ``numpy.random.default_rng((seed, epoch, index))``: a fixed
      seed reproduces an epoch exactly, whatever the number of DataLoader workers, and
      workers never repeat each other. Call :meth:`VideoGOPDataset.set_epoch` before each
      epoch (workers get a copy of the dataset when the DataLoader iterator is created,
      so use non-persistent workers or the new epoch will not reach them).

Validation clips (:class:`VideoValidationDataset`)
    Item ``i`` is ``(name, frames)``: the first ``min(max_frames, frames in clip)`` frames
    of clip ``i`` at their original size, uint8 ``T x 3 x H x W``. Only those frames are
    ever decoded. Same folder and bad-file rules as above.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dcvc_bench.clips import list_videos
from dcvc_bench.errors import UserError

__all__ = [
    "ShortClipError",
    "SkippedClipsWarning",
    "VideoGOPDataset",
    "VideoInfo",
    "VideoValidationDataset",
    "list_videos",
    "probe_video",
    "read_frames",
]

#: At most this many clip names are spelled out in one warning or error line.
_MAX_NAMES = 10
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


class SkippedClipsWarning(UserWarning):
    """Some clips in a training folder are too short for the GOP and are not used."""


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


class VideoGOPDataset(Dataset):
    """Random GOPs of random crops from a folder of MP4 clips (rules: module docstring)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        gop_size: int,
        crop_size: int,
        samples_per_epoch: int | None = None,
        seed: int = 0,
        *,
        what: str = "--train_video_dir",
    ):
        _require_int("--gop_size", gop_size, minimum=1)
        _require_int("--crop_size", crop_size, minimum=1)
        if samples_per_epoch is not None:
            _require_int("samples_per_epoch", samples_per_epoch, minimum=1)
        _require_int("--seed", seed, minimum=0)
        self.folder = Path(folder)
        self.gop_size = gop_size
        self.crop_size = crop_size
        self.seed = seed
        self.epoch = 0

        usable: list[tuple[Path, VideoInfo]] = []
        short: list[tuple[Path, VideoInfo]] = []
        for clip in list_videos(self.folder, what):
            info = _probe_cached(clip)
            (usable if info.frames >= gop_size else short).append((clip, info))
        if not usable:
            longest = max(short, key=lambda item: item[1].frames)
            raise UserError(
                f"{what}: all {len(short)} clips in {self.folder} have fewer than --gop_size {gop_size} frames "
                f"(longest: {longest[0].name}, {longest[1].frames} frames); add longer clips or lower --gop_size"
            )
        if short:
            warnings.warn(
                f"{what}: skipping {len(short)} of {len(short) + len(usable)} clips with fewer than "
                f"--gop_size {gop_size} frames: {_name_list(short)}",
                SkippedClipsWarning,
                stacklevel=2,
            )
        self.clips: tuple[Path, ...] = tuple(clip for clip, _ in usable)
        self.infos: list[VideoInfo] = [info for _, info in usable]  # corrected in place if a clip ends early
        self.skipped: tuple[Path, ...] = tuple(clip for clip, _ in short)
        self.samples_per_epoch = samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples ``__getitem__`` draws (part of the RNG seed)."""
        _require_int("epoch", epoch, minimum=0)
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch if self.samples_per_epoch is not None else len(self.clips)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        rng = np.random.default_rng((self.seed, self.epoch, index))
        clip_index = int(rng.integers(len(self.clips)))
        path, info = self.clips[clip_index], self.infos[clip_index]
        start = int(rng.integers(info.frames - self.gop_size + 1))
        try:
            frames = read_frames(path, start, self.gop_size)
        except ShortClipError as exc:
            frames = self._read_after_short(clip_index, exc, rng)
        frames = _resize_to_cover(frames, self.crop_size)
        height, width = frames.shape[1:3]
        top = int(rng.integers(height - self.crop_size + 1))
        left = int(rng.integers(width - self.crop_size + 1))
        crop = frames[:, top : top + self.crop_size, left : left + self.crop_size]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(0, 3, 1, 2)))

    def _read_after_short(self, clip_index: int, exc: ShortClipError, rng: np.random.Generator) -> np.ndarray:
        """A clip ended earlier than probed (a frame that ``grab()`` passed but
        ``read()`` cannot convert, or a file changed on disk). Keep training on the frames
        that do decode when a GOP still fits; otherwise stop with a clear error."""
        path, probed = self.clips[clip_index], self.infos[clip_index]
        if exc.total >= self.gop_size:
            self.infos[clip_index] = VideoInfo(probed.width, probed.height, exc.total)
            start = int(rng.integers(exc.total - self.gop_size + 1))
            try:
                return read_frames(path, start, self.gop_size)
            except ShortClipError as again:
                exc = again
        raise UserError(
            f"cannot use {path}: it now decodes only {exc.total} frames, not the {probed.frames} it had when "
            "the dataset was built; it changed on disk or is damaged: restore or remove it and restart"
        ) from exc


class VideoValidationDataset(Dataset):
    """The first ``max_frames`` frames of every clip in a folder, uncropped, in name order."""

    def __init__(self, folder: str | os.PathLike[str], max_frames: int, *, what: str = "--val_video_dir",
                 min_frames: int = 1):
        """``min_frames``: what each clip must give (P-frame validation needs an I- and a
        P-frame, or its selection loss, which ``best`` and the scheduler use, is missing)."""
        _require_int("--eval_max_frames", max_frames, minimum=min_frames)
        self.folder = Path(folder)
        self.max_frames = max_frames
        self.clips: tuple[Path, ...] = tuple(list_videos(self.folder, what))
        # Decodes (grab) at most max_frames per clip: catches unreadable files now rather
        # than at the first evaluation, hours into training.
        self.infos: tuple[VideoInfo, ...] = tuple(_count_frames(clip, limit=max_frames) for clip in self.clips)
        for clip, info in zip(self.clips, self.infos):
            if info.frames < min_frames:
                raise UserError(f"{what}: {clip} has {info.frames} frame(s); validation needs at least "
                                f"{min_frames} per clip (an I-frame and a P-frame); remove it or use a longer clip")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        path = self.clips[index]
        try:
            frames = read_frames(path, 0, self.infos[index].frames)
        except ShortClipError as exc:  # changed on disk since init: evaluate what is there
            frames = exc.frames
        return path.stem, torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


# ---------------------------------------------------------------------------- helpers

_PROBE_CACHE: dict[tuple[str, int, int], VideoInfo] = {}


def _probe_cached(path: Path) -> VideoInfo:
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


def _resize_to_cover(frames: np.ndarray, crop_size: int) -> np.ndarray:
    """Scale (T, H, W, 3) frames up, keeping the aspect ratio, so that the short side is
    ``crop_size``; frames already at least that big are returned untouched."""
    height, width = frames.shape[1:3]
    if min(height, width) >= crop_size:
        return frames
    scale = crop_size / min(height, width)
    size = (max(crop_size, round(width * scale)), max(crop_size, round(height * scale)))
    return np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC) for frame in frames])


def _name_list(items: list[tuple[Path, VideoInfo]]) -> str:
    names = [f"{path.name} ({info.frames} frames)" for path, info in items[:_MAX_NAMES]]
    if len(items) > _MAX_NAMES:
        names.append(f"and {len(items) - _MAX_NAMES} more")
    return ", ".join(names)


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserError(f"{name}: must be a whole number >= {minimum}, got {value!r}")
