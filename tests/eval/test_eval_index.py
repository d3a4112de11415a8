"""The evaluation history (contract A, eval/index.json): every `dcvc-bench eval` keeps its
timestamped files and is indexed, oldest first, with its checkpoints, clips and codecs;
`eval` prints what it evaluated; an older folder's documents are indexed on the next eval."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from test_eval_estimate import make_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no LPIPS weights: quicker, deterministic
    return make_run(tmp_path / "runs")


def _eval(*args: str):
    result = runner.invoke(app, ["eval", "--device", "cpu", "--frames", "2", "--intra-period", "2", *args],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_each_eval_is_indexed_oldest_first_with_its_checkpoints_clips_and_codecs(run):
    first = _eval("--checkpoint", str(run))
    index = json.loads((run / "eval" / "index.json").read_text())
    assert index["format"] == "dcvc-bench-eval-index" and index["version"] == 1
    [entry] = index["evals"]
    assert (run / "eval" / entry["file"]).is_file() and entry["file"].endswith("-estimate.json")
    assert entry["rd_file"] == entry["file"].replace(".json", "-rd.json")
    assert (run / "eval" / entry["rd_file"]).is_file()
    assert entry["mode"] == "estimate" and entry["created"]
    assert entry["checkpoints"] == ["checkpoints/l256/model_dcvc_lambda_256.0_quality_1_stage_4_final.pth",
                                    "checkpoints/l2048/model_dcvc_lambda_2048.0_quality_4_stage_4_final.pth"]
    assert entry["clips"] == ["data/val/synth_000.mp4"]
    assert entry["codecs"] == ["demo"]
    # `eval` says what it evaluated: the checkpoints and the clip set
    out = " ".join(first.output.split())
    assert "checkpoints: " in out and "model_dcvc_lambda_256.0_quality_1_stage_4_final.pth" in out
    assert "clips: 1 in " in out and "data/val/ (synth_000.mp4), 2 frames each" in out

    _eval("--checkpoint", str(run / "checkpoints" / "l2048"), "--real")
    index = json.loads((run / "eval" / "index.json").read_text())
    assert [e["mode"] for e in index["evals"]] == ["estimate", "real"]
    second = index["evals"][1]
    assert second["checkpoints"] == ["checkpoints/l2048/model_dcvc_lambda_2048.0_quality_4_stage_4_final.pth"]
    assert second["rd_file"] is None  # one point, one codec: no RD curves
    assert index["evals"][0] == entry  # the history is kept as it was
    latest = json.loads((run / "eval" / "latest.json").read_text())
    assert latest["mode"] == "real"  # latest.json stays as before: the last eval


def test_a_folder_from_before_the_index_is_indexed_on_the_next_eval(run):
    _eval("--checkpoint", str(run))
    _eval("--checkpoint", str(run), "--real")
    folder = run / "eval"
    before = json.loads((folder / "index.json").read_text())["evals"]
    (folder / "index.json").unlink()
    (folder / "stray.json").write_text("{not json")  # unreadable: left out, left on disk
    _eval("--checkpoint", str(run))
    evals = json.loads((folder / "index.json").read_text())["evals"]
    assert [e["file"] for e in evals[:2]] == [e["file"] for e in before]
    assert [e["mode"] for e in evals] == ["estimate", "real", "estimate"]
    assert (folder / "stray.json").exists()
    assert all(e["file"] != "stray.json" for e in evals)


def test_baselines_with_videos_outside_a_project_suggest_baselines_only(tmp_path, monkeypatch):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    from dcvc_bench.data.synth import write_synthetic_clips

    monkeypatch.chdir(tmp_path)
    write_synthetic_clips(tmp_path / "clips", videos=1, frames=2, size=(64, 64), seed=0)
    result = runner.invoke(app, ["eval", "--baselines", "x265", "--videos", "clips"])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "no run folder to evaluate" in result.output and "add --baselines-only" in result.output
