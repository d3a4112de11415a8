"""`dcvc-bench encode` / `decode`: a stream decoded in another process reproduces the
encoder's reconstruction exactly; bad streams are one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.codec.files import decode_file
from dcvc_bench.codec.video import encode_video

runner = CliRunner()


def _cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from dcvc_bench.cli import main; sys.argv[0] = 'dcvc-bench'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory, clip_path, checkpoint):
    out = tmp_path_factory.mktemp("cli") / "clip.dcvc"
    done = _cli("encode", str(clip_path), str(out), "--checkpoint", str(checkpoint),
                "--frames", "4", "--intra-period", "3")
    assert done.returncode == 0, done.stderr
    assert "4 frames of 96x72" in done.stdout and "bpp" in done.stdout
    return out


@pytest.mark.slow
def test_separate_processes_encode_and_decode_what_the_api_computes(stream_file, codec, checkpoint, clip, tmp_path):
    expected = encode_video(codec, clip[:4], intra_period=3)
    assert stream_file.read_bytes() == expected.stream  # same machine and settings: same bytes
    frames_dir = tmp_path / "frames"
    done = _cli("decode", str(stream_file), str(frames_dir), "--checkpoint", str(checkpoint))
    assert done.returncode == 0, done.stderr
    pngs = sorted(frames_dir.glob("frame_*.png"))
    assert len(pngs) == 4
    decoded = np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1] for p in pngs])
    assert torch.equal(torch.from_numpy(np.ascontiguousarray(decoded.transpose(0, 3, 1, 2))), expected.decoded)


def test_decode_to_mp4_writes_a_viewable_video(stream_file, checkpoint, tmp_path):
    lines: list[str] = []
    decode_file(stream_file, tmp_path / "view.mp4", checkpoint, echo=lines.append)
    capture = cv2.VideoCapture(str(tmp_path / "view.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == 4 and "4 frames decoded" in lines[0]


@pytest.mark.parametrize("mangle,message", [
    (lambda data: data[: len(data) // 2], "truncated stream"),
    (lambda data: data[:200] + bytes([data[200] ^ 0x10]) + data[201:], "checksum mismatch"),
    (lambda data: b"RIFF" + data[4:], "not a dcvc-bench stream"),
])
def test_bad_streams_exit_2_with_one_line(stream_file, checkpoint, tmp_path, mangle, message):
    bad = tmp_path / "bad.dcvc"
    bad.write_bytes(mangle(stream_file.read_bytes()))
    result = runner.invoke(app, ["decode", str(bad), str(tmp_path / "out"), "--checkpoint", str(checkpoint)])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
    assert "bad.dcvc" in result.output


def test_missing_or_other_checkpoint_is_one_line(stream_file, checkpoint, tmp_path):
    result = runner.invoke(app, ["decode", str(stream_file), str(tmp_path / "out"),
                                 "--checkpoint", str(tmp_path / "nope.pth")])
    assert result.exit_code == 2 and "nope.pth does not exist" in result.output

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = state["model_state_dict"]
    name = next(k for k in weights if k.startswith("contextualDecoder_part2") and k.endswith("bias"))
    weights[name] = weights[name] + 0.01  # one bias changed: another model
    torch.save(state, tmp_path / "other.pth")
    result = runner.invoke(app, ["decode", str(stream_file), str(tmp_path / "out"),
                                 "--checkpoint", str(tmp_path / "other.pth")])
    assert result.exit_code == 2 and "stream was made by model" in result.output
    assert result.output.count("\n") == 1


def test_bench_codec_reports_throughput_speed_up_and_rate_gap():
    result = runner.invoke(app, ["bench", "codec", "--preset", "tiny", "--size", "80x48", "--frames", "2",
                                 "--max-ref-positions", "10"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "frames/s" in out and "gap" in out and "output identical to the encoder's reconstruction: yes" in out
    assert out.count("same bytes: yes") == 2  # mv_y and y latents
    assert out.count("one-row matmuls") == 2
    assert "extrapolated ×4.00 from a 1×8 crop" in out  # 4×8 latent, at most 10 positions timed
