"""dcvc_bench.data.sources / clips: the reader chosen by what the path is, file-name
patterns, folder rules, and the one-line errors for bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dcvc_bench.clips import clip_size, list_frames, list_videos, yuv_name_info
from dcvc_bench.data.sources import open_source
from dcvc_bench.errors import UserError
from data_helpers import decode_all
from yuv_helpers import make_yuv

W, H = 96, 64


@pytest.mark.parametrize("name,expected", [
    ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", dict(width=1920, height=1080, fps=120.0, bit_depth=8)),
    ("BQMall_832x480_60.yuv", dict(width=832, height=480, fps=60.0)),
    ("X_416x240_30fps_420_10bit_YUV.yuv", dict(width=416, height=240, fps=30.0, bit_depth=10)),
    ("Bosphorus_3840x2160_120fps_10bit_420.yuv", dict(width=3840, height=2160, fps=120.0, bit_depth=10)),
    ("videoSRC01_1920x1080_30.yuv", dict(width=1920, height=1080, fps=30.0)),
    ("clip_64x64_yuv420p10le.yuv", dict(width=64, height=64, bit_depth=10)),
    ("RaceHorses_416x240_30_444.yuv", dict(width=416, height=240, fps=30.0, chroma="444")),
    ("nothing.yuv", {}),
])
def test_yuv_names(name, expected):
    assert yuv_name_info(name) == expected


@pytest.fixture(scope="module")
def yuv8(synthetic_clips, tmp_path_factory):
    return make_yuv(synthetic_clips / "synth_000.mp4",
                    tmp_path_factory.mktemp("yuv") / f"X_{W}x{H}_30fps_420_8bit_YUV.yuv", 8)


def test_yuv_frames_are_read_at_their_byte_offsets(yuv8):
    source = open_source(yuv8)
    assert (source.kind, source.width, source.height, source.fps, source.bit_depth, source.num_frames) == \
        ("yuv", W, H, 30.0, 8, 12)
    raw = np.fromfile(yuv8, np.uint8).reshape(12, -1)
    for index in (0, 7, 11):
        y, u, v = source.read_yuv(index)
        assert y.shape == (H, W) and u.shape == v.shape == (H // 2, W // 2)
        assert np.array_equal(np.concatenate([y.ravel(), u.ravel(), v.ravel()]), raw[index])
    rgb8 = source.read_rgb8(3, 2)
    assert rgb8.shape == (2, H, W, 3) and rgb8.dtype == np.uint8
    assert np.array_equal(rgb8[1], np.rint(source.read_rgb(4) * 255).astype(np.uint8))
    with pytest.raises(IndexError):
        source.read_yuv(12)


def test_yuv_size_given_explicitly_and_winning_over_the_name(yuv8, tmp_path):
    unnamed = tmp_path / "unnamed.yuv"
    unnamed.write_bytes(yuv8.read_bytes())
    with pytest.raises(UserError) as info:
        open_source(unnamed)
    assert str(info.value).startswith(f"cannot read {unnamed}: its frame size is not in the name")
    source = open_source(unnamed, width=W, height=H)
    assert np.array_equal(source.read_yuv(5)[0], open_source(yuv8).read_yuv(5)[0])
    as_tall = open_source(yuv8, width=W, height=2 * H)  # explicit wins: 6 frames of twice the height
    assert (as_tall.height, as_tall.num_frames) == (2 * H, 6)


def test_yuv_not_a_whole_number_of_frames_names_the_file(yuv8, tmp_path):
    cut = tmp_path / f"cut_{W}x{H}_30.yuv"
    cut.write_bytes(yuv8.read_bytes()[:-10])
    with pytest.raises(UserError) as info:
        open_source(cut)
    message = str(info.value)
    assert message.startswith(f"cannot read {cut}: its {W * H * 3 // 2 * 12 - 10} bytes are not a whole number")
    assert "\n" not in message and f"{W * H * 3 // 2} bytes each" in message
    ten = tmp_path / f"X_{W}x{H}_30fps_420_10bit.yuv"  # an 8-bit file named 10-bit: 6 frames, no error
    ten.write_bytes(yuv8.read_bytes())
    assert open_source(ten).num_frames == 6


def _write_pngs(folder, frames, pattern):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / pattern.format(i + 1)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def decoded(synthetic_clips):
    return decode_all(synthetic_clips / "synth_000.mp4")


def test_png_folder_in_natural_order(decoded, tmp_path):
    folder = _write_pngs(tmp_path / "clip", decoded, "im{}.png")  # im1 .. im12: im10 after im9
    source = open_source(folder)
    assert (source.kind, source.name, source.width, source.height, source.num_frames) == ("frames", "clip", W, H, 12)
    assert np.array_equal(source.read_rgb8(0, 12), decoded)
    assert np.allclose(source.read_rgb(9), decoded[9] / 255)
    y, u, v = source.read_yuv(0)
    assert y.dtype == np.uint8 and u.shape == (H // 2, W // 2)
    assert clip_size(folder) == (W, H)
    assert list_videos(folder) == [folder]  # a folder of frames is itself one clip


def test_missing_frame_in_a_folder_is_named(decoded, tmp_path):
    folder = _write_pngs(tmp_path / "clip", decoded[:5], "{:05d}.png")
    (folder / "00003.png").unlink()
    with pytest.raises(UserError) as info:
        open_source(folder)
    assert str(info.value) == (f"frame folder {folder}: frame 00003.png is missing (between 00002.png and "
                               "00004.png); restore it or renumber the frames")
    broken = _write_pngs(tmp_path / "broken", decoded[:2], "im{}.png")
    (broken / "im2.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=f"^cannot read {broken / 'im2.png'}: not a readable PNG/JPEG image"):
        open_source(broken).read_rgb8(0, 2)


def test_a_folder_lists_videos_yuv_files_and_frame_folders(synthetic_clips, yuv8, decoded, tmp_path):
    (tmp_path / "a.mp4").write_bytes((synthetic_clips / "synth_000.mp4").read_bytes())
    (tmp_path / yuv8.name).write_bytes(yuv8.read_bytes())
    _write_pngs(tmp_path / "frames", decoded[:3], "{:05d}.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_videos(tmp_path)] == [yuv8.name, "a.mp4", "frames"]
    kinds = [open_source(p).kind for p in list_videos(tmp_path)]
    assert kinds == ["yuv", "video", "frames"]
    assert clip_size(tmp_path / yuv8.name) == (W, H)


def test_vimeo_tree_lists_the_septuplets_of_its_lists(decoded, tmp_path):
    for seq in ("00001/0001", "00001/0002", "00002/0001"):
        _write_pngs(tmp_path / "sequences" / seq, decoded[:7], "im{}.png")
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n00002/0001\n")
    (tmp_path / "sep_testlist.txt").write_text("00001/0002\n")
    train = list_videos(tmp_path)
    assert train == [tmp_path / "sequences/00001/0001", tmp_path / "sequences/00002/0001"]
    assert list_videos(tmp_path, split="test") == [tmp_path / "sequences/00001/0002"]
    assert [open_source(p).name for p in train] == ["00001_0001", "00002_0001"]
    assert [len(list_frames(p)) for p in train] == [7, 7]
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n00009/0009\n")
    with pytest.raises(UserError, match=r"sep_trainlist.txt line 2 names 00009/0009, but .* is not a folder"):
        list_videos(tmp_path)
    (tmp_path / "sep_testlist.txt").unlink()
    with pytest.raises(UserError, match="is a Vimeo-90k tree without sep_testlist.txt"):
        list_videos(tmp_path, split="test")


def test_mp4_through_the_same_interface(synthetic_clips, decoded):
    source = open_source(synthetic_clips / "synth_000.mp4")
    assert (source.kind, source.width, source.height, source.bit_depth, source.num_frames) == ("video", W, H, 8, 12)
    assert np.array_equal(source.read_rgb8(2, 3), decoded[2:5])
    assert source.frames_up_to(5) == 5


def test_not_a_clip(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        open_source(tmp_path / "nope.yuv")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="not a clip"):
        open_source(tmp_path / "notes.txt")


def test_a_symlink_with_the_size_in_its_name_reads_an_unnamed_file(yuv8, tmp_path):
    unnamed = tmp_path / "unnamed.yuv"
    unnamed.write_bytes(yuv8.read_bytes())
    link = tmp_path / f"unnamed_{W}x{H}_30.yuv"
    link.symlink_to(unnamed)
    assert open_source(link).num_frames == 12


def test_the_iframe_step_datasets_read_yuv_files_and_septuplets(yuv8, decoded, tmp_path):
    from dcvc_bench.data.frames import FrameCropDataset, ValidationFrames

    folder = tmp_path / "yuv"
    folder.mkdir()
    (folder / yuv8.name).write_bytes(yuv8.read_bytes())
    crops = FrameCropDataset(folder, crop_size=32, seed=1)
    assert len(crops) == 12 and tuple(crops[0].shape) == (3, 32, 32)
    vimeo = tmp_path / "vimeo"
    for seq in ("00001/0001", "00001/0002"):
        _write_pngs(vimeo / "sequences" / seq, decoded[:7], "im{}.png")
    (vimeo / "sep_trainlist.txt").write_text("00001/0001\n")
    (vimeo / "sep_testlist.txt").write_text("00001/0002\n")
    assert len(FrameCropDataset(vimeo, crop_size=32)) == 7
    val = ValidationFrames(vimeo, frames_per_clip=2)
    assert [val[i][0] for i in range(len(val))] == ["00001_0002#0", "00001_0002#1"]
    assert val[1][1].shape == (1, 3, H, W)


def test_frame_sizes_and_depths_from_headers_match_the_decoded_images(decoded, tmp_path):
    for ext, depth in ((".png", 8), (".jpg", 8), (".png", 16)):
        folder = tmp_path / f"{ext[1:]}{depth}"
        folder.mkdir()
        image = decoded[0].astype(np.uint16) * 257 if depth == 16 else decoded[0]
        assert cv2.imwrite(str(folder / f"00001{ext}"), image)
        source = open_source(folder)
        assert (source.width, source.height, source.bit_depth) == (W, H, depth)
        rgb = source.read_rgb(0)
        assert rgb.shape == (H, W, 3) and (ext == ".jpg" or np.allclose(rgb, decoded[0][..., ::-1] / 255, atol=1e-6))
