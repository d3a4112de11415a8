"""x265/x264 baselines: real ffmpeg on synthetic clips, bits from the bare elementary
stream, our PSNR pinned to ffmpeg's own psnr filter, clean errors without ffmpeg."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.data.video import read_frames
from dcvc_bench.errors import UserError
from dcvc_bench.eval import baselines as bl
from dcvc_bench.eval.metrics import mse, mse_to_psnr, psnr

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="needs ffmpeg and ffprobe (apt-get install -y ffmpeg)")


@pytest.fixture(scope="module")
def clip(synthetic_clips):
    """8 frames, 96x64 RGB uint8, as the evaluation decodes them."""
    return read_frames(synthetic_clips / "synth_000.mp4", 0, 8)


@pytest.fixture(scope="module")
def ffmpeg():
    return bl.find_ffmpeg()


def _as_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).float() / 255.0


@pytest.mark.parametrize("codec", ["x265", "x264"])
def test_bits_fall_as_qp_rises_and_the_command_is_recorded(ffmpeg, clip, codec):
    low, high = (bl.run_baseline(ffmpeg, bl.BaselinePoint(codec, "medium", "qp", qp), clip, 4) for qp in (27, 37))
    assert high.stream_bytes < low.stream_bytes
    assert psnr(_as_tensor(clip), _as_tensor(high.decoded)).mean() < psnr(_as_tensor(clip), _as_tensor(low.decoded)).mean()
    argv = high.encode_argv
    assert argv[0] == ffmpeg and isinstance(argv, list)
    params = argv[argv.index(f"-{codec}-params") + 1].split(":")
    assert "qp=37" in params and "bframes=0" in params and "keyint=4" in params and "scenecut=0" in params
    if codec == "x265":
        assert "info=0" in params
    else:
        assert argv[argv.index("-bsf:v") + 1] == "filter_units=remove_types=6"
    assert argv[argv.index("-pix_fmt", argv.index("-vf")) + 1] == "yuv444p"
    assert high.decoded.shape == clip.shape and high.decoded.dtype == np.uint8


@pytest.mark.parametrize("codec, muxer, sei_types", [("x265", "hevc", {39, 40}), ("x264", "h264", {6})])
def test_bits_are_the_bare_elementary_stream_without_sei(ffmpeg, clip, tmp_path, codec, muxer, sei_types):
    point = bl.BaselinePoint(codec, "medium", "qp", 32)
    result = bl.run_baseline(ffmpeg, point, clip, 4)
    # Re-encode by hand with the recorded command to see the file itself.
    argv = [a if a != f"stream.{muxer}" else str(tmp_path / f"s.{muxer}") for a in result.encode_argv]
    subprocess.run(argv, input=np.ascontiguousarray(clip).tobytes(), check=True)
    data = (tmp_path / f"s.{muxer}").read_bytes()
    assert len(data) == result.stream_bytes  # deterministic, and the size counted is the file's
    assert data[:4] == b"\x00\x00\x00\x01"   # Annex B from byte 0: no container header
    assert sum(u.size for u in result.units) == len(data) == os.path.getsize(tmp_path / f"s.{muxer}")
    nal_types = {t for u in result.units for t in u.nal_types}
    assert not nal_types & sei_types, f"SEI NAL units counted in {codec} bits: {nal_types}"
    # the same frames in an MP4 container cost more bytes than the elementary stream
    mp4 = tmp_path / "s.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", muxer, "-i", str(tmp_path / f"s.{muxer}"),
                    "-c", "copy", "-y", str(mp4)], check=True)
    assert mp4.stat().st_size > len(data)


@pytest.mark.parametrize("codec, muxer", [("x265", "hevc"), ("x264", "h264")])
@pytest.mark.parametrize("intra_period", [3, -1])
def test_frame_sizes_and_types_agree_with_ffprobe(ffmpeg, clip, tmp_path, codec, muxer, intra_period):
    result = bl.run_baseline(ffmpeg, bl.BaselinePoint(codec, "medium", "qp", 32), clip, intra_period)
    kinds = [u.kind for u in result.units]
    expected = ["I" if (t == 0 or (intra_period > 0 and t % intra_period == 0)) else "P" for t in range(len(clip))]
    assert kinds == expected
    path = tmp_path / f"s.{muxer}"
    argv = [a if a != f"stream.{muxer}" else str(path) for a in result.encode_argv]
    subprocess.run(argv, input=np.ascontiguousarray(clip).tobytes(), check=True)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "frame=pict_type,pkt_size", "-of", "json",
                            str(path)], capture_output=True, text=True, check=True)
    frames = json.loads(probe.stdout)["frames"]
    assert [f["pict_type"] for f in frames] == kinds
    # ffmpeg's parser gives a 4-byte start code's leading zero to the previous packet
    sizes = [int(f["pkt_size"]) for f in frames]
    assert sum(sizes) == result.stream_bytes
    assert all(abs(a - b) <= 1 for a, b in zip(sizes, (u.size for u in result.units)))


def test_our_psnr_equals_ffmpeg_psnr_filter(ffmpeg, clip):
    """Per frame, ffmpeg's psnr_avg (PSNR of the MSE over R, G and B) is exactly our RGB
    PSNR. Its summary "average" is the PSNR of the frames' mean MSE, not the DCVC mean of
    per-frame PSNR: equal to ours computed that way, different from the clip figure."""
    decoded = bl.run_baseline(ffmpeg, bl.BaselinePoint("x265", "medium", "qp", 37), clip, 4).decoded
    theirs = bl.ffmpeg_psnr(ffmpeg, clip, decoded)
    x, y = _as_tensor(clip), _as_tensor(decoded)
    ours = psnr(x, y).double().numpy()
    assert np.abs(np.array(theirs["per_frame"]) - ours).max() < 1e-3  # the spec asks 0.01 dB
    assert abs(float(np.mean(theirs["per_frame"])) - ours.mean()) < 1e-3
    assert theirs["average"] == pytest.approx(mse_to_psnr(float(mse(x, y).double().mean())), abs=1e-4)
    assert abs(theirs["average"] - ours.mean()) > 1e-3  # the two averages really differ here


def test_colour_round_trip_alone_is_near_lossless(ffmpeg, clip):
    back = bl.colour_roundtrip(ffmpeg, clip)
    assert np.abs(back.astype(int) - clip).max() <= 2  # 8-bit matrix rounding only
    assert float(psnr(_as_tensor(clip), _as_tensor(back)).mean()) > 45.0


def test_bad_baseline_options_are_user_errors():
    with pytest.raises(UserError, match="unknown codec"):
        bl.parse_points("x266", "medium", None, None)
    with pytest.raises(UserError, match="alternatives"):
        bl.parse_points("x265", "medium", "22", "28")
    with pytest.raises(UserError, match="preset"):
        bl.parse_points("x265", "fastest", None, None)
    with pytest.raises(UserError, match="out of range"):
        bl.parse_points("x265", "medium", "22,60", None)
    points = bl.parse_points("x265,x264", "veryslow", None, "28,23")
    assert [p.label for p in points] == ["x265 crf23", "x265 crf28", "x264 crf23", "x264 crf28"]


runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_missing_ffmpeg_is_one_line_with_install_hint(synthetic_clips, tmp_path):
    args = ["eval", "--baselines-only", "--baselines", "x265", "--videos", str(synthetic_clips), "--frames", "2"]
    line = _one_line_error(runner.invoke(app, [*args, "--ffmpeg", str(tmp_path / "nowhere" / "ffmpeg")]))
    assert "apt-get install -y ffmpeg" in line
    empty = tmp_path / "bin"
    empty.mkdir()
    line = _one_line_error(runner.invoke(app, args, env={"PATH": str(empty)}))
    assert "no ffmpeg on PATH" in line and "apt-get install -y ffmpeg" in line


def test_ffmpeg_without_the_encoder_is_one_line(synthetic_clips, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' V....D libx264              libx264 H.264'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    result = runner.invoke(app, ["eval", "--baselines-only", "--baselines", "x265,x264", "--videos",
                                 str(synthetic_clips), "--ffmpeg", str(fake)])
    line = _one_line_error(result)
    assert "no libx265 encoder" in line and "apt-get install -y ffmpeg" in line


def test_baselines_only_cli_writes_rd_json_with_commands(synthetic_clips, tmp_path):
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--baselines-only", "--baselines", "x265,x264", "--qp", "27,37",
                                 "--videos", str(synthetic_clips / "synth_001.mp4"), "--frames", "4",
                                 "--intra-period", "2", "--device", "cpu", "--json", str(out),
                                 "--plot", str(tmp_path / "rd.png")])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["mode"] == "baselines" and doc["baselines"]["pix_fmt"] == "yuv444p"
    assert "BT.709" in doc["baselines"]["colour_path"]
    by_id = {r["id"]: r for r in doc["results"]}
    for codec in ("x265", "x264"):
        low, high = by_id[f"{codec} qp27"], by_id[f"{codec} qp37"]
        assert high["overall"]["bpp"] < low["overall"]["bpp"]
        clip = high["clips"]["synth_001"]
        assert clip["command"][0].endswith("ffmpeg") and "qp=37" in clip["command_display"]
        assert clip["bits"] == 8 * clip["stream_bytes"]
        assert [f["kind"] for f in clip["per_frame"]] == ["I", "P", "I", "P"]
    assert doc["rd"]["anchor"] == "x265"
    assert [row["codec"] for row in doc["rd"]["bd"]] == ["x264"]
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert doc["clips"][0]["colour_roundtrip_psnr"] > 45.0
    assert "x265 qp37" in result.stdout and "Bjøntegaard" in result.stdout
