"""How a training step is asked to stop: SIGINT/SIGTERM/SIGUSR1, and the death of its supervisors.

The trainer notices by itself when it has been orphaned, so a trainer whose runner is
gone does not go on training unsupervised:

- **Its parent** (``accelerate launch``, or the runner when it runs the step directly):
  ``prctl(PR_SET_PDEATHSIG)`` has the kernel signal the trainer when the parent dies.
  The kernel fires this when the parent *thread* that forked the trainer exits, so the
  signal used is a dedicated one (:data:`PARENT_DEATH_SIGNAL`), and its handler checks
  that the parent process really changed (``getppid()``) before it counts as a stop.
- **Its runner** (the grandparent under ``accelerate launch``; it starts the step in a
  session of its own, so nothing reaches the trainer when only the runner dies): when the
  environment names it in :data:`RUNNER_PID_ENV`, a daemon thread checks every
  :data:`RUNNER_POLL_S` seconds that this pid still runs (same start time, so a reused
  pid does not count, and not a zombie) and otherwise sends SIGTERM to the trainer's main
  thread.

Both become the same stop as a SIGTERM, with a reason that says which supervisor went.
What the step does on a stop is the training loop's business (``train/loop.py``); this
module only says *that* and *why*. A stop normally sets a flag that the loop checks
between iterations; inside :meth:`StopRequested.abandonable` (evaluation, which may run
for minutes on a large clip and is thrown away when interrupted) it raises
:class:`StopNow` at once instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from dcvc_bench.faults import RUNNER_PID_ENV  # the runner gives the trainer its pid through it
#: How often the trainer checks that its runner is still there.
RUNNER_POLL_S = 2.0
#: The signals that ask for a stop. SIGUSR1 is Slurm's warning before a time limit or a
#: preemption (``#SBATCH --signal=USR1@<s>``, ``scancel --signal=USR1``): the same stop as
#: SIGTERM. The job script has ``accelerate launch`` ignore it (see runner/slurm_script.py).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
#: The signal the kernel sends when the trainer's parent dies (PR_SET_PDEATHSIG).
PARENT_DEATH_SIGNAL = signal.SIGUSR2
_PR_SET_PDEATHSIG, _PR_GET_PDEATHSIG = 1, 2


class StopNow(BaseException):
    """A stop inside an abandonable region. A BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` in the abandoned code swallows it."""


class StopRequested:
    """Truthy once a stop was asked for; ``signal`` and ``reason`` say by what."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.reason: str | None = None
        self._abandonable = 0
        self._parent_pid = os.getppid()
        self.installed = False

    # -- handlers -------------------------------------------------------------------
    def install(self) -> dict[int, Any]:
        """Install the handlers (main thread only); returns the previous ones."""
        self._parent_pid = os.getppid()
        previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        previous[PARENT_DEATH_SIGNAL] = signal.signal(PARENT_DEATH_SIGNAL, self._parent_death)
        self.installed = True
        return previous

    def restore(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        self.installed = False

    def _handler(self, signum: int, _frame: Any) -> None:
        self.request(signum)

    def _parent_death(self, signum: int, _frame: Any) -> None:
        if os.getppid() == self._parent_pid:
            return  # the forking thread ended, not the parent process
        self.request(signal.SIGTERM, f"its parent process (pid {self._parent_pid}) exited")

    def request(self, signum: int, reason: str | None = None) -> None:
        """Record a stop (first one wins) and, inside an abandonable region, raise."""
        if self.signal is None:
            self.signal = signum
            self.reason = reason or self.reason
        if self._abandonable:
            raise StopNow()

    # -- what the loop asks -----------------------------------------------------------
    def __bool__(self) -> bool:
        return self.signal is not None

    def describe(self) -> str:
        """What follows "stopped": ``by SIGINT``, or ``because its runner (pid 12) is gone``."""
        if self.reason:
            return f"because {self.reason}"
        return f"by {signal.Signals(self.signal).name}" if self.signal else "by a signal"

    @contextmanager
    def abandonable(self) -> Iterator[None]:
        """A region whose work is thrown away on a stop: a stop raises :class:`StopNow`
        at once (also on entry, when one came before)."""
        if self:
            raise StopNow()
        self._abandonable += 1
        try:
            yield
        finally:
            self._abandonable -= 1


# -- supervisors --------------------------------------------------------------------
def _start_time(pid: int) -> int | None:
    """The start time of a live (non-zombie) pid from /proc, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class RunnerWatch:
    """Polls the runner's pid; when it is gone, SIGTERMs the main thread (see module doc)."""

    def __init__(self, pid: int, stop: StopRequested, poll_s: float = RUNNER_POLL_S):
        self.pid, self.stop, self.poll_s = pid, stop, poll_s
        self._proc = os.path.isdir("/proc/self")
        self._started = _start_time(pid) if self._proc else None
        self._done = threading.Event()
        self._lock = threading.Lock()  # no SIGTERM once close() returned
        self._thread = threading.Thread(target=self._watch, name="dcvc-bench-runner-watch", daemon=True)

    def alive(self) -> bool:
        if not self._proc:
            return _pid_exists(self.pid)
        return self._started is not None and _start_time(self.pid) == self._started

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.poll_s + 1)

    def _watch(self) -> None:
        while True:
            if not self.alive():
                with self._lock:
                    if not self._done.is_set():
                        if self.stop.signal is None:
                            self.stop.reason = f"its runner (pid {self.pid}) is gone"
                        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                return
            if self._done.wait(self.poll_s):
                return


def runner_pid(env: dict[str, str] | os._Environ = os.environ) -> int | None:
    """The runner's pid from :data:`RUNNER_PID_ENV`; None when unset. A value that is not
    a pid is reported on stderr and ignored (it is set by the runner, not by users)."""
    raw = env.get(RUNNER_PID_ENV, "").strip()
    if not raw:
        return None
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    print(f"warning: {RUNNER_PID_ENV}={raw!r} is not a pid; not watching the runner",
          file=sys.stderr, flush=True)
    return None


def _prctl():  # pragma: no cover - exercised on Linux only
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


@contextmanager
def supervised(stop: StopRequested, env: dict[str, str] | os._Environ = os.environ) -> Iterator[StopRequested]:
    """Install the stop handlers, ask the kernel for a signal on the parent's death and
    watch the runner's pid (when the environment gives it); undo all of it on exit, so an
    in-process caller (the tests) is left as it was."""
    previous = stop.install()
    prctl = _prctl() if sys.platform.startswith("linux") else None
    old_pdeath = ctypes.c_int(0)
    if prctl is not None:
        prctl(_PR_GET_PDEATHSIG, ctypes.byref(old_pdeath), 0, 0, 0)
        prctl(_PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
        if os.getppid() != stop._parent_pid:  # the parent died before prctl took effect
            stop.request(signal.SIGTERM, f"its parent process (pid {stop._parent_pid}) exited")
    watch = None
    pid = runner_pid(env)
    if pid is not None:
        watch = RunnerWatch(pid, stop)
        if not watch.alive():
            stop.request(signal.SIGTERM, f"its runner (pid {pid}) is gone")
        else:
            watch.start()
    try:
        yield stop
    finally:
        if watch is not None:
            watch.close()
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, old_pdeath.value, 0, 0, 0)
        stop.restore(previous)
