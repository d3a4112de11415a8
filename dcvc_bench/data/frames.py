"""Single frames for the I-frame training step, read by :mod:`dcvc_bench.data.video`'s
reader with its folder, bad-file, short-clip and seeding rules.

- :class:`FrameCropDataset`: a sample is one random ``crop_size`` × ``crop_size`` crop of
  one random frame of a random training clip (a GOP of one frame of
  :class:`~dcvc_bench.data.video.VideoGOPDataset`: a uniformly random clip, a uniformly
  random frame, clips smaller than the crop scaled up first), uint8 ``3 × H × W`` RGB.
  An epoch is ``samples_per_epoch`` samples, by default as many as the clips have frames.
  Randomness is ``(seed, epoch, index)``: call :meth:`set_epoch` before each epoch.
- :class:`ValidationFrames`: the first ``frames_per_clip`` frames of every validation
  clip at their original size, item ``i`` = ``(name, uint8 1 × 3 × H × W)``; ``name`` is
  ``<clip>`` or ``<clip>#<frame>``.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

from dcvc_bench.data.video import VideoGOPDataset, VideoValidationDataset


class FrameCropDataset(VideoGOPDataset):
    def __init__(self, folder: str | os.PathLike[str], crop_size: int, samples_per_epoch: int | None = None,
                 seed: int = 0, *, what: str = "--train_video_dir"):
        super().__init__(folder, 1, crop_size, samples_per_epoch, seed, what=what)

    def __len__(self) -> int:
        if self.samples_per_epoch is not None:
            return self.samples_per_epoch
        return sum(info.frames for info in self.infos)

    def __getitem__(self, index: int) -> torch.Tensor:
        return super().__getitem__(index)[0]


class ValidationFrames(Dataset):
    def __init__(self, folder: str | os.PathLike[str], frames_per_clip: int = 1, *, what: str = "--val_video_dir"):
        self.clips = VideoValidationDataset(folder, frames_per_clip, what=what)
        self.items = [(c, f) for c, info in enumerate(self.clips.infos) for f in range(info.frames)]
        self._cached: tuple[int, tuple[str, torch.Tensor]] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor]:
        clip, frame = self.items[index]
        if self._cached is None or self._cached[0] != clip:  # one decode per clip, in order
            self._cached = (clip, self.clips[clip])
        name, frames = self._cached[1]
        frame = min(frame, frames.shape[0] - 1)  # a clip that shrank on disk: its last frame
        label = name if self.clips.infos[clip].frames == 1 else f"{name}#{frame}"
        return label, frames[frame : frame + 1]


__all__ = ["FrameCropDataset", "ValidationFrames"]
