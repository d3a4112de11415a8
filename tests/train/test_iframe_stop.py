"""Stopping and resuming a real I-frame step (tiny RVQ, GAN on from iteration 2): SIGKILL
in epoch 2 then --resume continues from latest with its epoch counter, both optimizers and
codebooks and ends bit-identical to an uninterrupted step; SIGINT; a stop during the
evaluation; divergence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dcvc_bench.checkpoint_io import load_iframe_checkpoint
from dcvc_bench.train.stopping import RUNNER_PID_ENV

from train_helpers import events_of, iframe_argv, iframe_ckpt, run_iframe_in_process, run_iframe_subprocess

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
ENV.pop(RUNNER_PID_ENV, None)
GAN = ["--disc_start", "2", "--rvq_train_layers", "4"]


def _argv(clips: Path, root: Path, name: str, extra: list[str] = ()) -> list[str]:
    return iframe_argv(clips, root / name, root / f"{name}.jsonl", tag="e2e", epochs=3, steps=3,
                       extra=[*GAN, *extra])


def _start(argv: list[str]) -> subprocess.Popen:
    # Same thread count as the in-process halves: a float sum split over 1 thread and over
    # 2 differs in the last bit, and the comparison is bit-exact.
    env = {**ENV, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-m", "dcvc_bench.train.iframe", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the step ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_optimizer(a: dict, b: dict) -> bool:
    sa, sb = a["state"], b["state"]
    return sa.keys() == sb.keys() and all(_same_tensors(sa[k], sb[k]) for k in sa) and \
        [g["lr"] for g in a["param_groups"]] == [g["lr"] for g in b["param_groups"]]


def _assert_same_end(a: Path, b: Path) -> None:
    fa, fb = (load_iframe_checkpoint(iframe_ckpt(p, "e2e", "final")) for p in (a, b))
    assert fa["epoch"] == fb["epoch"] == 3 and fa["iteration"] == fb["iteration"] == 9
    assert _same_tensors(fa["state_dict"], fb["state_dict"]), "weights or codebooks differ"
    assert _same_tensors(fa["disc_state_dict"], fb["disc_state_dict"]), "discriminators differ"
    assert _same_optimizer(fa["optimizer_state_dict"], fb["optimizer_state_dict"])
    assert _same_optimizer(fa["disc_optimizer_state_dict"], fb["disc_optimizer_state_dict"])
    assert torch.equal(fa["index_counts"], fb["index_counts"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synthetic_clips):
    root = tmp_path_factory.mktemp("iframe_a")
    assert run_iframe_in_process(_argv(synthetic_clips, root, "a")) == 0
    return root / "a"


def test_sigkill_in_epoch_2_then_resume_continues_from_latest_exactly(uninterrupted, synthetic_clips, tmp_path):
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.iframe.args import parse_args
    from dcvc_bench.train.iframe.recipe import IFrameTrainer

    argv = _argv(synthetic_clips, tmp_path, "b")
    proc = _start(argv)
    ev = tmp_path / "b.jsonl"
    _wait_for(proc, lambda: any(e["epoch"] == 1 for e in events_of(ev, "train")), "epoch 2")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest_path = iframe_ckpt(tmp_path / "b", "e2e", "latest")
    latest = load_iframe_checkpoint(latest_path)
    assert latest["epoch"] == 1 and latest["iteration"] == 3  # the end of epoch 1, intact
    assert latest["disc_optimizer_state_dict"]["state"], "the GAN was on in epoch 1"
    assert not iframe_ckpt(tmp_path / "b", "e2e", "final").exists()

    # What the resumed step starts from is exactly what latest held.
    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    trainer = IFrameTrainer(parse_args([*argv, "--resume", str(latest_path)]))
    fam = trainer.family
    assert (trainer.epoch, trainer.iteration, trainer.start.mode) == (1, 3, "continue")
    assert _same_optimizer(fam.optimizer.state_dict(), latest["optimizer_state_dict"])
    assert _same_optimizer(fam.disc_optimizer.state_dict(), latest["disc_optimizer_state_dict"])
    books = {k: v for k, v in fam.net.state_dict().items() if k.startswith("quantize.")}
    assert books and _same_tensors(books, {k: latest["state_dict"][k] for k in books})
    assert _same_tensors(fam.disc_net.state_dict(), latest["disc_state_dict"])
    del trainer, fam

    done = run_iframe_subprocess([*argv, "--resume", str(latest_path)], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    start = events_of(ev, "step_start")[-1]
    assert start["start_epoch"] == 1 and start["iteration"] == 3 and start["start_mode"] == "continue"
    assert sorted({e["epoch"] for e in events_of(ev, "train") if e["t"] >= start["t"]}) == [1, 2]
    _assert_same_end(uninterrupted, tmp_path / "b")


def test_a_stop_during_the_evaluation_saves_a_pending_latest_and_the_resume_ends_the_same(
        uninterrupted, synthetic_clips, tmp_path):
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.iframe.args import parse_args
    from dcvc_bench.train.iframe.recipe import IFrameTrainer
    from dcvc_bench.train.iframe.vq import VQFamily

    argv = _argv(synthetic_clips, tmp_path, "c")
    real = VQFamily.evaluate

    def evaluate_then_sigterm(self, frames):  # the signal arrives in the middle of the evaluation
        frames = list(frames)
        os.kill(os.getpid(), signal.SIGTERM)
        return real(self, frames)

    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    VQFamily.evaluate = evaluate_then_sigterm
    try:
        code = IFrameTrainer(parse_args(argv)).run()
    finally:
        VQFamily.evaluate = real
    assert code == 130
    end = events_of(tmp_path / "c.jsonl", "step_end")[-1]
    assert end["status"] == "interrupted" and "during the evaluation after epoch 1 of 3" in end["message"]
    assert not events_of(tmp_path / "c.jsonl", "eval")
    latest = load_iframe_checkpoint(iframe_ckpt(tmp_path / "c", "e2e", "latest"))
    assert latest["epoch"] == 1 and latest["pending_end_of_epoch"] is True
    assert run_iframe_in_process([*argv, "--resume", str(iframe_ckpt(tmp_path / "c", "e2e", "latest"))]) == 0
    assert [e["epoch"] for e in events_of(tmp_path / "c.jsonl", "eval")] == [1, 2, 3]
    _assert_same_end(uninterrupted, tmp_path / "c")


def test_sigint_in_the_first_epoch_is_interrupted_exit_130_and_saves_nothing(synthetic_clips, tmp_path):
    ev = tmp_path / "i.jsonl"
    proc = _start(iframe_argv(synthetic_clips, tmp_path / "ck", ev, epochs=5, steps=200, eval_=False))
    _wait_for(proc, lambda: bool(events_of(ev, "train")), "the first train event")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    end = events_of(ev, "step_end")[-1]
    assert end["status"] == "interrupted" and "starts again from its beginning" in end["message"]
    assert not iframe_ckpt(tmp_path / "ck", "train", "latest").exists()


def test_a_non_finite_batch_rolls_the_codebooks_back(synthetic_clips, tmp_path):
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.iframe.args import parse_args
    from dcvc_bench.train.iframe.recipe import IFrameTrainer

    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    trainer = IFrameTrainer(parse_args(iframe_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl")))
    batches = [trainer._to_device(b) for b in trainer.loader]
    _, skipped = trainer.train_batch(batches[0])  # k-means initialises the codebooks
    assert skipped == 0
    books = {k: v.clone() for k, v in trainer.family.net.quantize.state_dict().items()}
    weights = {k: v.clone() for k, v in trainer.family.net.state_dict().items() if not k.startswith("quantize.")}
    bad = batches[1].clone()
    bad[0, 0, 0, 0] = float("nan")  # a corrupt frame: the codebooks' EMA sees it, the loss is NaN
    terms, skipped = trainer.train_batch(bad)
    assert skipped == 1 and not torch.isfinite(terms[0]["loss"])
    assert _same_tensors(trainer.family.net.quantize.state_dict(), books), "the codebooks kept the bad batch"
    assert all(torch.equal(v, weights[k]) for k, v in trainer.family.net.state_dict().items() if k in weights)


def test_a_diverging_step_ends_diverged_exit_3_without_a_checkpoint(synthetic_clips, tmp_path):
    ev = tmp_path / "d.jsonl"
    res = run_iframe_subprocess(iframe_argv(synthetic_clips, tmp_path / "ck", ev, steps=9, eval_=False,
                                            extra=["--learning_rate", "1e30"]), timeout=600)
    assert res.returncode == 3, res.stderr[-2000:]
    end = events_of(ev, "step_end")[-1]
    assert end["status"] == "diverged" and "non-finite loss" in end["message"], end
    assert not iframe_ckpt(tmp_path / "ck", "train", "latest").exists()
