"""The decoded-frame cache: the same samples as decoding the MP4s, one file per clip
version, written atomically, refused when damaged."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcvc_bench.data.frame_cache import cache_path
from dcvc_bench.data.synth import write_synthetic_clips
from dcvc_bench.data.video import VideoGOPDataset
from dcvc_bench.errors import UserError


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    write_synthetic_clips(folder, videos=2, frames=9, size=(96, 64), seed=3)
    return folder


def test_cached_samples_equal_decoded_ones_also_through_workers(clips, tmp_path):
    plain = VideoGOPDataset(clips, 3, 48, samples_per_epoch=12, seed=5)
    cached = VideoGOPDataset(clips, 3, 48, samples_per_epoch=12, seed=5, frame_cache=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        cache_path(c, tmp_path / "cache").name for c in plain.clips)
    for i in range(len(plain)):
        assert torch.equal(plain[i], cached[i]), i
    batches = [b for b in DataLoader(cached, batch_size=4, num_workers=2)]
    assert torch.equal(torch.cat(batches), torch.stack([plain[i] for i in range(12)]))


def test_an_entry_is_reused_and_a_changed_clip_gets_a_new_one(clips, tmp_path):
    folder = tmp_path / "cache"
    VideoGOPDataset(clips, 2, 32, frame_cache=folder)
    first = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    VideoGOPDataset(clips, 2, 32, frame_cache=folder)  # reused: not rewritten
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == first
    clip = sorted(clips.glob("*.mp4"))[0]
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    VideoGOPDataset(clips, 2, 32, frame_cache=folder)
    assert len(list(folder.iterdir())) == 3 and not any(p.name.startswith(".") for p in folder.iterdir())


def test_a_truncated_entry_is_one_line_naming_it(clips, tmp_path):
    folder = tmp_path / "cache"
    ds = VideoGOPDataset(clips, 2, 32, samples_per_epoch=40, frame_cache=folder)
    entry = cache_path(ds.clips[0], folder)
    with open(entry, "r+b") as fh:
        fh.truncate(entry.stat().st_size - 1000)
    ds = VideoGOPDataset(clips, 2, 32, samples_per_epoch=40, frame_cache=folder)
    with pytest.raises(UserError, match="truncated"):
        for i in range(len(ds)):
            ds[i]


def test_a_file_that_is_not_an_entry_is_refused(clips, tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    clip = sorted(clips.glob("*.mp4"))[0]
    np.save(cache_path(clip, folder), np.zeros((4, 8), np.float32))
    with pytest.raises(UserError, match="not a frame-cache entry"):
        VideoGOPDataset(clips, 2, 32, frame_cache=folder)
