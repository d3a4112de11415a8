"""The training step's semantics, on the real tiny DCVC, real data and real Accelerate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dcvc_bench.checkpoints import read_meta
from dcvc_bench.models.video_net import MOTION_MODULES, RESIDUAL_MODULES
from dcvc_bench.checkpoint_io import REQUIRED_KEYS, load_checkpoint, save_checkpoint

from train_helpers import ckpt, events_of, run_in_process, run_subprocess, step_argv


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, synthetic_clips):
    """A finished stage-1 GOP-2 step (2 epochs, with evaluation)."""
    root = tmp_path_factory.mktemp("stage1")
    argv = step_argv(synthetic_clips, root / "ck", root / "s1.jsonl", stage=1, epochs=2, eval_=True)
    assert run_in_process(argv) == 0
    return root


def _weights(path):
    return load_checkpoint(path)["model_state_dict"]


def test_checkpoint_names_and_keys(stage1):
    for kind in ("latest", "best", "best_ema", "global_best", "final"):
        path = ckpt(stage1 / "ck", 1, kind)
        assert path.name == f"model_dcvc_lambda_256.0_quality_1_stage_1_{kind}.pth"
        state = load_checkpoint(path)
        assert set(REQUIRED_KEYS) <= set(state), set(REQUIRED_KEYS) - set(state)
        assert state["stage"] == 1 and state["gop_size"] == 2 and state["step_id"] == "s1g2"
        assert read_meta(path)["step_id"] == "s1g2"  # the torch-free sidecar agrees
    final = load_checkpoint(ckpt(stage1 / "ck", 1, "final"))
    assert final["epoch"] == 2 and final["finished"] is True
    top = {k.split(".")[0] for k in final["model_state_dict"]}
    # DCVC's module names (shared/DESIGN.md), nothing else; GaussianConditional modules
    # hold only buffers that CompressAI rebuilds, so they may be absent.
    assert top <= set(MOTION_MODULES) | set(RESIDUAL_MODULES), top - set(MOTION_MODULES) - set(RESIDUAL_MODULES)
    assert (set(MOTION_MODULES) | set(RESIDUAL_MODULES)) - {"gaussian_conditional_mv", "gaussian_conditional"} <= top


def test_events_follow_the_schema(stage1):
    from dcvc_bench.events import EVENT_FIELDS, read_events

    events = read_events(stage1 / "s1.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "step_start" and kinds[-1] == "step_end"
    assert kinds.count("eval") == 2
    for e in events:
        assert e["v"] == 1 and isinstance(e["t"], float)
        assert set(EVENT_FIELDS[e["event"]]) <= set(e), e
    ev = events_of(stage1 / "s1.jsonl", "eval")[-1]
    assert ev["psnr"] > 10 and ev["bpp"] > 0 and 0 < ev["ms_ssim"] <= 1
    assert ev["i_frame"]["bpp"] > 0 and ev["p_frame"]["bpp"] > 0 and ev["ema"] is not None
    train = events_of(stage1 / "s1.jsonl", "train")[-1]
    for term in ("bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z"):
        assert train[term] > 0  # all four terms reported even though stage 1 ignores two
    assert abs(train["bpp"] - sum(train[t] for t in ("bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z"))) < 1e-5


def test_stage2_freezes_motion_and_trains_residual(stage1, synthetic_clips, tmp_path):
    before = _weights(ckpt(stage1 / "ck", 1, "best"))
    ck_dir = tmp_path / "ck"
    ck_dir.mkdir()
    # Stage 2's first step finds stage 1's best in --checkpoint_dir by itself.
    (ck_dir / ckpt(stage1 / "ck", 1, "best").name).write_bytes(ckpt(stage1 / "ck", 1, "best").read_bytes())
    assert run_in_process(step_argv(synthetic_clips, ck_dir, tmp_path / "e.jsonl", stage=2, steps=2)) == 0
    start = events_of(tmp_path / "e.jsonl", "step_start")[0]
    assert start["resumed_from"].endswith("stage_1_best.pth") and start["start_mode"] == "weights_only"
    after = _weights(ckpt(ck_dir, 2, "final"))
    motion = [k for k in before if k.split(".")[0] in MOTION_MODULES]
    residual = [k for k in before if k.split(".")[0] not in MOTION_MODULES
                and before[k].dtype.is_floating_point and not k.endswith("quantiles")]
    assert motion and residual
    for k in motion:
        assert torch.equal(before[k], after[k]), f"frozen tensor {k} changed in stage 2"
    assert any(not torch.equal(before[k], after[k]) for k in residual)

    # Stage 4 from there changes both.
    s4 = tmp_path / "s4"
    assert run_in_process(step_argv(synthetic_clips, s4, tmp_path / "e4.jsonl", stage=4, steps=2,
                                    extra=["--load_pretrained", str(ckpt(ck_dir, 2, "final"))])) == 0
    after4 = _weights(ckpt(s4, 4, "final"))
    assert any(not torch.equal(after[k], after4[k]) for k in motion if after[k].dtype.is_floating_point)
    assert any(not torch.equal(after[k], after4[k]) for k in residual)


def test_gop_increase_with_forced_lr_trains_its_own_epochs_at_reset_lr(stage1, synthetic_clips, tmp_path):
    # GOP 2's plateau scheduler had lowered the LR: write that state into its latest.
    state = load_checkpoint(ckpt(stage1 / "ck", 1, "latest"))
    for group in state["optimizer_state_dict"]["param_groups"]:
        group["lr"] = 2.5e-5
    state["scheduler_state_dict"] = {"best": 0.1, "num_bad_epochs": 2, "_last_lr": [2.5e-5],
                                     "last_epoch": 2}
    lowered = tmp_path / "gop2_latest.pth"
    save_checkpoint(lowered, state)
    ev = tmp_path / "g3.jsonl"
    code = run_in_process(step_argv(synthetic_clips, tmp_path / "ck", ev, stage=1, gop=3, epochs=2,
                                    extra=["--resume", str(lowered), "--force_learning_rate", "1e-4",
                                           "--use_scheduler"]))
    assert code == 0
    start = events_of(ev, "step_start")[0]
    assert start["start_epoch"] == 0 and start["lr_reset"] is True and start["lr"] == pytest.approx(1e-4)
    assert all(e["lr"] == pytest.approx(1e-4) for e in events_of(ev, "train"))
    final = load_checkpoint(ckpt(tmp_path / "ck", 1, "final"))
    assert final["epoch"] == 2 and final["gop_size"] == 3 and final["step_id"] == "s1g3"
    # Optimizer state came along (Adam moments), only the LR was reset.
    assert final["optimizer_state_dict"]["state"]


def test_resume_without_force_keeps_the_lowered_lr(stage1, synthetic_clips, tmp_path):
    state = load_checkpoint(ckpt(stage1 / "ck", 1, "latest"))
    for group in state["optimizer_state_dict"]["param_groups"]:
        group["lr"] = 3e-5
    state["epoch"], state["finished"] = 1, False
    own = tmp_path / "own_latest.pth"
    save_checkpoint(own, state)
    ev = tmp_path / "r.jsonl"
    assert run_in_process(step_argv(synthetic_clips, tmp_path / "ck", ev, stage=1, epochs=2,
                                    extra=["--resume", str(own)])) == 0
    start = events_of(ev, "step_start")[0]
    assert start["start_epoch"] == 1 and start["lr_reset"] is False
    assert start["lr"] == pytest.approx(3e-5)
    assert len({e["epoch"] for e in events_of(ev, "train")}) == 1  # only the one missing epoch


def test_sigkill_during_epoch_2_then_resume_ends_with_exactly_3_epochs(synthetic_clips, tmp_path):
    ev = tmp_path / "k.jsonl"
    argv = step_argv(synthetic_clips, tmp_path / "ck", ev, stage=1, epochs=3, steps=3)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "dcvc_bench.train", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(e["epoch"] == 1 for e in events_of(ev, "train")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the step ended before epoch 2 started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = ckpt(tmp_path / "ck", 1, "latest")
    assert load_checkpoint(latest)["epoch"] == 1  # written at the end of epoch 1, intact
    assert not ckpt(tmp_path / "ck", 1, "final").exists()
    ev2 = tmp_path / "k2.jsonl"
    done = run_subprocess(step_argv(synthetic_clips, tmp_path / "ck", ev2, stage=1, epochs=3, steps=3,
                                    extra=["--resume", str(latest)]), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert events_of(ev2, "step_start")[0]["start_epoch"] == 1
    assert sorted({e["epoch"] for e in events_of(ev2, "train")}) == [1, 2]
    assert load_checkpoint(ckpt(tmp_path / "ck", 1, "final"))["epoch"] == 3


def test_sigint_in_the_first_epoch_saves_nothing_and_reports_interrupted(synthetic_clips, tmp_path):
    ev = tmp_path / "i.jsonl"
    argv = step_argv(synthetic_clips, tmp_path / "ck", ev, stage=1, epochs=5, steps=50)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "dcvc_bench.train", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not events_of(ev, "train"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    end = events_of(ev, "step_end")[-1]
    assert end["status"] == "interrupted" and end["epoch"] == 0
    assert "in epoch 1 of 5" in end["message"] and "starts again from its beginning" in end["message"]
    # latest only ever holds an epoch's end: none ended, so none was written.
    assert not ckpt(tmp_path / "ck", 1, "latest").exists()
    assert "Traceback" not in err


def test_non_finite_loss_ends_diverged_without_touching_good_checkpoints(stage1, synthetic_clips, tmp_path):
    ck_dir = tmp_path / "ck"
    ck_dir.mkdir()
    good = ck_dir / ckpt(stage1 / "ck", 1, "latest").name
    good.write_bytes(ckpt(stage1 / "ck", 1, "latest").read_bytes())
    before = good.read_bytes()
    ev = tmp_path / "d.jsonl"
    # λ = 1e39 overflows float32: every loss is inf.
    argv = step_argv(synthetic_clips, ck_dir, ev, stage=1, gop=2, epochs=3, steps=8,
                     extra=["--lambda_value", "1e39", "--resume", str(good)])
    assert run_in_process(argv) == 3
    assert events_of(ev, "step_end")[-1]["status"] == "diverged"
    assert good.read_bytes() == before


def test_gradient_accumulation_really_accumulates(synthetic_clips, tmp_path):
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    argv = step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=4, steps=4,
                     extra=["--gradient_accumulation_steps", "2", "--no-use_ema"])
    trainer = Trainer(parse_args(argv))
    batches = [b.float() / 255 for b in trainer.loader]
    probe = trainer.net.contextualEncoder[0].weight
    w0 = probe.detach().clone()
    trainer.train_batch(batches[0])
    assert torch.equal(probe, w0), "stepped after 1 of 2 accumulation steps"
    assert probe.grad is not None and probe.grad.abs().sum() > 0  # gradient kept for the next one
    trainer.train_batch(batches[1])
    assert not torch.equal(probe, w0)
    assert trainer.ema is None  # --no-use_ema switched the default-on flag off


def test_ema_updates_once_per_optimizer_step_under_gradient_accumulation(synthetic_clips, tmp_path):
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    argv = step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=4, steps=4,
                     extra=["--gradient_accumulation_steps", "2"])
    trainer = Trainer(parse_args(argv))
    shadow0 = {n: t.clone() for n, t in trainer.ema.shadow.items()}
    for batch in trainer.loader:  # 4 micro-batches of one P-frame each: 2 optimizer steps
        trainer.train_batch(batch.float() / 255)
    adam_steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert adam_steps == {2}
    assert trainer.ema.num_updates == 2  # was 4: one update per micro-step
    assert any(not torch.equal(trainer.ema.shadow[n], shadow0[n]) for n in shadow0)


def test_an_ema_that_does_not_fit_on_resume_is_one_line_exit_2(stage1, synthetic_clips, tmp_path, capsys):
    state = load_checkpoint(ckpt(stage1 / "ck", 1, "latest"))
    shadow = state["ema_state_dict"]["shadow"]
    name = next(iter(shadow))
    shadow[name] = torch.zeros(3, 1)  # not the shape of that parameter
    bad = tmp_path / "bad_ema.pth"
    save_checkpoint(bad, state)
    argv = step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1, epochs=3,
                     extra=["--resume", str(bad)])
    assert run_in_process(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: its EMA state"), lines
    assert "--no-use_ema" in lines[0]
    # The intact checkpoint resumes, and step_start says how the EMA started.
    assert run_in_process(argv[:-2] + ["--resume", str(ckpt(stage1 / "ck", 1, "latest"))]) == 0
    start = events_of(tmp_path / "e.jsonl", "step_start")[-1]
    assert start["ema_start"].startswith("continued ("), start


def test_gop_optimisation_takes_one_step_per_gop(synthetic_clips, tmp_path):
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    def adam_steps(trainer):
        return {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}

    for gop_opt, expected in ((False, {3}), (True, {1})):
        AcceleratorState._reset_state(True)
        os.environ["ACCELERATE_USE_CPU"] = "true"
        extra = ["--stage4_gop_opt"] if gop_opt else []
        trainer = Trainer(parse_args(step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl",
                                               stage=4, gop=4, extra=extra)))
        trainer.train_batch(next(iter(trainer.loader)).float() / 255)
        assert adam_steps(trainer) == expected


def test_same_seed_same_weights(synthetic_clips, tmp_path):
    outs = []
    for name in ("a", "b"):
        assert run_in_process(step_argv(synthetic_clips, tmp_path / name, tmp_path / f"{name}.jsonl",
                                        stage=1, steps=2)) == 0
        outs.append(_weights(ckpt(tmp_path / name, 1, "final")))
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_pickled_callable_checkpoint_is_refused(synthetic_clips, tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {}, "hook": os.system}, evil)
    res = run_subprocess(step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1,
                                   extra=["--resume", str(evil)]), timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "evil.pth" in lines[0] and "weights_only" in lines[0]


@pytest.mark.parametrize("extra, needle", [
    (["--train_video_dir", "/nonexistent/clips"], "/nonexistent/clips"),
    (["--stage", "9"], "--stage"),
    (["--gop_size", "1"], "--gop_size"),
    (["--resume", "/nonexistent/x.pth"], "/nonexistent/x.pth"),
    (["--stage4_gop_opt"], "--stage4_gop_opt"),
    (["--i_frame_type", "vqgan"], "vqgan"),
    (["--i_frame_type", "compressai", "--i_frame_pretrained"], "cheng2020"),
    (["--i_frame_model_name", "jpeg"], "--i_frame_codec"),  # another family's flag: refused, not ignored
])
def test_bad_input_is_one_line_and_exit_2(synthetic_clips, tmp_path, extra, needle):
    res = run_subprocess(step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1,
                                   extra=extra), timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_opencv_type_alone_trains_with_jpeg_q90(synthetic_clips, tmp_path):
    argv = step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1)
    at = argv.index("--i_frame_type")
    assert argv[at + 1] == "opencv" and not any(a.startswith(("--i_frame_", "--vqgan", "--rvq")) for a in argv[at + 2:])
    res = run_subprocess(argv, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    final = ckpt(tmp_path / "ck", 1, "final")
    assert load_checkpoint(final)["i_frame"] == {"type": "opencv", "codec": "jpeg", "quality": 90}
    assert read_meta(final)["i_frame"] == {"type": "opencv", "codec": "jpeg", "quality": 90}


def test_unreadable_mp4_is_one_line(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "broken.mp4").write_bytes(b"\x00" * 1000)
    res = run_subprocess(step_argv(clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1), timeout=120)
    assert res.returncode == 2
    assert "broken.mp4" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_best_and_scheduler_use_the_validation_loss_only_on_evaluation_epochs(synthetic_clips, tmp_path):
    ev = tmp_path / "b.jsonl"
    argv = step_argv(synthetic_clips, tmp_path / "ck", ev, stage=1, epochs=3, eval_=True,
                     extra=["--eval_freq", "2", "--no-use_ema"])
    assert run_in_process(argv) == 0
    evals = {e["epoch"]: e["loss"] for e in events_of(ev, "eval")}
    assert sorted(evals) == [2, 3]  # every 2nd epoch, and the last
    bests = [e for e in events_of(ev, "checkpoint") if e["kind"] == "best"]
    assert bests and all(e["epoch"] in evals and e["loss"] == pytest.approx(evals[e["epoch"]])
                         for e in bests), "a best picked on the training loss of a non-eval epoch"
