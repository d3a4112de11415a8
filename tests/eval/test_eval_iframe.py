"""`dcvc-bench eval-iframe`: an I-frame codec alone on every frame (the seed's test_iframe)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app

from test_eval_estimate import make_run, one_torch_thread  # noqa: F401 (autouse fixture)

runner = CliRunner()


def test_opencv_quality_sweep_is_a_curve_with_real_bits(synthetic_clips, tmp_path):
    out = tmp_path / "i.json"
    result = runner.invoke(app, ["eval-iframe", "--type", "opencv", "--model", "jpeg", "--quality", "30,90",
                                 "--videos", str(synthetic_clips), "--frames", "3", "--device", "cpu",
                                 "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["mode"] == "iframe-estimate" and doc["settings"]["intra_period"] == 1
    low, high = doc["results"]
    assert low["id"] == "opencv-jpeg-q30" and high["id"] == "opencv-jpeg-q90"
    assert low["bits"] == "real"  # OpenCV's estimate is a real JPEG encode
    assert low["overall"]["bpp"] < high["overall"]["bpp"] and low["overall"]["psnr"] < high["overall"]["psnr"]
    for clip in high["clips"].values():
        assert [f["kind"] for f in clip["per_frame"]] == ["I", "I", "I"] and clip["p_frame"]["count"] == 0
    assert [c["name"] for c in doc["rd"]["curves"]] == ["opencv-jpeg"]
    assert doc["run"] is None  # no run folder involved: nothing written there


def test_real_jpeg_bytes_equal_its_estimate(synthetic_clips, tmp_path):
    paths = [tmp_path / "e.json", tmp_path / "r.json"]
    for path, extra in zip(paths, ([], ["--real"])):
        result = runner.invoke(app, ["eval-iframe", "--type", "opencv", "--quality", "50", "--videos",
                                     str(synthetic_clips / "synth_000.mp4"), "--frames", "2", "--device", "cpu",
                                     "--json", str(path), *extra])
        assert result.exit_code == 0, result.output
    est, real = (json.loads(p.read_text())["results"][0] for p in paths)
    assert est["overall"]["bpp"] == real["overall"]["bpp"] and est["overall"]["psnr"] == pytest.approx(real["overall"]["psnr"])
    assert real["overall"]["enc_ms_per_frame"] > 0


def test_default_uses_the_latest_runs_iframe_codecs(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs", frames=2)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["eval-iframe", "--device", "cpu"])
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads((run / "eval" / "latest.json").read_text())
    assert doc["mode"] == "iframe-estimate"
    # the two tracks use JPEG q60 and q90: two distinct codecs, each evaluated once
    assert sorted(r["id"] for r in doc["results"]) == ["opencv-jpeg-q60", "opencv-jpeg-q90"]


def test_codec_options_without_type_are_a_user_error(synthetic_clips):
    result = runner.invoke(app, ["eval-iframe", "--quality", "50", "--videos", str(synthetic_clips)])
    assert result.exit_code == 2 and "--type" in result.stderr


def test_set_and_options_reach_the_types_own_settings(synthetic_clips, tmp_path):
    out = tmp_path / "w.json"
    result = runner.invoke(app, ["eval-iframe", "--type", "opencv", "--set", "codec=webp", "--quality", "40",
                                 "--videos", str(synthetic_clips / "synth_000.mp4"), "--frames", "1",
                                 "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    (point,) = json.loads(out.read_text())["results"]
    assert point["id"] == "opencv-webp-q40" and point["curve"] == "opencv-webp"
    assert point["source"]["i_frame"] == {"type": "opencv", "codec": "webp", "quality": 40}
    refused = runner.invoke(app, ["eval-iframe", "--type", "opencv", "--pretrained", "--videos", str(synthetic_clips)])
    assert refused.exit_code == 2 and "--pretrained does not apply to --type opencv" in refused.stderr


@pytest.mark.parametrize("sidecar", [True, False])
def test_a_checkpoints_iframe_codec_is_built_alone(synthetic_clips, tmp_path, sidecar):
    """Only the I-frame codec is built: P-frame weights that fit no DCVC model do not matter."""
    import torch

    from dcvc_bench.checkpoint_io import save_checkpoint
    from dcvc_bench.checkpoints import sidecar_path

    path = tmp_path / "model_dcvc_lambda_256.0_quality_1_stage_1_final.pth"
    save_checkpoint(path, {"epoch": 1, "model_state_dict": {"not_dcvc": torch.zeros(3)}, "optimizer_state_dict": {},
                           "loss": 1.0, "best_loss": 1.0, "global_best_loss": 1.0, "stage": 1, "quality_index": 1,
                           "lambda_value": 256.0, "ema_state_dict": None, "scheduler_state_dict": None,
                           "is_finetuning": False, "gop_size": 2, "step_id": "s1g2", "rng_state": {},
                           "i_frame": {"type": "opencv", "codec": "webp", "quality": 70}})
    if not sidecar:
        sidecar_path(path).unlink()
    out = tmp_path / "c.json"
    result = runner.invoke(app, ["eval-iframe", "--checkpoint", str(path), "--videos",
                                 str(synthetic_clips / "synth_000.mp4"), "--frames", "1", "--device", "cpu",
                                 "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    (point,) = json.loads(out.read_text())["results"]
    assert point["id"] == "opencv-webp-q70" and point["source"]["i_frame"]["codec"] == "webp"
