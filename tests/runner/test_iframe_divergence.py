"""A diverging I-frame step is rolled back as a P-frame step is (test_e2e_smoke's
``test_a_diverging_step_is_rolled_back_with_a_lower_lr_then_reported``): the runner
relaunches it from its own latest with ``--force_learning_rate`` (the LR it diverged with
times ``failure.divergence_lr_factor``), a bounded number of times, and the P-frame steps
never start. And the recipe's side of that flag: the LRs of both optimizers are forced
after their states are loaded, the discriminator's keeping its ratio to the autoencoder's.

The divergence is real: a CompressAI hyperprior at the largest λ a curriculum allows, LR
2e-3 and clipping out of the way blows its weights up over a few epochs (the loss grows by
orders of magnitude per epoch until the parameters are no longer finite). The VQ family
does not diverge within the curriculum's bounds (its GroupNorm-ed network and EMA
codebooks stay finite even at LR 1), so the discriminator's forced LR is checked on the
recipe directly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_e2e_smoke import dcvc_bench_run, finish

from dcvc_bench.checkpoints import iframe_checkpoint_path, read_meta
from dcvc_bench.errors import UserError
from dcvc_bench.events import read_events
from dcvc_bench.models.iframe.vq_config import CONFIG_DIR
from dcvc_bench.runner.ledger import Ledger

pytestmark = pytest.mark.timeout(900)

DIVERGING = """\
name = "nan"

[data.synthetic]
videos = 1
frames = 4
width = 64
height = 64
val_frames = 2

[model]
preset = "tiny"

[iframe_training]
type = "compressai"
model_name = "bmshj2018-hyperprior"
quality = 1
lambda = 100000
epochs = 8
batch_size = 2
crop_size = 64
steps_per_epoch = 4
learning_rate = 0.002
grad_clip_max_norm = 10000.0

[i_frame]
type = "compressai"

[train]
batch_size = 1
crop_size = 64
num_workers = 0
steps_per_epoch = 1

[[tracks]]
lambda = 256
quality_index = 1

[[stages]]
stage = 1
gops = [2]
epochs = 1

[accelerate]
device = "cpu"

[failure]
divergence_retries = 1
"""


def _attempts(events: Path) -> list[list[dict]]:
    attempts: list[list[dict]] = []
    for event in read_events(events):
        if event["event"] == "step_start":
            attempts.append([])
        if attempts:
            attempts[-1].append(event)
    return attempts


def test_a_diverging_i_frame_step_is_rolled_back_to_its_latest_with_a_lower_lr_then_reported(tmp_path):
    (tmp_path / "nan.toml").write_text(DIVERGING)
    proc = dcvc_bench_run(tmp_path, "nan.toml")
    assert finish(proc, timeout=600) == 1
    output = proc.log_path.read_text()
    run_dir = tmp_path / "runs" / "nan"
    ledger = Ledger.load(run_dir / "ledger.json")
    record = ledger.get("iframe-train")
    assert record.status == "diverged" and record.attempts == 2, record
    events = run_dir / "steps" / "iframe-train" / "events.jsonl"
    first, second = _attempts(events)  # one roll-back, then it gave up
    assert [a[-1]["event"] for a in (first, second)] == ["step_end", "step_end"]
    assert [a[-1]["status"] for a in (first, second)] == ["diverged", "diverged"]

    # The first attempt ended at least one epoch before it diverged: its latest is what the
    # roll-back resumes, with the same epoch and iteration counters and the optimizers' states.
    saved = [e["epoch"] for e in first if e["event"] == "checkpoint" and e["kind"] == "latest"]
    assert saved, "the step diverged before any epoch ended: nothing to roll back to"
    start = second[0]
    latest = iframe_checkpoint_path(run_dir / "checkpoints" / "iframe", "compressai", "train", "latest")
    assert (tmp_path / start["resumed_from"]).resolve() == latest.resolve()
    assert start["start_mode"] == "continue" and start["start_epoch"] == saved[-1]
    assert start["iteration"] == saved[-1] * first[0]["iters_per_epoch"]
    assert first[0]["lr"] == pytest.approx(0.002) and first[0]["lr_reset"] is False
    assert start["lr"] == pytest.approx(first[0]["lr"] * 0.5) and start["lr_reset"] is True
    assert "LR forced to 0.001" in start["message"]
    assert all(e["lr"] == pytest.approx(0.001) for e in second if e["event"] == "train")
    assert "rolling back to its latest checkpoint with LR 0.001 (roll-back 1 of 1)" in output
    assert "gave up after 1 roll-back(s) with a lower LR" in record.message

    assert not list(run_dir.glob("steps/*/final.pth"))  # nothing diverged was archived as finished
    assert ledger.get("l256-s1g2").status == "pending"  # the P-frame step never started
    assert not (run_dir / "steps" / "l256-s1g2" / "events.jsonl").exists()
    assert "not started: the steps of l256" in output
    meta = read_meta(latest, verify=True)  # the good checkpoint the divergence kept, intact
    assert meta is not None and meta["step_id"] == "train" and meta["epoch"] >= saved[-1]


# ---------------------------------------------------------------- the recipe's flag

def _recipe(clips: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
    env.pop("DCVC_BENCH_RUNNER_PID", None)
    argv = ["--train_video_dir", str(clips), "--skip_eval", "--checkpoint_dir", str(root / "ck"),
            "--events_file", str(root / "events.jsonl"), "--i_frame_type", "rvq", "--step_tag", "e2e",
            "--vqgan_config", str(CONFIG_DIR / "tiny_rvq_f2.json"), "--crop_size", "32", "--disc_channels", "8",
            "--index_fit_samples", "4", "--batch_size", "2", "--num_workers", "0", "--steps_per_epoch", "2",
            "--learning_rate", "1e-3", "--disc_learning_rate", "2e-3", "--disc_start", "1", *extra]
    return subprocess.run([sys.executable, "-m", "dcvc_bench.train.iframe", *argv], env=env, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)


def _lrs(optimizer_state: dict) -> list[float]:
    return [g["lr"] for g in optimizer_state["param_groups"]]


def _steps(optimizer_state: dict) -> set[int]:
    return {int(s["step"]) for s in optimizer_state["state"].values()}


def test_force_learning_rate_sets_both_optimizers_after_their_states_are_loaded(tmp_path):
    import torch

    from dcvc_bench.data.synth import write_synthetic_clips

    clips = tmp_path / "clips"
    write_synthetic_clips(clips, videos=1, frames=4, size=(32, 32), seed=0)
    res = _recipe(clips, tmp_path, "--epochs", "1")
    assert res.returncode == 0, res.stderr[-2000:]
    latest = iframe_checkpoint_path(tmp_path / "ck", "rvq", "e2e", "latest")
    before = torch.load(latest, map_location="cpu", weights_only=True)
    assert _lrs(before["optimizer_state_dict"]) == [1e-3] and _lrs(before["disc_optimizer_state_dict"]) == [2e-3]

    res = _recipe(clips, tmp_path, "--epochs", "2", "--resume", str(latest), "--force_learning_rate", "1e-4")
    assert res.returncode == 0, res.stderr[-2000:]
    start = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "step_start"][-1]
    assert start["start_mode"] == "continue" and start["start_epoch"] == 1 and start["lr_reset"] is True
    assert start["lr"] == pytest.approx(1e-4)
    assert "LR forced to 0.0001 (discriminator 0.0002)" in start["message"]
    after = torch.load(latest, map_location="cpu", weights_only=True)
    assert after["epoch"] == 2 and after["lr"] == pytest.approx(1e-4)
    assert _lrs(after["optimizer_state_dict"]) == [pytest.approx(1e-4)]
    assert _lrs(after["disc_optimizer_state_dict"]) == [pytest.approx(2e-4)]  # the ratio 2 kept
    # Forced after loading: both optimizers carried their moments (Adam's step counts go on).
    assert _steps(before["optimizer_state_dict"]) == {2} and _steps(after["optimizer_state_dict"]) == {4}
    assert _steps(before["disc_optimizer_state_dict"]) == {1} and _steps(after["disc_optimizer_state_dict"]) == {3}


def test_force_learning_rate_must_be_positive():
    from dcvc_bench.train.iframe.args import parse_args

    argv = ["--train_video_dir", "clips", "--i_frame_type", "compressai", "--force_learning_rate", "0"]
    with pytest.raises(UserError, match=r"^--force_learning_rate: must be positive, got 0\.0$"):
        parse_args(argv)
