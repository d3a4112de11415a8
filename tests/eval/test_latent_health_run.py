"""Latent health end to end: a stage-4 step from random weights shows the y collapse in
its evaluation events, in `dcvc-bench status` and in the run's output; a stage-2 step
(no rate term) does not raise it. Real trainer, real runner, tiny model."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app

runner = CliRunner()

CURRICULUM = """
name = "collapse"
output_dir = "{out}"
[data.synthetic]
videos = 2
frames = 6
width = 96
height = 96
seed = 0
val_videos = 1
val_frames = 3
val_width = 96
val_height = 64
[model]
preset = "tiny"
[i_frame]
type = "opencv"
codec = "jpeg"
quality = 90
[train]
batch_size = 1
crop_size = 64
num_workers = 0
steps_per_epoch = 2
eval_max_frames = 3
use_ema = false
[[tracks]]
lambda = 2048
quality_index = 4
[[stages]]
stage = 2
gops = [2]
epochs = 1
[[stages]]
stage = 4
gops = [2]
epochs = 2
[accelerate]
device = "cpu"
num_processes = 1
"""


def _random_weights(path, stage: int) -> None:
    """A checkpoint of a freshly initialised tiny DCVC, as if stage ``stage`` had left it."""
    from dcvc_bench.checkpoint_io import save_checkpoint
    from dcvc_bench.models.video_net import DCVC

    torch.manual_seed(stage)
    net = DCVC("tiny")
    save_checkpoint(path, {
        "epoch": 1, "epochs": 1, "model_state_dict": net.state_dict(), "optimizer_state_dict": {},
        "loss": 1.0, "best_loss": 1.0, "global_best_loss": 1.0, "stage": stage, "quality_index": 4,
        "lambda_value": 2048.0, "ema_state_dict": None, "scheduler_state_dict": None, "is_finetuning": False,
        "gop_size": 2, "step_id": f"s{stage}g2", "rng_state": {}, "model_preset": "tiny", "kind": "best",
        "i_frame": {"type": "opencv", "model_name": "jpeg", "quality": 90, "pretrained": False,
                    "checkpoint": None}})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Stage 2 from random weights (stage 1's best is random), then stage 4 from random
    weights (stage 3's best is random): the stage-4-from-scratch case."""
    from dcvc_bench.checkpoints import checkpoint_path

    root = tmp_path_factory.mktemp("health")
    (root / "c.toml").write_text(CURRICULUM.format(out=root / "runs"))
    folder = root / "runs" / "collapse" / "checkpoints" / "l2048"
    for stage in (1, 3):
        _random_weights(checkpoint_path(folder, 2048.0, 4, stage, "best"), stage)
    result = runner.invoke(app, ["run", str(root / "c.toml")])
    assert result.exit_code == 0, (result.output, result.exception)
    return root / "runs" / "collapse", result.output


def _evals(run_dir, step):
    from dcvc_bench.events import read_events

    return [e for e in read_events(run_dir / "steps" / step / "events.jsonl") if e["event"] == "eval"]


def test_eval_events_carry_latent_statistics(run):
    run_dir, _ = run
    for step in ("l2048-s2g2", "l2048-s4g2"):
        for event in _evals(run_dir, step):
            assert set(event["latents"]) == {"y", "z", "mv_y", "mv_z"}
            for stats in event["latents"].values():
                assert 0 <= stats["nonzero"] <= 1 and stats["mean_abs"] >= 0 and 0 <= stats["rate_share"] <= 1
            assert sum(s["rate_share"] for s in event["latents"].values()) == pytest.approx(1.0)
            assert event["rate_estimate"] == "coded-symbols"
            assert event["train_proxy"]["bias_percent"] is not None


def test_stage4_from_random_weights_shows_the_y_collapse_in_events_status_and_output(run):
    run_dir, output = run
    evals = _evals(run_dir, "l2048-s4g2")
    assert [e["epoch"] for e in evals] == [1, 2]
    assert all(e["latents"]["y"]["nonzero"] < 0.001 for e in evals)
    message = "y: 0 % non-zero symbols since epoch 1 — the P-frame codes no residual"
    status = runner.invoke(app, ["status", str(run_dir)])
    assert status.exit_code == 0, status.output
    flat = " ".join(status.output.split())
    assert f"l2048-s4g2: {message}" in flat and "stage order" in flat and "SpyNet" in flat
    assert f"l2048-s4g2: WARNING {message}" in output


def test_a_stage2_step_does_not_raise_it(run):
    run_dir, output = run
    assert _evals(run_dir, "l2048-s2g2")
    status = runner.invoke(app, ["status", str(run_dir)])
    assert "l2048-s2g2: y:" not in " ".join(status.output.split())
    assert "l2048-s2g2: WARNING" not in output
