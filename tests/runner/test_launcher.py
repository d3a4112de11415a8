"""The launcher on a real two-process group shaped like `accelerate launch` + trainer:
the launcher dies of SIGINT at once, the trainer under it saves and reports first."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from dcvc_bench.runner.launcher import StepProcess, StopRequest, child_env, follow, group_alive

PROGRAM = textwrap.dedent("""
    import signal, subprocess, sys, time
    from dcvc_bench.events import EventWriter

    def trainer(events, mode):
        out = EventWriter(events)
        stop = []
        if mode == "stubborn":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        out.emit("step_start", step="s1g2", stage=1, gop=2, epochs=1, start_epoch=0, lr=1e-4,
                 resumed_from=None, lr_reset=False, **{"lambda": 2048.0})
        it = 0
        while not stop:
            it += 1
            out.emit("train", step="s1g2", epoch=0, iter=it, iters_per_epoch=1000, loss=1.0, mse=0.01,
                     psnr=20.0, bpp=0.1, bpp_y=0.05, bpp_z=0.01, bpp_mv_y=0.03, bpp_mv_z=0.01, lr=1e-4,
                     frames_per_s=10.0)
            time.sleep(0.05)
        time.sleep(0.5)  # finishing the iteration and writing latest
        out.emit("checkpoint", step="s1g2", kind="latest", path="latest.pth", epoch=0, loss=1.0)
        out.emit("step_end", step="s1g2", status="interrupted", epoch=0, best_loss=1.0,
                 message="stopped by SIGINT")
        sys.exit(130)

    if sys.argv[1] == "trainer":
        trainer(sys.argv[2], sys.argv[3])
    else:  # the launcher: starts the trainer in its group and, like accelerate, dies of SIGINT
        print("launcher up", flush=True)
        child = subprocess.Popen([sys.executable, __file__, "trainer", sys.argv[2], sys.argv[3]])
        sys.exit(child.wait())
""")


@pytest.fixture
def launch(tmp_path):
    script = tmp_path / "fake_launch.py"
    script.write_text(PROGRAM)
    events = tmp_path / "events.jsonl"
    started = []

    def start(mode: str = "graceful") -> StepProcess:
        import sys

        process = StepProcess([sys.executable, str(script), "launch", str(events), mode],
                              tmp_path / "stdout.log", child_env())
        started.append(process)
        return process

    start.events = events
    start.log = tmp_path / "stdout.log"
    yield start
    for process in started:
        process.kill()


def _stop_after_first_train(stop: StopRequest, seen: list):
    def on_event(event):
        seen.append(event["event"])
        if event["event"] == "train":
            stop.graceful.set()
    return on_event


def test_step_runs_in_its_own_process_group_with_output_in_its_log(launch):
    process, stop = launch(), StopRequest()
    assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    follow(process, launch.events, _stop_after_first_train(stop, []), stop)
    assert "launcher up" in launch.log.read_text()


def test_graceful_stop_waits_for_the_trainer_to_save_after_the_launcher_died(launch):
    process, stop, seen = launch(), StopRequest(), []
    t0 = time.monotonic()
    result = follow(process, launch.events, _stop_after_first_train(stop, seen), stop, grace_s=20)
    assert result.stopped_by_runner and result.status == "interrupted"
    assert seen[-2:] == ["checkpoint", "step_end"]  # what the trainer wrote after the SIGINT
    assert result.last_train["lr"] == 1e-4
    assert not group_alive(process.pgid) and time.monotonic() - t0 < 15


def test_a_step_that_ignores_sigint_is_terminated_after_the_grace_period(launch):
    process, stop = launch("stubborn"), StopRequest()
    t0 = time.monotonic()
    result = follow(process, launch.events, _stop_after_first_train(stop, []), stop, grace_s=0.5, term_s=2)
    assert result.stopped_by_runner and result.step_end is None
    assert not group_alive(process.pgid) and time.monotonic() - t0 < 10


def test_kill_request_kills_the_group_at_once(launch):
    process, stop = launch(), StopRequest()

    def on_event(event):
        if event["event"] == "train":
            stop.graceful.set()
            stop.kill.set()

    result = follow(process, launch.events, on_event, stop, grace_s=60)
    assert result.stopped_by_runner and result.step_end is None  # no time to save
    assert not group_alive(process.pgid)


def test_events_of_earlier_attempts_are_skipped(launch):
    launch.events.write_text('{"v":1,"t":0,"event":"step_end","step":"s1g2","status":"failed"}\n')
    offset = launch.events.stat().st_size
    process, stop, seen = launch(), StopRequest(), []
    result = follow(process, launch.events, _stop_after_first_train(stop, seen), stop, offset=offset)
    assert seen[0] == "step_start" and result.status == "interrupted"


def test_child_env_is_unbuffered_and_pins_the_assigned_gpu():
    env = child_env("3", base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "3"}
    assert "CUDA_VISIBLE_DEVICES" not in child_env(None, base={})
