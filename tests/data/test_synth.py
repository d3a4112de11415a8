"""Synthetic clip generator: deterministic, really moving, written safely, strict about
its options."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dcvc_bench.data import synth
from dcvc_bench.data.synth import parse_size, write_synthetic_clips
from dcvc_bench.errors import UserError
from data_helpers import decode_all




def test_writes_requested_clips_with_exact_frame_count_and_size(tmp_path):
    paths = write_synthetic_clips(tmp_path / "new" / "clips", videos=3, frames=7, size=(48, 32), seed=1)

    assert [p.name for p in paths] == ["synth_000.mp4", "synth_001.mp4", "synth_002.mp4"]
    for path in paths:
        assert decode_all(path).shape == (7, 32, 48, 3)
    assert sorted(p.name for p in (tmp_path / "new" / "clips").iterdir()) == [p.name for p in paths]


def test_same_seed_gives_identical_decoded_frames(tmp_path, synthetic_clips):
    again = write_synthetic_clips(tmp_path, videos=2, frames=12, size=(96, 64), seed=0)

    for path in again:
        assert np.array_equal(decode_all(path), decode_all(synthetic_clips / path.name))


def test_different_seed_or_clip_gives_different_frames(tmp_path, synthetic_clips):
    (other,) = write_synthetic_clips(tmp_path, videos=1, frames=12, size=(96, 64), seed=1)
    first, second = (decode_all(synthetic_clips / name) for name in ("synth_000.mp4", "synth_001.mp4"))

    assert np.abs(decode_all(other).astype(int) - first).mean() > 10
    assert np.abs(second.astype(int) - first).mean() > 10


def test_consecutive_frames_differ(synthetic_clips):
    frames = decode_all(synthetic_clips / "synth_000.mp4").astype(np.float32)

    diffs = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert (diffs > 2.0).all(), diffs


@pytest.mark.parametrize("name", ["synth_000.mp4", "synth_001.mp4"])
def test_background_pans_and_objects_move_on_their_own(synthetic_clips, name):
    gray = decode_all(synthetic_clips / name).astype(np.float32).mean(axis=3)
    height, width = gray.shape[1:]
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    shifts, residual_median, raw_median, residual_tail = [], [], [], []
    for before, after in zip(gray[:-1], gray[1:]):
        # phaseCorrelate windows its inputs in place: give it copies
        (dx, dy), _ = cv2.phaseCorrelate(before.copy(), after.copy(), window)
        shifts.append(np.hypot(dx, dy))
        aligned = cv2.warpAffine(before, np.float32([[1, 0, dx], [0, 1, dy]]), (width, height),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        residual = np.abs(aligned - after)[8:-8, 8:-8]
        residual_median.append(np.median(residual))
        residual_tail.append(np.percentile(residual, 98))
        raw_median.append(np.median(np.abs(before - after)[8:-8, 8:-8]))

    # a global, sub-pixel-capable pan: a measurable shift that explains most of the change...
    assert np.median(shifts) > 0.5
    assert np.median(residual_median) < 0.8 * np.median(raw_median)
    # ...and something the pan does not explain: the independently moving objects
    assert np.median(residual_tail) > 3 * np.median(residual_median)


def test_clip_frames_streams_rgb_uint8_frames():
    frames = list(synth.clip_frames(3, (40, 24), np.random.default_rng(0)))

    assert len(frames) == 3
    assert all(f.shape == (24, 40, 3) and f.dtype == np.uint8 for f in frames)


def test_rewriting_replaces_clips_and_leaves_no_temp_files(tmp_path):
    write_synthetic_clips(tmp_path, videos=1, frames=3, size=(32, 32), seed=0)
    write_synthetic_clips(tmp_path, videos=1, frames=4, size=(32, 32), seed=0)

    assert [p.name for p in tmp_path.iterdir()] == ["synth_000.mp4"]
    assert len(decode_all(tmp_path / "synth_000.mp4")) == 4


def test_writer_that_cannot_open_is_a_user_error_and_leaves_nothing(tmp_path, monkeypatch):
    class ClosedWriter:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(synth.cv2, "VideoWriter", ClosedWriter)

    with pytest.raises(UserError, match="cannot write .*synth_000.mp4.*VideoWriter"):
        write_synthetic_clips(tmp_path, videos=1, frames=2, size=(32, 32))
    assert list(tmp_path.iterdir()) == []


def test_output_path_that_is_a_file_is_a_user_error(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")

    with pytest.raises(UserError, match="cannot create output folder .*taken"):
        write_synthetic_clips(blocker / "clips", videos=1, frames=2, size=(32, 32))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("256x128", (256, 128)), ("64X32", (64, 32)), (" 320 x 240 ", (320, 240))],
)
def test_parse_size_reads_width_by_height(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["256", "256x", "x128", "256x128x3", "-16x16", "a x b", "16.5x16", ""])
def test_parse_size_rejects_malformed_text_naming_the_option(text):
    with pytest.raises(UserError, match=r"^--size: expected WIDTHxHEIGHT"):
        parse_size(text)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"videos": 0}, "--videos"),
        ({"frames": 1}, "--frames"),
        ({"seed": -1}, "--seed"),
        ({"size": (8, 64)}, "--size: width"),
        ({"size": (64, 33)}, "--size: height"),
        ({"size": (64,)}, "--size"),
        ({"frames": 2.5}, "--frames"),
    ],
)
def test_bad_options_are_user_errors_naming_the_option(tmp_path, kwargs, option):
    with pytest.raises(UserError) as info:
        write_synthetic_clips(tmp_path / "out", **kwargs)
    assert str(info.value).startswith(option)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
