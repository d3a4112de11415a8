"""Start one training step as a subprocess, follow its events, stop it gracefully.

The step runs in its own session (``start_new_session=True``), so a Ctrl-C at the
terminal reaches only the runner, which then decides how to stop the step: SIGINT to the
step's whole process group (``accelerate launch`` and the trainer under it), a bounded
wait for the trainer to write ``latest`` and exit, then SIGTERM, then SIGKILL. The group,
not the launcher's pid, is what is waited for: ``accelerate launch`` dies of the SIGINT at
once while the trainer under it is still saving.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from dcvc_bench.checkpoints import WriteError, write_error_of
from dcvc_bench.events import EventTail
from dcvc_bench.faults import RUNNER_PID_ENV

POLL_S = 0.2
#: How long a trainer gets to finish its iteration and write ``latest`` after SIGINT.
STOP_GRACE_S = 120.0
#: How long after SIGTERM before SIGKILL.
TERM_GRACE_S = 15.0
#: How long the group may outlive the launcher on its own before it is stopped.
ORPHAN_GRACE_S = 5.0


#: Set in every step's environment (inherited by accelerate, the trainer and its workers):
#: the run folder and the step they belong to, so that a later `run` finds them even when
#: their pid never reached the ledger; and the runner's pid (RUNNER_PID_ENV), so that a
#: trainer can tell when the runner that supervises it is gone.
RUN_DIR_ENV, STEP_ENV = "DCVC_BENCH_RUN_DIR", "DCVC_BENCH_STEP"


def child_env(gpu: str | None = None, base: dict[str, str] | None = None,
              run_dir: str | Path | None = None, step_id: str | None = None) -> dict[str, str]:
    """The step's environment: unbuffered output, its GPU when one is assigned, and the
    tags above when ``run_dir`` is given."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if run_dir is not None:
        env[RUN_DIR_ENV] = str(Path(run_dir).resolve())
        env[STEP_ENV] = step_id or ""
        env[RUNNER_PID_ENV] = str(os.getpid())
    return env


def run_groups(run_dir: str | Path) -> dict[int, str]:
    """``{process group: step id}`` of the live processes started for ``run_dir`` (by any
    runner, alive or dead), found by the tags in their environment."""
    needle = f"{RUN_DIR_ENV}={Path(run_dir).resolve()}".encode()
    step_prefix = f"{STEP_ENV}=".encode()
    found: dict[int, str] = {}
    if not os.path.isdir("/proc/self"):
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        if needle not in env:
            continue
        stat = _proc_stat(int(entry.name))
        if stat is None or stat[0] == "Z":
            continue
        step = next((v[len(step_prefix):].decode(errors="replace") for v in env if v.startswith(step_prefix)), "")
        if step or stat[1] not in found:
            found[stat[1]] = step
    return found


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a pid from /proc, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields_ = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields_[0], int(fields_[2])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids of process group ``pgid``. Zombies are skipped: an orphan
    may wait for a reaper that a container's init never runs. Without /proc, the
    kernel's yes/no (zombies included) stands in as ``[pgid]`` or ``[]``."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def group_runs(pgid: int, needle: str) -> bool:
    """Whether a live member of the group has ``needle`` in its command line: a pid from
    an old ledger may since belong to an unrelated process."""
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if needle.encode() in fh.read():
                    return True
        except OSError:
            continue
    return False


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S / 2)
    return True


def stop_group(pgid: int, grace_s: float = STOP_GRACE_S, term_s: float = TERM_GRACE_S,
               gone: Callable[[], bool] | None = None) -> None:
    """SIGINT the group and give it ``grace_s`` to save and exit; then SIGTERM, then
    SIGKILL. Returns once ``gone()`` (default: no live member left)."""
    gone = gone or (lambda: not group_alive(pgid))
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, term_s)):
        signal_group(pgid, sig)
        if wait_until(gone, wait_s):
            return
    signal_group(pgid, signal.SIGKILL)
    wait_until(gone, 30.0)


class StepProcess:
    """A launched step: the launcher process and the process group it leads."""

    def __init__(self, argv: Sequence[str], log_path: str | Path, env: dict[str, str],
                 cwd: str | Path | None = None):
        self.argv = list(argv)
        log_path = Path(log_path)
        header = f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(self.argv)}\n".encode()
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(log_path, "ab", buffering=0)
            try:
                log.write(header)
            except OSError:
                log.close()
                raise
        except OSError as exc:  # a full disk is the user's to fix: one line, not "could not start"
            cause = write_error_of(exc)
            raise WriteError(log_path, cause) if cause is not None else exc
        with log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          env=env, cwd=cwd)
        self.pgid = self.popen.pid  # a new session's leader leads its own process group

    @property
    def pid(self) -> int:
        return self.popen.pid

    def returncode(self) -> int | None:
        return self.popen.poll()

    def gone(self) -> bool:
        """The launcher exited (and is reaped) and nothing of its group is left."""
        return self.popen.poll() is not None and not group_alive(self.pgid)

    def kill(self) -> None:
        signal_group(self.pgid, signal.SIGKILL)
        wait_until(self.gone, 30.0)


@dataclass
class StepExit:
    """How a followed step ended, from the runner's point of view."""

    returncode: int | None
    step_end: dict[str, Any] | None = None       # the trainer's step_end event, if any
    last_train: dict[str, Any] | None = None     # the last train event (its lr, loss)
    stopped_by_runner: bool = False
    events: int = 0
    log_offset: int = 0  # where this attempt's output starts in the step's log

    @property
    def status(self) -> str | None:
        return self.step_end.get("status") if self.step_end else None

    def record(self, event: dict[str, Any]) -> None:
        """Note what the runner needs of one followed event (local step or Slurm job)."""
        self.events += 1
        kind = event.get("event")
        if kind == "train":
            self.last_train = event
        elif kind == "step_end":
            self.step_end = event


@dataclass
class StopRequest:
    """Shared between the signal handler and the track threads: ``graceful`` asks the
    steps to stop and save; ``kill`` (a second Ctrl-C) asks for SIGKILL now."""

    graceful: threading.Event = field(default_factory=threading.Event)
    kill: threading.Event = field(default_factory=threading.Event)


def follow(process: StepProcess, events_file: str | Path, on_event: Callable[[dict[str, Any]], None],
           stop: StopRequest, offset: int = 0, grace_s: float = STOP_GRACE_S,
           term_s: float = TERM_GRACE_S) -> StepExit:
    """Feed the step's new events to ``on_event`` every POLL_S until its process group is
    gone; honour ``stop`` (SIGINT, then SIGTERM after ``grace_s``, then SIGKILL after
    ``term_s``). ``offset`` skips events of earlier attempts in the same file."""
    tail = EventTail(Path(events_file), offset=offset)
    result = StepExit(returncode=None)
    escalation: list[tuple[float, int]] = []  # (deadline, next signal)
    orphan_since: float | None = None

    def drain() -> None:
        for event in tail.poll():
            result.record(event)
            on_event(event)

    try:
        while True:
            drain()
            if process.gone():
                break
            now = time.monotonic()
            if stop.kill.is_set():
                process.kill()
                result.stopped_by_runner = True
                continue
            if stop.graceful.is_set() and not result.stopped_by_runner:
                result.stopped_by_runner = True
                signal_group(process.pgid, signal.SIGINT)
                escalation = [(now + grace_s, signal.SIGTERM), (now + grace_s + term_s, signal.SIGKILL)]
            if escalation and now >= escalation[0][0]:
                signal_group(process.pgid, escalation.pop(0)[1])
            if process.returncode() is not None and not escalation:
                # The launcher is gone but part of its group lives on (an orphaned trainer).
                orphan_since = orphan_since or now
                if now - orphan_since > ORPHAN_GRACE_S:
                    signal_group(process.pgid, signal.SIGINT)
                    escalation = [(now + grace_s, signal.SIGTERM), (now + grace_s + term_s, signal.SIGKILL)]
            time.sleep(POLL_S)
    except BaseException:  # never leave a training step running unattended
        stop_group(process.pgid, grace_s, term_s, gone=process.gone)
        raise
    drain()
    result.returncode = process.returncode()
    return result
