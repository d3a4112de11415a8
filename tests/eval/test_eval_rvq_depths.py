"""`dcvc-bench eval --rvq-layers 2,4,...`: one RD point per (track, RVQ I-frame depth), one
curve per depth across tracks, BD-rates between depths, in the table, the JSON, the PNG
and what the TUI's RD view reads; estimation and --real; refusals in one line; and the VQ
I-frames of such a checkpoint through `dcvc-bench encode` / `decode`."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.evaldoc import read_rd_view
from dcvc_bench.models.vq_coding import FRAMING_BYTES

from test_eval_estimate import make_run, one_torch_thread  # noqa: F401 (autouse fixture)

#: A frame in the stream (codec/bitstream.py): u32 payload length, u32 CRC-32, u8 kind, coded bytes.
FRAME_FRAMING_BYTES = 4 + 4 + 1

runner = CliRunner()


@pytest.fixture(scope="module")
def rvq_run(tmp_path_factory):
    """A run of two λ tracks (tiny P-frame nets) whose I-frame codec is an 8-layer
    RVQ-VQGAN (tiny_rvq_f2, K=16) trained briefly on synthetic frames."""
    from dcvc_bench.curriculum.iframe_spec import RVQSpec
    from dcvc_bench.models.iframe.vq_config import CONFIG_DIR
    from dcvc_bench.train.vq_brief import train_vq_briefly

    root = tmp_path_factory.mktemp("rvq")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = CONFIG_DIR / "tiny_rvq_f2.json"
        train_vq_briefly(config, root / "rvq.pth", iterations=40, crop=32, seed=0)
    finally:
        torch.set_num_threads(before)
    record = RVQSpec(config=str(config), checkpoint=str(root / "rvq.pth")).to_record()
    return make_run(root, "rvqrun", frames=3, i_frame=record)


def _eval(*args: str):
    return runner.invoke(app, ["eval", "--device", "cpu", "--frames", "3", "--intra-period", "2", *args])


def test_one_point_per_track_and_depth_one_curve_per_depth(rvq_run, tmp_path):
    out = tmp_path / "d.json"
    result = _eval("--checkpoint", str(rvq_run), "--rvq-layers", "4,2", "--json", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["settings"]["rvq_layers"] == [2, 4]
    assert [r["id"] for r in doc["results"]] == ["l256 L2", "l256 L4", "l2048 L2", "l2048 L4"]
    by_id = {r["id"]: r for r in doc["results"]}
    for track in ("l256", "l2048"):
        shallow, deep = by_id[f"{track} L2"], by_id[f"{track} L4"]
        assert (shallow["curve"], deep["curve"]) == ("rvqrun L2", "rvqrun L4")
        assert (shallow["source"]["rvq_layers"], deep["source"]["rvq_layers"]) == (2, 4)
        assert "-L2:" in shallow["source"]["i_frame"] and "-L4:" in deep["source"]["i_frame"]
        assert shallow["source"]["model_identity"] != deep["source"]["model_identity"]
        # the I-frame rate is chosen by the depth: more layers, more bits
        assert deep["overall"]["i_frame"]["bpp"] > shallow["overall"]["i_frame"]["bpp"]
    rd = doc["rd"]
    assert [c["name"] for c in rd["curves"]] == ["rvqrun L2", "rvqrun L4"]
    for curve in rd["curves"]:
        assert sorted(p["lambda"] for p in curve["points"]) == [256.0, 2048.0]
        assert {p["layers"] for p in curve["points"]} == {int(curve["name"][-1])}
    # no baseline: BD-rates of each depth against the deepest one
    assert rd["anchor"] == "rvqrun L4" and [b["codec"] for b in rd["bd"]] == ["rvqrun L2"]
    assert rd["bd"][0]["bd_rate_psnr"] is not None or rd["bd"][0]["note"]
    # the run folder: rd.json as the TUI reads it, and the PNG
    view = read_rd_view(rvq_run / "eval" / "rd.json", json.loads((rvq_run / "eval" / "rd.json").read_text()),
                        missing=False)
    assert [c.name for c in view.curves] == ["rvqrun L2", "rvqrun L4"] and view.anchor == "rvqrun L4"
    assert {p.layers for p in view.curves[1].points} == {4}
    assert (rvq_run / "eval" / "rd.png").read_bytes()[:4] == b"\x89PNG"
    out_text = " ".join(result.stdout.split())
    assert "l256 L2" in out_text and "rvqrun L4" in out_text and "Bjøntegaard deltas vs rvqrun L4" in out_text


def test_real_coding_at_each_depth(rvq_run, tmp_path):
    out = tmp_path / "r.json"
    track = rvq_run / "checkpoints" / "l256"
    result = _eval("--checkpoint", str(track), "--rvq-layers", "2,8", "--real", "--json", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["mode"] == "real" and [r["id"] for r in doc["results"]] == ["l256 L2", "l256 L8"]
    shallow, deep = (r["clips"]["synth_000"] for r in doc["results"])
    for clip in (shallow, deep):
        assert clip["bits"] == 8 * clip["stream_bytes"] and clip["bpp_estimate"] > 0
    assert deep["i_frame"]["bpp"] > shallow["i_frame"]["bpp"]


def test_real_iframe_rates_per_depth_payload_within_uniform(rvq_run, tmp_path):
    """Issue 12's "real ≤ uniform at each depth", read from `eval --real --rvq-layers`: per
    point the I-frames' uniform rate (n_indices·L·log2 K over the clip's pixels, rising
    with L), entropy, payload (real minus the frames' framing) ≤ uniform, in the JSON, the
    CSV and the "I-frames per point" table."""
    from dcvc_bench.models.iframe.vq_config import CONFIG_DIR

    config = json.loads((CONFIG_DIR / "tiny_rvq_f2.json").read_text())
    f, k = 2 ** (len(config["ch_mult"]) - 1), config["codebook_size"]
    out, table = tmp_path / "r.json", tmp_path / "r.csv"
    result = _eval("--checkpoint", str(rvq_run / "checkpoints" / "l256"), "--rvq-layers", "2,4,6,8", "--real",
                   "--json", str(out), "--csv", str(table))
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    (clip,) = doc["clips"]
    h, w = clip["height"], clip["width"]
    n = math.ceil(h / f) * math.ceil(w / f)
    uniforms = []
    for depth, r in zip((2, 4, 6, 8), doc["results"]):
        assert r["id"] == f"l256 L{depth}"
        for part in (r["overall"]["i_frame"], r["clips"][clip["name"]]["i_frame"]):
            assert part["count"] >= 1
            rates = part["rates_bpp"]
            assert rates["uniform"] == pytest.approx(n * depth * math.log2(k) / (h * w), rel=1e-12)
            assert 0 < rates["entropy"] and 0 < rates["real_equivalent"] <= rates["uniform"] + 1e-9
            # the payload: the coded indices alone (without the stream's framing of each frame and the VQ
            # payload's version/flags/CRC), within uniform (raw packing is the coder's ceiling)
            assert 0 < part["payload_bpp"] < part["bpp"] and part["payload_bpp"] <= rates["uniform"] + 7 / (h * w)
            framing = (part["bpp"] - part["payload_bpp"]) * h * w / 8
            assert framing == pytest.approx(FRAME_FRAMING_BYTES + FRAMING_BYTES, abs=1e-6)
            assert part["bpp_estimate"] == pytest.approx(rates["real_equivalent"], rel=1e-6)  # estimate: float32
        uniforms.append(r["overall"]["i_frame"]["rates_bpp"]["uniform"])
        # P-frames have no I-frame rates: the clip's own rates stay missing (not a mean over the I-frames)
        assert r["overall"]["p_frame"]["count"] >= 1 and r["overall"]["rates_bpp"] is None
    assert uniforms == sorted(uniforms) and len(set(uniforms)) == 4
    rows = {(row["codec"], row["clip"]): row for row in csv.DictReader(table.open())}
    for r in doc["results"]:
        row, i = rows[(r["id"], "overall")], r["overall"]["i_frame"]
        assert float(row["i_uniform_bpp"]) == pytest.approx(i["rates_bpp"]["uniform"])
        assert float(row["i_entropy_bpp"]) == pytest.approx(i["rates_bpp"]["entropy"])
        assert float(row["i_payload_bpp"]) == pytest.approx(i["payload_bpp"])
    text = result.stdout
    assert "I-frames per point" in text and "payload BPP" in text and "uniform BPP" in text
    section = text[text.index("I-frames per point"):]
    for r in doc["results"]:
        i = r["overall"]["i_frame"]
        assert r["id"] in section and f"{i['rates_bpp']['uniform']:.4f}" in section and f"{i['payload_bpp']:.4f}" in section
    assert "I-frame payload ≤ uniform BPP at all 4 points" in " ".join(text.split())


def test_estimated_iframe_rates_per_depth(rvq_run, tmp_path):
    """Without --real: the I-frames' rates are there too (no payload: nothing was coded)."""
    out = tmp_path / "e.json"
    result = _eval("--checkpoint", str(rvq_run / "checkpoints" / "l256"), "--rvq-layers", "2,8", "--json", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    shallow, deep = (r["overall"]["i_frame"] for r in json.loads(out.read_text())["results"])
    assert deep["rates_bpp"]["uniform"] == pytest.approx(4 * shallow["rates_bpp"]["uniform"])
    for part in (shallow, deep):
        assert part["payload_bpp"] is None and part["bpp"] == pytest.approx(part["rates_bpp"]["real_equivalent"], rel=1e-6)
    assert "I-frames per point" in result.stdout and "payload BPP" not in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--rvq-layers", "2,9"], "out of range"),
    (["--rvq-layers", "two"], "whole numbers"),
    (["--rvq-layers", "0"], "at least 1"),
    (["--rvq-layers", "2", "--anchor", "rvqrun L8"], "no such curve"),
])
def test_bad_depths_are_one_line_exit_2_before_anything_is_written(rvq_run, tmp_path, args, message):
    fresh = tmp_path / "copy"
    result = _eval("--checkpoint", str(rvq_run / "checkpoints" / "l256"), *args, "--json", str(fresh))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not fresh.exists()


def test_depths_on_a_run_without_an_rvq_iframe_codec_are_refused(tmp_path):
    run = make_run(tmp_path, "jpegrun", frames=2)
    result = _eval("--checkpoint", str(run), "--rvq-layers", "2,4")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no RVQ depth" in lines[0] and "--rvq-layers" in lines[0]
    assert not (run / "eval").exists()
    result = runner.invoke(app, ["eval", "--baselines-only", "--baselines", "x265", "--videos", str(Path(run, "data", "val")),
                                 "--rvq-layers", "2"])
    assert result.exit_code == 2 and "--rvq-layers" in result.stderr


# -- encode / decode of VQ I-frames
def _cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from dcvc_bench.cli import main; sys.argv[0] = 'dcvc-bench'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}, timeout=600)


def _frames(folder) -> torch.Tensor:
    pngs = sorted(folder.glob("frame_*.png"))
    decoded = np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1] for p in pngs])
    return torch.from_numpy(np.ascontiguousarray(decoded.transpose(0, 3, 1, 2)))


def test_vq_iframes_decode_bit_exactly_in_another_process_and_damage_is_one_line(rvq_run, tmp_path):
    """`dcvc-bench encode` / `decode` (two processes) of a checkpoint whose I-frame codec
    is the RVQ: the decoded frames are the encoder's, bit for bit; a truncated or
    bit-flipped stream is one line and exit code 2."""
    from dcvc_bench.codec.video import encode_video, load_codec
    from dcvc_bench.data.video import read_frames

    checkpoint = next((rvq_run / "checkpoints" / "l256").glob("*_final.pth"))
    clip = next((rvq_run / "data" / "val").glob("*.mp4"))
    stream = tmp_path / "clip.dcvc"
    done = _cli("encode", str(clip), str(stream), "--checkpoint", str(checkpoint), "--frames", "3",
                "--intra-period", "2")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "frames"
    done = _cli("decode", str(stream), str(out), "--checkpoint", str(checkpoint))
    assert done.returncode == 0, done.stderr

    codec = load_codec(checkpoint, device="cpu")
    assert codec.iframe.spec.type == "rvq"  # the I-frames really went through the VQ codec
    frames = torch.from_numpy(np.ascontiguousarray(read_frames(clip, 0, 3).transpose(0, 3, 1, 2)))
    expected = encode_video(codec, frames, intra_period=2)
    assert torch.equal(_frames(out), expected.decoded)

    data = stream.read_bytes()
    for name, bad in (("truncated", data[: len(data) * 2 // 3]),
                      ("flipped", data[:-40] + bytes([data[-40] ^ 0x04]) + data[-39:])):
        path = tmp_path / f"{name}.dcvc"
        path.write_bytes(bad)
        done = _cli("decode", str(path), str(tmp_path / name), "--checkpoint", str(checkpoint))
        assert done.returncode == 2, (name, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and f"{name}.dcvc" in lines[0], (name, lines)
        assert "Traceback" not in done.stderr
