"""One `run` per run folder: a second one is refused naming the owner; a dead owner's
lock is taken over; on shared storage an owner on another host counts as alive while its
heartbeat is fresh."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from dcvc_bench.errors import UserError
from dcvc_bench.runner.lock import FLOCK_FILE, LOCK_FILE, RunLock, lock_holder, lock_owner

HOLDER = textwrap.dedent("""
    import sys, time
    from dcvc_bench.runner.lock import RunLock
    lock = RunLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the run folder's lock."""
    run_dir = tmp_path / "runs" / "smoke"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield run_dir, proc
    finally:
        proc.kill()
        proc.wait()


def test_second_run_is_refused_naming_the_owners_pid(holder):
    run_dir, proc = holder
    with pytest.raises(UserError) as err:
        RunLock(run_dir).acquire()
    message = str(err.value)
    assert message.startswith(f"{run_dir} is being run by pid {proc.pid} (started ")
    assert message.endswith("wait for it or stop it")
    assert lock_owner(run_dir)["pid"] == proc.pid


def test_lock_of_a_killed_owner_is_taken_over(holder):
    run_dir, proc = holder
    proc.kill()
    proc.wait()
    assert lock_owner(run_dir) is None
    with RunLock(run_dir):
        assert lock_owner(run_dir)["pid"] == os.getpid()
    assert lock_owner(run_dir) is None  # released: no owner left behind for readers


# -- the owner file with a heartbeat (shared storage, where flock may not work) ------------
def _write_owner(run_dir, **owner):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / LOCK_FILE).write_text(json.dumps(owner))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_owner_file_names_host_pid_start_and_a_heartbeat_that_the_owner_refreshes(tmp_path):
    run_dir = tmp_path / "runs" / "smoke"
    with RunLock(run_dir, heartbeat_s=0.05) as lock:
        first = json.loads((run_dir / LOCK_FILE).read_text())
        assert {k: first[k] for k in ("pid", "host")} == {"pid": os.getpid(), "host": socket.gethostname()}
        assert first["started"] <= first["heartbeat"] <= time.time()
        deadline = time.monotonic() + 10
        while json.loads((run_dir / LOCK_FILE).read_text())["heartbeat"] == first["heartbeat"]:
            assert time.monotonic() < deadline, "the heartbeat was never refreshed"
            time.sleep(0.02)
        assert lock.notice is None and lock.lost is None
    assert not (run_dir / LOCK_FILE).exists()
    assert sorted(p.name for p in run_dir.iterdir()) == [FLOCK_FILE]  # no temp file left


def test_a_live_owner_in_another_process_is_refused_naming_host_and_pid_even_without_flock(holder, monkeypatch):
    """Where flock does not work (NFS without a lock manager: ENOLCK), the owner file
    alone refuses the second run."""
    run_dir, proc = holder

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(UserError) as err:
        RunLock(run_dir).acquire()
    message = str(err.value)
    assert message.startswith(f"{run_dir} is being run by pid {proc.pid} (started ")
    assert f" on {socket.gethostname()};" in message and "\n" not in message


def test_a_dead_owners_lock_with_an_old_heartbeat_is_taken_over_saying_whose(tmp_path):
    run_dir = tmp_path / "runs" / "smoke"
    pid = _dead_pid()
    _write_owner(run_dir, pid=pid, host="node17", started=time.time() - 3600, heartbeat=time.time() - 300)
    with RunLock(run_dir) as lock:
        assert lock_owner(run_dir)["pid"] == os.getpid()
        assert lock.notice.startswith(f"took over the stale lock of {run_dir} left by pid {pid} (started ")
        assert " on node17, last heartbeat 300 s ago" in lock.notice


def test_a_dead_local_owner_is_taken_over_at_once_whatever_its_heartbeat(tmp_path):
    run_dir = tmp_path / "runs" / "smoke"
    pid = _dead_pid()
    _write_owner(run_dir, pid=pid, host=socket.gethostname(), started=time.time(), heartbeat=time.time())
    with RunLock(run_dir) as lock:
        assert f"left by pid {pid} " in lock.notice


def test_another_hosts_lock_with_a_fresh_heartbeat_is_refused_though_its_pid_is_not_here(tmp_path):
    run_dir = tmp_path / "runs" / "smoke"
    pid = _dead_pid()
    _write_owner(run_dir, pid=pid, host="node17", started=time.time() - 60, heartbeat=time.time() - 3)
    assert lock_holder(run_dir)["host"] == "node17"
    assert lock_owner(run_dir) is None  # not this host's: no pid here to signal
    with pytest.raises(UserError) as err:
        RunLock(run_dir).acquire()
    assert str(err.value).startswith(f"{run_dir} is being run by pid {pid} (started ")
    assert " on node17, last heartbeat 3 s ago; wait for it or stop it" in str(err.value)
    assert json.loads((run_dir / LOCK_FILE).read_text())["host"] == "node17"  # left as it was


def test_a_run_on_another_host_refuses_a_skip_too(tmp_path):
    from dcvc_bench.runner.commands import _refuse_while_running

    run_dir = tmp_path / "runs" / "smoke"
    _write_owner(run_dir, pid=_dead_pid(), host="node17", started=time.time(), heartbeat=time.time())
    with pytest.raises(UserError, match="on node17.*stop it first"):
        _refuse_while_running(run_dir)


def test_an_owner_that_finds_its_lock_taken_over_stops_its_heartbeat_and_says_so(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "smoke"
    lock = RunLock(run_dir, heartbeat_s=0.05)
    lock.acquire()
    try:
        _write_owner(run_dir, pid=4242, host="node17", started=time.time(), heartbeat=time.time(), token="x")
        deadline = time.monotonic() + 10
        while lock.lost is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        lock.release()
    assert json.loads((run_dir / LOCK_FILE).read_text())["host"] == "node17"  # the new owner's file stays
    assert "was taken over by pid 4242" in capsys.readouterr().err
