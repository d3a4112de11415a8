"""Stopping a real training step: SIGINT/SIGTERM mid-epoch and during evaluation, and an
orphaned trainer (its parent or its runner killed). The resumed step must end exactly
where an uninterrupted one does."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dcvc_bench.checkpoint_io import load_checkpoint
from dcvc_bench.train.stopping import RUNNER_PID_ENV

from train_helpers import ckpt, events_of, run_in_process, step_argv

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
ENV.pop(RUNNER_PID_ENV, None)


def _start(argv: list[str]) -> subprocess.Popen:
    # Same thread count as the in-process halves: a float sum split over 1 thread and over
    # 2 differs in the last bit, and the comparison is bit-exact.
    env = {**ENV, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-m", "dcvc_bench.train", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen | None, condition, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"the step ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _assert_same_end(a_dir: Path, b_dir: Path) -> None:
    """Bit-identical final weights, EMA and optimizer moments."""
    a, b = load_checkpoint(ckpt(a_dir, 1, "final")), load_checkpoint(ckpt(b_dir, 1, "final"))
    assert a["epoch"] == b["epoch"]
    assert _same_tensors(a["model_state_dict"], b["model_state_dict"]), "weights differ"
    assert _same_tensors(a["ema_state_dict"]["shadow"], b["ema_state_dict"]["shadow"]), "EMA differs"
    assert a["ema_state_dict"]["num_updates"] == b["ema_state_dict"]["num_updates"]
    for pa, pb in zip(a["optimizer_state_dict"]["state"].values(), b["optimizer_state_dict"]["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"]) and torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])


def test_sigint_mid_epoch_saves_nothing_and_the_resumed_run_equals_an_uninterrupted_one(
        synthetic_clips, tmp_path):
    def argv(name: str, extra: list[str] = ()) -> list[str]:
        return step_argv(synthetic_clips, tmp_path / name, tmp_path / f"{name}.jsonl", stage=1,
                         epochs=2, steps=4, extra=list(extra))

    assert run_in_process(argv("a")) == 0

    proc = _start(argv("b"))
    ev = tmp_path / "b.jsonl"
    _wait_for(proc, lambda: any(e["epoch"] == 1 for e in events_of(ev, "train")), "epoch 2")
    latest = ckpt(tmp_path / "b", 1, "latest")
    before = _digest(latest)  # written at the end of epoch 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    end = events_of(ev, "step_end")[-1]
    assert end["status"] == "interrupted" and end["epoch"] == 1
    assert "in epoch 2 of 2" in end["message"] and "nothing saved" in end["message"], end["message"]
    assert _digest(latest) == before, "latest was rewritten mid-epoch"
    assert load_checkpoint(latest)["epoch"] == 1
    assert [e["epoch"] for e in events_of(ev, "checkpoint") if e["kind"] == "latest"] == [1]

    assert run_in_process(argv("b", ["--resume", str(latest)])) == 0
    assert events_of(ev, "step_start")[-1]["start_epoch"] == 1
    _assert_same_end(tmp_path / "a", tmp_path / "b")


def test_sigterm_during_evaluation_stops_it_at_once_and_the_resumed_run_equals_an_uninterrupted_one(
        synthetic_clips, tmp_path):
    def argv(name: str, extra: list[str] = ()) -> list[str]:
        return step_argv(synthetic_clips, tmp_path / name, tmp_path / f"{name}.jsonl", stage=1,
                         epochs=2, steps=2, eval_=True,
                         extra=["--eval_max_frames", "6", "--no-evaluate_both", "--use_scheduler",
                                *extra])

    assert run_in_process(argv("a")) == 0
    evals_a = events_of(tmp_path / "a.jsonl", "eval")

    proc = _start(argv("b"))
    ev = tmp_path / "b.jsonl"
    # The last train event of epoch 1 comes right before its evaluation.
    _wait_for(proc, lambda: any(e["epoch"] == 0 and e["iter"] == e["iters_per_epoch"]
                                for e in events_of(ev, "train")), "the end of epoch 1")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert took < 30, f"{took:.1f} s from SIGTERM to exit during evaluation"  # generous bound
    assert not events_of(ev, "eval"), "the evaluation was not abandoned"
    end = events_of(ev, "step_end")[-1]
    assert end["status"] == "interrupted" and end["epoch"] == 1
    assert "during the evaluation after epoch 1 of 2" in end["message"], end["message"]
    latest = load_checkpoint(ckpt(tmp_path / "b", 1, "latest"))
    assert latest["epoch"] == 1 and latest["pending_end_of_epoch"] is True

    assert run_in_process(argv("b", ["--resume", str(ckpt(tmp_path / "b", 1, "latest"))])) == 0
    evals_b = events_of(ev, "eval")
    assert [(e["epoch"], e["loss"], e["bpp"]) for e in evals_b] == \
        [(e["epoch"], e["loss"], e["bpp"]) for e in evals_a]
    _assert_same_end(tmp_path / "a", tmp_path / "b")
    assert _same_tensors(load_checkpoint(ckpt(tmp_path / "a", 1, "best"))["model_state_dict"],
                         load_checkpoint(ckpt(tmp_path / "b", 1, "best"))["model_state_dict"])


# -- orphaned trainers ----------------------------------------------------------------
_PARENT = """
import os, subprocess, sys, time
argv, env = sys.argv[2:], dict(os.environ)
if sys.argv[1] == "runner":  # the runner: the step in a session of its own, under a launcher
    env["{env}"] = str(os.getpid())
    launcher = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]
    child = subprocess.Popen([*launcher, sys.executable, "-m", "dcvc_bench.train", *argv],
                             env=env, start_new_session=True, stdout=subprocess.DEVNULL)
else:                        # the trainer's direct parent
    child = subprocess.Popen([sys.executable, "-m", "dcvc_bench.train", *argv], env=env,
                             start_new_session=True, stdout=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(3600)
""".replace("{env}", RUNNER_PID_ENV)


def _trainers(events: Path) -> list[int]:
    """Live trainer processes writing ``events`` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"dcvc_bench.train" in cmd and str(events).encode() in cmd and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
@pytest.mark.parametrize("killed", ["parent", "runner"])
def test_an_orphaned_trainer_stops_by_itself(synthetic_clips, tmp_path, killed):
    ev = tmp_path / "o.jsonl"
    argv = step_argv(synthetic_clips, tmp_path / "ck", ev, stage=1, epochs=1000, steps=2)
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, killed, *argv], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    group = int(parent.stdout.readline())  # the session (process group) the step runs in
    try:
        _wait_for(parent, lambda: any(e["kind"] == "latest" for e in events_of(ev, "checkpoint")),
                  "the first latest")
        parent.kill()
        parent.wait()
        t0 = time.monotonic()
        _wait_for(None, lambda: events_of(ev, "step_end") and not _trainers(ev),
                  "the orphaned trainer to stop", timeout=60)
        took = time.monotonic() - t0
    finally:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = events_of(ev, "step_end")[-1]
    assert end["status"] == "interrupted", end
    who = "parent process" if killed == "parent" else "runner"
    assert f"its {who} (pid {parent.pid}" in end["message"], end["message"]
    assert took < 30, f"{took:.1f} s"  # generous: it polls every 2 s and ends its iteration
    latest = load_checkpoint(ckpt(tmp_path / "ck", 1, "latest"))
    assert latest["epoch"] >= 1 and latest["epoch"] == end["epoch"]
