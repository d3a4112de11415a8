"""RD curves: a run with two λ tracks plus x265/x264 on the same frames gives one curve
per codec, BD figures against x265, a PNG and rd.json in the run folder."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app

from test_eval_estimate import make_run, one_torch_thread  # noqa: F401 (autouse fixture)

runner = CliRunner()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install -y ffmpeg)")
def test_run_with_two_tracks_and_baselines_gives_rd_table_bd_and_png(tmp_path):
    run = make_run(tmp_path, frames=4)
    result = runner.invoke(app, ["eval", "--checkpoint", str(run), "--baselines", "x265,x264", "--qp", "27,37",
                                 "--device", "cpu", "--intra-period", "4"])
    assert result.exit_code == 0, (result.output, result.exception)
    rd = json.loads((run / "eval" / "rd.json").read_text())
    assert rd["format"] == "dcvc-bench-rd" and rd["version"] == 1
    assert rd["anchor"] == "x265" and rd["bd_method"] == "akima"
    assert [c["name"] for c in rd["curves"]] == ["demo", "x265", "x264"]
    curves = {c["name"]: c for c in rd["curves"]}
    assert [p["label"] for p in curves["x265"]["points"]] == ["x265 qp37", "x265 qp27"]  # by rate
    assert curves["demo"]["bits"] == "estimated" and curves["x265"]["bits"] == "real"
    assert {p["lambda"] for p in curves["demo"]["points"]} == {256.0, 2048.0}
    bpps = [p["bpp"] for p in curves["x264"]["points"]]
    assert bpps == sorted(bpps)
    assert [row["codec"] for row in rd["bd"]] == ["demo", "x264"]
    x264 = next(row for row in rd["bd"] if row["codec"] == "x264")
    assert x264["bd_rate_psnr"] is not None or x264["note"]
    assert rd["colour_path"].startswith("rgb24 -> yuv444p")
    png = run / "eval" / rd["plot"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (run / "eval" / "rd.png").is_file()
    source = json.loads((run / "eval" / rd["source"]).read_text())
    assert source["rd"]["curves"][0]["name"] == "demo"
    # the learned codec and the baselines saw the same clip and frame count
    frames = {r["id"]: r["clips"]["synth_000"]["frames"] for r in source["results"]}
    assert set(frames.values()) == {4} and len(frames) == 2 + 4
    out = " ".join(result.stdout.split())
    assert "RD points" in out and "Bjøntegaard deltas vs x265" in out and "estimated" in out


def test_anchor_must_name_a_curve_before_anything_runs(tmp_path):
    run = make_run(tmp_path, frames=2)
    result = runner.invoke(app, ["eval", "--checkpoint", str(run), "--anchor", "vtm", "--device", "cpu"])
    assert result.exit_code == 2 and "curves are demo" in result.stderr
    assert not (run / "eval").exists()
