"""`dcvc-bench data convert` (MP4 <-> YUV <-> PNG) and the one-line, exit-2 errors for bad
sources, through the real command (and once through the real trainer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.data.sources import open_source
from yuv_helpers import PIX_FMT, ffmpeg, ffmpeg_rgb, make_yuv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import run_subprocess, step_argv  # noqa: E402

W, H = 96, 64
runner = CliRunner()


def convert(*args) -> str:
    result = runner.invoke(app, ["data", "convert", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(*args) -> str:
    result = runner.invoke(app, ["data", "convert", *map(str, args)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def yuv(synthetic_clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conv")
    return {bits: make_yuv(synthetic_clips / "synth_000.mp4", folder / f"X_{W}x{H}_30fps_420_{bits}bit_YUV.yuv", bits)
            for bits in (8, 10)}


def test_yuv_to_png_is_ffmpegs_bt709_full_range_conversion(yuv, tmp_path):
    out = convert(yuv[8], tmp_path / "png")
    assert "12 frames of 96x64, 8-bit PNG frames im00001.png..., RGB by BT.709 full range" in out
    reference = ffmpeg_rgb(yuv[8], W, H, 8)
    for index in (0, 11):
        png = cv2.cvtColor(cv2.imread(str(tmp_path / "png" / f"im{index + 1:05d}.png")), cv2.COLOR_BGR2RGB)
        assert np.abs(png.astype(float) - reference[index] * 255).max() <= 1.0
    # and back: the same planes within rounding (4:2:0 of replicated chroma averages back)
    convert(tmp_path / "png", tmp_path / f"back_{W}x{H}_8bit.yuv")
    back = np.fromfile(tmp_path / f"back_{W}x{H}_8bit.yuv", np.uint8).astype(int)
    original = np.fromfile(yuv[8], np.uint8).astype(int)
    assert back.shape == original.shape and np.mean(np.abs(back - original) <= 1) > 0.98


@pytest.mark.parametrize("bits", [8, 10])
def test_yuv_to_mp4_is_lossless_and_tagged(yuv, bits, tmp_path):
    mp4 = tmp_path / "x.mp4"
    assert "H.264 lossless" in convert(yuv[bits], mp4)
    decoded = tmp_path / "decoded.yuv"
    # full range kept on the way out (asked for plain yuv420p, ffmpeg would convert the
    # full-range-tagged 8-bit stream to limited range: the tag at work)
    ffmpeg("-i", str(mp4), "-vf", "scale=in_range=full:out_range=full", "-pix_fmt", PIX_FMT[bits], "-f", "rawvideo",
           str(decoded))
    assert decoded.read_bytes() == yuv[bits].read_bytes()
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=color_range,color_space", "-of",
                            "compact=p=0:nk=1", str(mp4)], capture_output=True, text=True, check=True).stdout
    assert probe.strip() == "pc|bt709"


def test_yuv_copy_is_bit_exact_and_frames_limit(yuv, tmp_path):
    out = tmp_path / "first4_96x64_30fps_420_10bit.yuv"
    convert(yuv[10], out, "--frames", 4)
    assert out.read_bytes() == yuv[10].read_bytes()[:4 * W * H * 3 // 2 * 2]
    assert open_source(out).num_frames == 4


def test_mp4_to_yuv_uses_the_stated_matrix(synthetic_clips, tmp_path):
    for matrix in ("bt709", "bt601"):
        convert(synthetic_clips / "synth_000.mp4", tmp_path / f"{matrix}_{W}x{H}_8bit.yuv", "--matrix", matrix)
    a, b = (np.fromfile(tmp_path / f"{m}_{W}x{H}_8bit.yuv", np.uint8) for m in ("bt709", "bt601"))
    assert a.shape == b.shape == (12 * W * H * 3 // 2,) and not np.array_equal(a, b)
    rgb = open_source(synthetic_clips / "synth_000.mp4").read_rgb(0)
    back = open_source(tmp_path / f"bt601_{W}x{H}_8bit.yuv", matrix="bt601").read_rgb(0)
    assert np.abs(back - rgb).mean() * 255 < 2


# ------------------------------------------------------------------- bad input: one line, exit 2


def test_bad_sources_are_one_line_naming_the_file(yuv, tmp_path):
    unnamed = tmp_path / "unnamed.yuv"
    unnamed.write_bytes(yuv[8].read_bytes())
    assert refused(unnamed, tmp_path / "o.mp4").startswith(f"error: cannot read {unnamed}: its frame size is not "
                                                           "in the name")
    cut = tmp_path / f"cut_{W}x{H}_30fps.yuv"
    cut.write_bytes(yuv[8].read_bytes()[:-1])
    assert "are not a whole number of 96x64 4:2:0 8-bit frames" in refused(cut, tmp_path / "o.mp4")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (1, 2, 4):
        cv2.imwrite(str(frames / f"im{i}.png"), np.zeros((H, W, 3), np.uint8))
    assert refused(frames, tmp_path / "o.yuv") == (f"error: frame folder {frames}: frame im3.png is missing (between "
                                                  "im2.png and im4.png); restore it or renumber the frames")
    assert "its name says 1920x1080 but the frames are 96x64" in refused(yuv[8], tmp_path / "o_1920x1080.yuv")
    assert not list(tmp_path.glob("o*"))  # nothing written
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert "exists and is not an empty folder" in refused(yuv[8], tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert "--range: must be full or limited" in refused(yuv[8], tmp_path / "o.yuv", "--range", "tv")


def test_the_trainer_refuses_a_bad_yuv_in_one_line(yuv, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "clip.yuv").write_bytes(yuv[8].read_bytes())  # no size in the name
    done = run_subprocess(step_argv(data, tmp_path / "ck", tmp_path / "ev.jsonl", stage=1), timeout=300)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: cannot read {data / 'clip.yuv'}: its frame size is not in the name; rename or "
                      "symlink it to a name that says it, like NAME_1920x1080_30fps_420_8bit.yuv (`data convert` "
                      "also takes --size WxH)"], done.stderr
    assert "Traceback" not in done.stderr
