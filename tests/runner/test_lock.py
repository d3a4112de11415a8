"""One `run` per run folder: a second one is refused naming the owner; a dead owner's
lock is simply taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dcvc_bench.errors import UserError
from dcvc_bench.runner.lock import RunLock, lock_owner

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
