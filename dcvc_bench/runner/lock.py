"""One `run` per run folder: an exclusive ``fcntl.flock`` on ``runs/<name>/.lock``.

flock is released by the kernel when its owner dies, however it dies, so a lock left by a
killed runner is simply taken again: there is no stale-lock cleanup to get wrong. The
owner writes its pid and start time into the file so a refused second `run` can say who
holds the folder. Readers (`status`, the TUI) never flock: a reader's brief shared lock
could make a starting `run` be refused. They read the owner with :func:`lock_owner`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoints import WriteError, write_error_of
from dcvc_bench.errors import UserError

LOCK_FILE = ".lock"


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def describe_owner(owner: dict[str, Any]) -> str:
    """``pid 1234 (started 2024-05-01 12:00:00)``, with what is known of the owner."""
    pid = owner.get("pid")
    text = f"pid {pid}" if isinstance(pid, int) else "another process"
    started = owner.get("started")
    if isinstance(started, (int, float)):
        text += f" (started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))})"
    host = owner.get("host")
    if isinstance(host, str) and host != socket.gethostname():
        text += f" on {host}"
    return text


class RunLock:
    """Context manager holding the run folder's lock; refusal is a one-line UserError."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = describe_owner(_read_owner(self.path))
            raise UserError(f"{self.run_dir} is being run by {owner}; wait for it or stop it") from None
        owner = {"pid": os.getpid(), "started": time.time(), "host": socket.gethostname()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner).encode(), 0)
        except OSError as exc:  # a full disk: one line naming the file, the lock let go
            os.close(fd)
            cause = write_error_of(exc)
            raise WriteError(self.path, cause) if cause is not None else exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no owner left behind for readers to report
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_owner(run_dir: str | Path) -> dict[str, Any] | None:
    """The live owner of a run folder's lock as written by it, or None when no `run`
    holds it (checked by the owner's pid, without touching the lock)."""
    owner = _read_owner(Path(run_dir) / LOCK_FILE)
    pid = owner.get("pid")
    if not isinstance(pid, int) or owner.get("host", socket.gethostname()) != socket.gethostname():
        return None
    return owner if pid_alive(pid) else None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (a zombie counts as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
