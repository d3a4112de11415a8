"""GOP datasets over every kind of clip: what goes in, what comes out, and the rules.

Clips
    What a folder's clips are (``.mp4`` and other video files, raw ``.yuv`` 4:2:0 files,
    folders of PNG/JPEG frames, a Vimeo-90k root's listed septuplets) is the one rule of
    :func:`dcvc_bench.clips.list_videos` (torch-free: `run` checks folders with it); each
    clip is read through :func:`dcvc_bench.data.sources.open_source` (MP4 with OpenCV,
    sequentially from frame 0, see :mod:`dcvc_bench.data.mp4`; ``.yuv`` by byte offset,
    BT.709 full range; frames with OpenCV's image reader). A training folder's Vimeo-90k
    root gives the septuplets of ``sep_trainlist.txt`` and a validation one those of
    ``sep_testlist.txt``, so a GOP is always drawn from within one septuplet. A clip that
    cannot be read is a ``UserError`` naming it; an MP4 that ends before the frames asked
    for raises :class:`ShortClipError`. ``source_options`` (``width``, ``height``,
    ``bit_depth``) give the size of ``.yuv`` files whose names do not say it.

Training samples (:class:`VideoGOPDataset`)
    - Clips with fewer than ``gop_size`` frames are skipped, with one warning naming them
      all; if every clip is skipped, that is a ``UserError``.
    - Clips smaller than the crop on either side are resized up (bicubic) keeping their
      aspect ratio, so that the short side equals ``crop_size``, before cropping.
    - A sample is a uniformly random usable clip, a random start in
      ``[0, frames - gop_size]``, ``gop_size`` consecutive frames and one random
      ``crop_size`` x ``crop_size`` window shared by all of them.
    - With ``frame_cache`` (a folder; the trainer's ``--frame_cache``), every usable clip
      is decoded once when the dataset is built, to a uint8 file read by offset
      (:mod:`dcvc_bench.data.frame_cache`); samples are identical, only faster.
    - Samples are ``uint8`` tensors ``T x 3 x H x W`` (RGB; a 10-bit ``.yuv`` is converted
      to RGB in float and rounded to 8 bits, like every other source). They stay uint8 through the
      DataLoader (4x less to copy); the training loop converts to float / 255 on device.
    - Randomness comes from ``numpy.random.default_rng((seed, epoch, index))``: a fixed
      seed reproduces an epoch exactly, whatever the number of DataLoader workers, and
      workers never repeat each other. Call :meth:`VideoGOPDataset.set_epoch` before each
      epoch (workers get a copy of the dataset when the DataLoader iterator is created,
      so use non-persistent workers or the new epoch will not reach them).

Validation clips (:class:`VideoValidationDataset`)
    Item ``i`` is ``(name, frames)``: the first ``min(max_frames, frames in clip)`` frames
    of clip ``i`` at their original size, uint8 ``T x 3 x H x W``; ``name`` is the clip's
    (:func:`~dcvc_bench.data.sources.source_name`: ``00001_0001`` for a septuplet). Only
    those frames are ever decoded. Same folder and bad-file rules as above.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dcvc_bench.clips import list_videos
from dcvc_bench.data.frame_cache import CachedClip, ensure_cached
from dcvc_bench.data.mp4 import ShortClipError, VideoInfo, probe_cached, probe_video, read_frames
from dcvc_bench.data.sources import FrameSource, open_source
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


class SkippedClipsWarning(UserWarning):
    """Some clips in a training folder are too short for the GOP and are not used."""


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
        source_options: Optional[Mapping[str, Any]] = None,
        frame_cache: str | os.PathLike[str] | None = None,
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
        self.source_options = dict(source_options or {})
        self._sources: dict[int, FrameSource] = {}

        usable: list[tuple[Path, VideoInfo]] = []
        short: list[tuple[Path, VideoInfo]] = []
        for clip in list_videos(self.folder, what):
            info = _probe(clip, self.source_options)
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
        # The decoded-frame cache (dcvc_bench.data.frame_cache): every usable clip decoded
        # once, here, before any worker starts; samples then read frames by offset.
        self.cached: tuple[CachedClip, ...] | None = None
        if frame_cache is not None:
            self.cached = tuple(ensure_cached(clip, self._source(i), info.frames, Path(frame_cache))
                                for i, (clip, info) in enumerate(zip(self.clips, self.infos)))
            self.infos = [VideoInfo(info.width, info.height, entry.frames) for info, entry in zip(self.infos, self.cached)]
            for clip, entry in zip(self.clips, self.cached):
                if entry.frames < gop_size:
                    raise UserError(f"cannot use {clip}: it decodes only {entry.frames} frames, fewer than "
                                    f"--gop_size {gop_size}; it is damaged: restore or remove it and restart")
            self._sources.clear()

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
        info = self.infos[clip_index]
        start = int(rng.integers(info.frames - self.gop_size + 1))
        if self.cached is not None:
            frames = self.cached[clip_index].read(start, self.gop_size)
        else:
            try:
                frames = self._source(clip_index).read_rgb8(start, self.gop_size)
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
                return self._source(clip_index).read_rgb8(start, self.gop_size)
            except ShortClipError as again:
                exc = again
        raise UserError(
            f"cannot use {path}: it now decodes only {exc.total} frames, not the {probed.frames} it had when "
            "the dataset was built; it changed on disk or is damaged: restore or remove it and restart"
        ) from exc


    def _source(self, clip_index: int) -> FrameSource:
        """The reader of clip ``clip_index``, opened once per process (workers get copies)."""
        source = self._sources.get(clip_index)
        if source is None:
            source = self._sources[clip_index] = open_source(self.clips[clip_index], **self.source_options)
        return source


class VideoValidationDataset(Dataset):
    """The first ``max_frames`` frames of every clip in a folder, uncropped, in name order."""

    def __init__(self, folder: str | os.PathLike[str], max_frames: int, *, what: str = "--val_video_dir",
                 min_frames: int = 1, source_options: Optional[Mapping[str, Any]] = None):
        """``min_frames``: what each clip must give (P-frame validation needs an I- and a
        P-frame, or its selection loss, which ``best`` and the scheduler use, is missing)."""
        _require_int("--eval_max_frames", max_frames, minimum=min_frames)
        self.folder = Path(folder)
        self.max_frames = max_frames
        self.clips: tuple[Path, ...] = tuple(list_videos(self.folder, what, split="test"))
        self.sources: tuple[FrameSource, ...] = tuple(open_source(clip, **(source_options or {}))
                                                      for clip in self.clips)
        # Decodes (grab) at most max_frames per clip: catches unreadable files now rather
        # than at the first evaluation, hours into training.
        self.infos: tuple[VideoInfo, ...] = tuple(
            VideoInfo(source.width, source.height, source.frames_up_to(max_frames)) for source in self.sources)
        for clip, info in zip(self.clips, self.infos):
            if info.frames < min_frames:
                raise UserError(f"{what}: {clip} has {info.frames} frame(s); validation needs at least "
                                f"{min_frames} per clip (an I-frame and a P-frame); remove it or use a longer clip")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        try:
            frames = self.sources[index].read_rgb8(0, self.infos[index].frames)
        except ShortClipError as exc:  # changed on disk since init: evaluate what is there
            frames = exc.frames
        return self.sources[index].name, torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


# ---------------------------------------------------------------------------- helpers

def _probe(clip: Path, options: Mapping[str, Any]) -> VideoInfo:
    """Size and frame count of a clip: an MP4 decoded once per file version
    (:func:`~dcvc_bench.data.mp4.probe_cached`), other sources from their headers."""
    if clip.is_file() and clip.suffix.lower() != ".yuv":
        return probe_cached(clip)
    source = open_source(clip, **options)
    return VideoInfo(source.width, source.height, source.num_frames)


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
