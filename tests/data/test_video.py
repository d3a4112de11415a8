"""MP4 datasets: the documented folder, decoding, skipping, resizing and seeding rules."""

from __future__ import annotations

import shutil
import warnings

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcvc_bench.data.synth import write_synthetic_clips
from dcvc_bench.data.video import (
    ShortClipError,
    SkippedClipsWarning,
    VideoGOPDataset,
    VideoInfo,
    VideoValidationDataset,
    list_videos,
    probe_video,
    read_frames,
)
from dcvc_bench.errors import UserError
from data_helpers import decode_all

CLIP_FRAMES, CLIP_WIDTH, CLIP_HEIGHT = 12, 96, 64  # what the synthetic_clips fixture holds




@pytest.fixture(scope="module")
def mixed_lengths(tmp_path_factory):
    """``long.mp4`` (12 frames) and ``short.mp4`` (4 frames), both 96x64."""
    folder = tmp_path_factory.mktemp("mixed")
    for name, frames in (("long", 12), ("short", 4)):
        (made,) = write_synthetic_clips(folder / name, videos=1, frames=frames, size=(96, 64), seed=5)
        shutil.move(made, folder / f"{name}.mp4")
        (folder / name).rmdir()
    return folder


def garbage_mp4(folder, name="broken.mp4"):
    path = folder / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def single_line_error(info) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- list_videos


def test_list_videos_finds_videos_of_any_case_sorted_not_recursive_not_hidden(tmp_path):
    for name in ("b.mp4", "a.MP4", "c.Mp4", "notes.txt", "clip.mkv", ".hidden.mp4", "._a.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.mp4").write_bytes(b"x")
    (tmp_path / "dir.mp4").mkdir()

    # .mkv is a video file OpenCV's FFmpeg backend reads (issue 13: "MP4 and other video files")
    assert [p.name for p in list_videos(tmp_path)] == ["a.MP4", "b.mp4", "c.Mp4", "clip.mkv"]


def test_list_videos_missing_folder_names_flag_path_and_remedy(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError) as info:
        list_videos(missing, what="--val_video_dir")
    message = single_line_error(info)
    assert message.startswith(f"--val_video_dir: folder {missing} does not exist")
    assert "dcvc-bench data synth" in message


def test_list_videos_folder_without_mp4_is_user_error(tmp_path):
    (tmp_path / "readme.txt").write_text("no clips here")
    with pytest.raises(UserError) as info:
        list_videos(tmp_path)
    assert single_line_error(info).startswith(f"--train_video_dir: folder {tmp_path} has no .mp4 clips")


def test_list_videos_on_a_file_is_user_error(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x")
    with pytest.raises(UserError, match="is not a folder"):
        list_videos(path)


# ---------------------------------------------------------------- decoding


def test_probe_counts_decoded_frames_and_size(synthetic_clips):
    assert probe_video(synthetic_clips / "synth_000.mp4") == VideoInfo(width=96, height=64, frames=12)


def test_read_frames_matches_sequential_decode(synthetic_clips):
    path = synthetic_clips / "synth_001.mp4"
    reference = decode_all(path)

    frames = read_frames(path, 5, 4)

    assert frames.shape == (4, CLIP_HEIGHT, CLIP_WIDTH, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, reference[5:9])
    assert np.array_equal(read_frames(path, 0, CLIP_FRAMES), reference)


def test_read_frames_returns_rgb_not_bgr(tmp_path):
    path = tmp_path / "red.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (32, 32))
    for _ in range(2):
        writer.write(np.full((32, 32, 3), (0, 0, 255), np.uint8))  # pure red in BGR
    writer.release()

    red, green, blue = read_frames(path, 0, 2).reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_read_past_the_end_raises_short_clip_with_what_decoded(synthetic_clips):
    path = synthetic_clips / "synth_000.mp4"

    with pytest.raises(ShortClipError) as info:
        read_frames(path, 10, 5)
    assert (info.value.total, info.value.requested) == (CLIP_FRAMES, 5)
    assert np.array_equal(info.value.frames, decode_all(path)[10:])

    with pytest.raises(ShortClipError) as info:
        read_frames(path, 20, 1)
    assert info.value.total == CLIP_FRAMES and len(info.value.frames) == 0


def test_corrupt_file_is_user_error_naming_it(tmp_path):
    path = garbage_mp4(tmp_path)
    for call in (lambda: read_frames(path, 0, 1), lambda: read_frames(path, 3, 1), lambda: probe_video(path)):
        with pytest.raises(UserError) as info:
            call()
        assert single_line_error(info) == (
            f"cannot decode {path}: not a readable video; re-encode it with ffmpeg or remove it"
        )


# ---------------------------------------------------------------- training dataset


def test_gop_samples_are_uint8_gop_by_3_by_crop_by_crop(synthetic_clips):
    dataset = VideoGOPDataset(synthetic_clips, gop_size=3, crop_size=48, samples_per_epoch=5, seed=0)

    assert len(dataset) == 5
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample.dtype == torch.uint8
        assert sample.shape == (3, 3, 48, 48)
    with pytest.raises(IndexError):
        dataset[5]


def find_crop(sample: np.ndarray, clips: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """Every (clip, start, top, left) at which ``sample`` (T, h, w, 3) is a crop of
    consecutive frames of one of ``clips`` (each (N, H, W, 3))."""
    gop, height, width = sample.shape[:3]
    found = []
    for c, frames in enumerate(clips):
        for start in range(len(frames) - gop + 1):
            first = frames[start]
            tops, lefts = np.nonzero(np.all(first == sample[0, 0, 0], axis=-1))
            for top, left in zip(tops, lefts):
                window = frames[start : start + gop, top : top + height, left : left + width]
                if window.shape == sample.shape and np.array_equal(window, sample):
                    found.append((c, start, int(top), int(left)))
    return found


def test_gop_sample_is_consecutive_frames_of_one_clip_with_one_crop(synthetic_clips):
    dataset = VideoGOPDataset(synthetic_clips, gop_size=4, crop_size=32, samples_per_epoch=3, seed=7)
    clips = [decode_all(path) for path in dataset.clips]

    for index in range(len(dataset)):
        sample = dataset[index].permute(0, 2, 3, 1).numpy()
        assert find_crop(sample, clips), f"sample {index} is not one crop of 4 consecutive decoded frames"


def test_length_defaults_to_number_of_usable_clips(synthetic_clips):
    assert len(VideoGOPDataset(synthetic_clips, gop_size=2, crop_size=32)) == 2


def test_same_seed_and_epoch_reproduce_samples_other_epochs_differ(synthetic_clips):
    def epoch_samples(seed, epoch):
        dataset = VideoGOPDataset(synthetic_clips, gop_size=2, crop_size=32, samples_per_epoch=4, seed=seed)
        dataset.set_epoch(epoch)
        return torch.stack([dataset[i] for i in range(len(dataset))])

    first = epoch_samples(seed=1, epoch=0)
    assert torch.equal(first, epoch_samples(seed=1, epoch=0))
    assert not torch.equal(first, epoch_samples(seed=1, epoch=1))
    assert not torch.equal(first, epoch_samples(seed=2, epoch=0))
    # items within an epoch are not copies of one another
    assert len({bytes(sample.numpy()) for sample in first}) == len(first)


def test_dataloader_workers_reproduce_single_process_batches(synthetic_clips):
    dataset = VideoGOPDataset(synthetic_clips, gop_size=2, crop_size=32, samples_per_epoch=6, seed=3)
    dataset.set_epoch(2)

    serial = torch.cat(list(DataLoader(dataset, batch_size=2, num_workers=0)))
    parallel = torch.cat(list(DataLoader(dataset, batch_size=2, num_workers=2)))

    assert torch.equal(serial, parallel)
    assert len({bytes(sample.numpy()) for sample in parallel}) == 6


def test_crop_larger_than_clip_resizes_keeping_aspect(synthetic_clips):
    dataset = VideoGOPDataset(synthetic_clips, gop_size=2, crop_size=128, samples_per_epoch=3, seed=0)
    # 96x64 scaled by 2 so that the short side is the crop: 192x128, bicubic
    upscaled = [
        np.stack([cv2.resize(frame, (192, 128), interpolation=cv2.INTER_CUBIC) for frame in decode_all(path)])
        for path in dataset.clips
    ]

    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample.shape == (2, 3, 128, 128) and sample.dtype == torch.uint8
        assert find_crop(sample.permute(0, 2, 3, 1).numpy(), upscaled)


def test_short_clips_are_skipped_with_one_warning_naming_them(mixed_lengths):
    with pytest.warns(SkippedClipsWarning) as record:
        dataset = VideoGOPDataset(mixed_lengths, gop_size=5, crop_size=32, seed=0)

    assert len(record) == 1
    message = str(record[0].message)
    assert "short.mp4 (4 frames)" in message and "--gop_size 5" in message and "long.mp4" not in message
    assert [p.name for p in dataset.clips] == ["long.mp4"]
    assert [p.name for p in dataset.skipped] == ["short.mp4"]
    assert dataset[0].shape == (5, 3, 32, 32)


def test_no_warning_when_every_clip_is_long_enough(mixed_lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VideoGOPDataset(mixed_lengths, gop_size=4, crop_size=32)


def test_every_clip_too_short_is_user_error(mixed_lengths):
    with pytest.raises(UserError) as info:
        VideoGOPDataset(mixed_lengths, gop_size=13, crop_size=32, what="--train_video_dir")
    message = single_line_error(info)
    assert message.startswith(f"--train_video_dir: all 2 clips in {mixed_lengths} have fewer than --gop_size 13")
    assert "long.mp4, 12 frames" in message


def test_training_folder_errors_are_user_errors_naming_the_path(tmp_path):
    with pytest.raises(UserError, match=f"folder {tmp_path / 'missing'} does not exist"):
        VideoGOPDataset(tmp_path / "missing", gop_size=2, crop_size=32)
    with pytest.raises(UserError, match="has no .mp4 clips"):
        VideoGOPDataset(tmp_path, gop_size=2, crop_size=32)
    broken = garbage_mp4(tmp_path)
    with pytest.raises(UserError) as info:
        VideoGOPDataset(tmp_path, gop_size=2, crop_size=32)
    assert single_line_error(info).startswith(f"cannot decode {broken}")


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [({"gop_size": 0}, "--gop_size"), ({"crop_size": -1}, "--crop_size"), ({"seed": -5}, "--seed")],
)
def test_bad_dataset_arguments_are_user_errors(synthetic_clips, kwargs, option):
    arguments = {"gop_size": 2, "crop_size": 32, **kwargs}
    with pytest.raises(UserError, match=f"^{option}: must be a whole number"):
        VideoGOPDataset(synthetic_clips, **arguments)


# ---------------------------------------------------------------- validation dataset


def test_validation_items_are_the_first_frames_exactly(synthetic_clips):
    dataset = VideoValidationDataset(synthetic_clips, max_frames=5)

    assert len(dataset) == 2
    for index, path in enumerate(sorted(synthetic_clips.glob("*.mp4"))):
        name, frames = dataset[index]
        assert name == path.stem
        assert frames.dtype == torch.uint8 and frames.shape == (5, 3, CLIP_HEIGHT, CLIP_WIDTH)
        assert np.array_equal(frames.permute(0, 2, 3, 1).numpy(), decode_all(path)[:5])


def test_validation_caps_at_available_frames(synthetic_clips):
    name, frames = VideoValidationDataset(synthetic_clips, max_frames=100)[1]

    assert name == "synth_001" and frames.shape[0] == CLIP_FRAMES


def test_validation_folder_errors_are_user_errors_naming_the_path(tmp_path):
    with pytest.raises(UserError, match=f"^--val_video_dir: folder {tmp_path / 'missing'} does not exist"):
        VideoValidationDataset(tmp_path / "missing", max_frames=3)
    with pytest.raises(UserError, match="^--val_video_dir: .*has no .mp4 clips"):
        VideoValidationDataset(tmp_path, max_frames=3)
    broken = garbage_mp4(tmp_path)
    with pytest.raises(UserError) as info:
        VideoValidationDataset(tmp_path, max_frames=3)
    assert single_line_error(info).startswith(f"cannot decode {broken}")


# ---------------------------------------------------------------- clips that change under us


@pytest.fixture()
def own_clips(tmp_path, synthetic_clips):
    """A private copy of the shared clips, safe to overwrite."""
    folder = tmp_path / "clips"
    shutil.copytree(synthetic_clips, folder)
    return folder


def test_clips_are_probed_once_per_file_version(own_clips, monkeypatch):
    from dcvc_bench.data import mp4

    probed = []
    real_probe = mp4.probe_video
    monkeypatch.setattr(mp4, "probe_video", lambda path: probed.append(path.name) or real_probe(path))

    VideoGOPDataset(own_clips, gop_size=2, crop_size=32)
    VideoGOPDataset(own_clips, gop_size=3, crop_size=32)
    assert sorted(probed) == ["synth_000.mp4", "synth_001.mp4"]

    write_synthetic_clips(own_clips, videos=1, frames=6, size=(96, 64), seed=9)  # replaces synth_000
    assert VideoGOPDataset(own_clips, gop_size=2, crop_size=32).infos[0].frames == 6
    assert sorted(probed) == ["synth_000.mp4", "synth_000.mp4", "synth_001.mp4"]


def test_clip_ending_earlier_than_probed_still_yields_gops_from_what_decodes(synthetic_clips):
    dataset = VideoGOPDataset(synthetic_clips, gop_size=4, crop_size=32, samples_per_epoch=8, seed=0)
    dataset.infos[:] = [VideoInfo(info.width, info.height, 40) for info in dataset.infos]  # overstated

    assert all(dataset[i].shape == (4, 3, 32, 32) for i in range(len(dataset)))
    assert {info.frames for info in dataset.infos} <= {CLIP_FRAMES, 40}
    assert CLIP_FRAMES in {info.frames for info in dataset.infos}


def test_clip_shrunk_below_the_gop_after_init_is_user_error_naming_it(own_clips):
    dataset = VideoGOPDataset(own_clips, gop_size=6, crop_size=32, samples_per_epoch=4, seed=0)
    write_synthetic_clips(own_clips, videos=2, frames=3, size=(96, 64), seed=0)

    with pytest.raises(UserError) as info:
        dataset[0]
    message = single_line_error(info)
    assert message.startswith(f"cannot use {own_clips}")
    assert "now decodes only 3 frames, not the 12" in message


def test_validation_clip_shrunk_after_init_returns_what_decodes(own_clips):
    dataset = VideoValidationDataset(own_clips, max_frames=8)
    write_synthetic_clips(own_clips, videos=1, frames=5, size=(96, 64), seed=0)

    name, frames = dataset[0]
    assert name == "synth_000" and frames.shape == (5, 3, CLIP_HEIGHT, CLIP_WIDTH)


def test_pframe_validation_refuses_a_one_frame_clip_naming_it(tmp_path):
    """A clip without a P-frame has no selection loss: training would never save ``best``."""
    import cv2

    clip = tmp_path / "one.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64))
    writer.write(np.full((64, 64, 3), 128, np.uint8))
    writer.release()
    assert len(VideoValidationDataset(tmp_path, max_frames=4)) == 1  # the I-frame trainer's use
    with pytest.raises(UserError, match=f"^--val_video_dir: {clip} has 1 frame.*at least 2 per clip"):
        VideoValidationDataset(tmp_path, max_frames=4, min_frames=2)
    with pytest.raises(UserError, match="^--eval_max_frames: must be a whole number >= 2, got 1"):
        VideoValidationDataset(tmp_path, max_frames=1, min_frames=2)
