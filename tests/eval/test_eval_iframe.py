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
