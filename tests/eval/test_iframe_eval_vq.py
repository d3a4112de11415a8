"""`dcvc-bench eval-iframe` of VQ I-frame codecs: one RD curve across RVQ depths with real,
uniform and entropy rates; the uniform rate exact on a frame that is not a multiple of f;
options that do not fit the codec refused in one line."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.models.iframe.vq import RVQCodec, VQGANCodec, fit_index_counts, save_vq_checkpoint
from dcvc_bench.models.iframe.vq_config import CONFIG_DIR
from dcvc_bench.models.vq_coding import FRAMING_BITS_MAX

runner = CliRunner()
TINY_RVQ_F2 = CONFIG_DIR / "tiny_rvq_f2.json"
TINY_RVQ_F16 = CONFIG_DIR / "tiny_rvq_f16.json"
TINY_VQGAN_F8 = CONFIG_DIR / "tiny_vqgan_f8.json"


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_rvq(trained_rvq_f2):
    """tiny_rvq_f2 (8 layers, K=16) trained 300 steps on 32×32 crops of synthetic frames
    (the session's one training, tests/conftest.py; f=2: a brief CPU run of the f=8/16
    networks stays at the mean-colour plateau, where depth cannot show)."""
    return trained_rvq_f2


def untrained_checkpoint(codec_type, config, path):
    codec = codec_type.untrained(config)
    save_vq_checkpoint(path, codec.model, fit_index_counts(codec.model, [torch.rand(2, 3, 64, 64)]))
    return path


def invoke(*args):
    return runner.invoke(app, ["eval-iframe", "--device", "cpu", *map(str, args)])


def one_line_error(result, *needles):
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_rvq_depths_are_one_curve_rate_rising_quality_not_falling_real_within_uniform(
        trained_rvq, synthetic_clips, tmp_path):
    out = tmp_path / "rvq.json"
    result = invoke("--type", "rvq", "--checkpoint", trained_rvq, "--config", TINY_RVQ_F2, "--layers", "8,2,6,4",
                    "--real", "--videos", synthetic_clips, "--frames", "2", "--json", out)
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    points = doc["results"]
    assert [p["id"] for p in points] == [f"rvq-f2-K16-L{n}" for n in (2, 4, 6, 8)]
    assert [p["source"]["i_frame"]["layers"] for p in points] == [2, 4, 6, 8]
    assert len({p["source"]["identity"] for p in points}) == 4
    (curve,) = doc["rd"]["curves"]
    assert curve["name"] == "rvq" and [p["label"] for p in curve["points"]] == [p["id"] for p in points]
    rows = [p["overall"] for p in points]
    for low, high in zip(rows, rows[1:]):
        assert high["bpp"] > low["bpp"], rows
        for rate in ("uniform", "entropy", "real_equivalent"):
            assert high["rates_bpp"][rate] > low["rates_bpp"][rate]
        assert high["psnr"] >= low["psnr"], [r["psnr"] for r in rows]
    assert rows[-1]["psnr"] > rows[0]["psnr"]
    pixels = 96 * 64
    for point, layers in zip(points, (2, 4, 6, 8)):
        o = point["overall"]
        assert point["bits"] == "real"
        assert o["rates_bpp"]["uniform"] == layers * math.log2(16) / (2 * 2)  # n·L·log2 K / (H·W), f = 2
        assert o["bpp"] <= o["rates_bpp"]["uniform"] and o["bpp_estimate"] <= o["rates_bpp"]["uniform"]
        assert 0 < o["ssim"] < 1 and 0 < o["ms_ssim"] < 1
        for clip in point["clips"].values():
            for frame in clip["per_frame"]:  # the payload: indices rANS-coded plus framing
                assert frame["bits"] <= frame["rate_bits"]["uniform"] + FRAMING_BITS_MAX
                assert frame["bits"] % 8 == 0 and frame["bpp"] == frame["bits"] / pixels
    text = result.stdout
    assert "uniform BPP" in text and "entropy BPP" in text and "SSIM" in text
    assert "FID unavailable" in text or "FID" in doc["fid"]["reason"]


def test_uniform_rate_is_exact_on_a_frame_that_is_not_a_multiple_of_f(tmp_path):
    from dcvc_bench.data.synth import write_synthetic_clips

    write_synthetic_clips(tmp_path / "clips", videos=1, frames=2, size=(170, 130), seed=3)
    ckpt = untrained_checkpoint(RVQCodec, TINY_RVQ_F16, tmp_path / "rvq16.pth")
    out = tmp_path / "u.json"
    result = invoke("--type", "rvq", "--checkpoint", ckpt, "--config", TINY_RVQ_F16, "--layers", "1,3,8",
                    "--videos", tmp_path / "clips", "--frames", "1", "--json", out)
    assert result.exit_code == 0, (result.output, result.exception)
    n = math.ceil(130 / 16) * math.ceil(170 / 16)
    assert n == 9 * 11
    k = json.loads(TINY_RVQ_F16.read_text())["codebook_size"]
    for point, layers in zip(json.loads(out.read_text())["results"], (1, 3, 8)):
        (clip,) = point["clips"].values()
        assert clip["per_frame"][0]["rate_bits"]["uniform"] == n * layers * math.log2(k)
        assert point["overall"]["rates_bpp"]["uniform"] == n * layers * math.log2(k) / (130 * 170)
        assert point["overall"]["bpp"] <= point["overall"]["rates_bpp"]["uniform"]


def test_a_vq_checkpoint_as_checkpoint_without_type_says_which_type(trained_rvq, synthetic_clips):
    one_line_error(invoke("--checkpoint", trained_rvq, "--videos", synthetic_clips),
                   "is a rvq I-frame checkpoint", "--type rvq --config")
    one_line_error(invoke("--type", "vqgan", "--config", TINY_VQGAN_F8, "--checkpoint", trained_rvq,
                          "--videos", synthetic_clips), "use --type rvq")


@pytest.mark.parametrize("args, needles", [
    (["--type", "opencv", "--layers", "2,4"], ["--layers", "--type opencv has no layers", "rvq"]),
    (["--type", "rvq", "--weights", "x.pth", "--layers", "2"], ["--type rvq needs --config"]),
    (["--type", "opencv", "--config", "c.json"], ["--config: --type opencv has no architecture file"]),
    (["--layers", "2"], ["add --type"]),
])
def test_options_that_do_not_fit_the_type_are_one_line(synthetic_clips, args, needles):
    one_line_error(invoke(*args, "--videos", synthetic_clips), *needles)


def test_layers_above_the_trained_depth_or_on_a_vqgan_are_one_line(trained_rvq, synthetic_clips, tmp_path):
    one_line_error(invoke("--type", "rvq", "--checkpoint", trained_rvq, "--config", TINY_RVQ_F2,
                          "--layers", "2,9", "--videos", synthetic_clips), "--layers 9", "trained with 8 layers")
    one_line_error(invoke("--type", "rvq", "--checkpoint", trained_rvq, "--config", TINY_RVQ_F2,
                          "--layers", "2,x", "--videos", synthetic_clips), "--layers", "2,4,6,8")
    vqgan = untrained_checkpoint(VQGANCodec, TINY_VQGAN_F8, tmp_path / "vq8.pth")
    one_line_error(invoke("--type", "vqgan", "--checkpoint", vqgan, "--config", TINY_VQGAN_F8, "--layers", "1",
                          "--videos", synthetic_clips), "--type vqgan has no layers")
    # the wrong config for the checkpoint: the VQ family's own one-line refusal, naming the key
    one_line_error(invoke("--type", "rvq", "--checkpoint", trained_rvq, "--config", TINY_RVQ_F16,
                          "--videos", synthetic_clips), "does not fit the config")
