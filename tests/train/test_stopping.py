"""The stop machinery on its own (no torch): signals, the abandonable region, the
parent-death signal's check and the runner watch, with real processes and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dcvc_bench.train.stopping import (PARENT_DEATH_SIGNAL, RUNNER_PID_ENV, StopNow, StopRequested,
                                       runner_pid, supervised)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc and prctl")


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_signal_sets_the_flag_and_the_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequested()
    with supervised(stop, env={}):
        assert not stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert _wait(lambda: bool(stop), 5)
        assert stop.describe() == "by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before and not stop.installed


def test_a_stop_inside_an_abandonable_region_raises_at_once():
    stop = StopRequested()
    with supervised(stop, env={}):
        t0 = time.monotonic()
        with pytest.raises(StopNow):
            with stop.abandonable():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(30)  # interrupted: the handler raises in the main thread
        assert time.monotonic() - t0 < 10
        assert stop.describe() == "by SIGINT"
        with pytest.raises(StopNow):  # a stop that came before the region
            with stop.abandonable():
                pass


@linux_only
def test_the_parent_death_signal_counts_only_when_the_parent_changed():
    stop = StopRequested()
    with supervised(stop, env={}):
        os.kill(os.getpid(), PARENT_DEATH_SIGNAL)  # our parent is alive: not a stop
        time.sleep(0.2)
        assert not stop


def test_a_runner_pid_that_is_not_a_pid_is_reported_and_ignored(capsys):
    assert runner_pid({RUNNER_PID_ENV: "12ab"}) is None
    assert RUNNER_PID_ENV in capsys.readouterr().err
    assert runner_pid({}) is None and runner_pid({RUNNER_PID_ENV: "42"}) == 42


def test_a_runner_already_gone_is_a_stop_at_once():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stop = StopRequested()
    with supervised(stop, env={RUNNER_PID_ENV: str(gone.pid)}):
        assert stop and stop.describe() == f"because its runner (pid {gone.pid}) is gone"


def test_the_death_of_the_runner_stops_the_trainer_within_seconds():
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop = StopRequested()
    try:
        with supervised(stop, env={RUNNER_PID_ENV: str(runner.pid)}):
            time.sleep(0.5)
            assert not stop  # alive: nothing happens
            runner.kill()
            runner.wait()
            t0 = time.monotonic()
            assert _wait(lambda: bool(stop), 15), "the runner's death went unnoticed"
            took = time.monotonic() - t0
        assert stop.signal == signal.SIGTERM
        assert stop.describe() == f"because its runner (pid {runner.pid}) is gone"
        assert took < 10  # it polls every 2 s
    finally:
        runner.kill()
