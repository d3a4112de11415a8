"""One `run` per run folder, also on shared storage (NFS) where ``flock`` may not work.

Two locks, belt and braces:

- An owner file, ``runs/<name>/.lock``: JSON with the owner's host, pid, start time, a
  heartbeat (unix seconds) and a random token. It is created with ``link()`` of a
  finished temp file, which fails when the name exists, atomically also over NFS, so of
  two `run`s starting at once on two hosts one wins. A thread of the owner rewrites it
  every :data:`HEARTBEAT_S` seconds (temp file + ``os.replace``: a reader sees the old
  record or the new one, never a torn one). An owner on this host is alive while its
  pid is; an owner on another host while its heartbeat is younger than
  :data:`STALE_AFTER_S` (the hosts' clocks are assumed to agree to well within that, as
  NTP keeps them). A stale owner's file is taken over, and the new owner is told whose.
- An exclusive ``fcntl.flock`` on ``runs/<name>/.lock.flock``, a file that is never
  replaced (a lock on the owner file would be lost at its first heartbeat). Where flock
  works it is released by the kernel however its holder dies, and it settles a race
  between two starts on one host at once; it also tells a pid reused by an unrelated
  process from a live owner. Where it does not (``ENOLCK`` on an NFS mount without a lock
  manager) the owner file alone decides.

Readers (`status`, the TUI) never lock: they read the owner with :func:`lock_owner`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from dcvc_bench.checkpoints import WriteError, atomic_file, write_error_of
from dcvc_bench.errors import UserError

LOCK_FILE = ".lock"
FLOCK_FILE = ".lock.flock"
#: How often the owner rewrites its heartbeat, and how old a heartbeat of another host
#: may be before its lock counts as left behind by a dead (or cut-off) runner.
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0
RUN, SKIP = "run", "skip"  # what the owner holds the folder for (a skip holds it for a moment)


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def describe_owner(owner: dict[str, Any]) -> str:
    """``pid 1234 (started 2024-05-01 12:00:00) on host``, with what is known of the owner."""
    pid = owner.get("pid")
    text = f"pid {pid}" if isinstance(pid, int) else "another process"
    if owner.get("purpose") == SKIP:
        text = f"another process (`dcvc-bench skip`, {text})"
    started = owner.get("started")
    if isinstance(started, (int, float)):
        text += f" (started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))})"
    host = owner.get("host")
    if isinstance(host, str) and host:
        text += f" on {host}"
    beat = owner.get("heartbeat")
    if isinstance(beat, (int, float)) and isinstance(host, str) and host != socket.gethostname():
        text += f", last heartbeat {max(0.0, time.time() - beat):.0f} s ago"
    return text


def _is_owner(owner: dict[str, Any]) -> bool:
    return isinstance(owner.get("pid"), int) or isinstance(owner.get("heartbeat"), (int, float))


def owner_alive(owner: dict[str, Any], now: float | None = None, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the owner record is held by a live process: by its pid on this host (a
    record without a host is taken as this host's, as older versions wrote none), by its
    heartbeat's age on another (a heartbeat from the future counts as fresh)."""
    if not _is_owner(owner):
        return False
    host = owner.get("host", socket.gethostname())
    if host == socket.gethostname():
        return pid_alive(owner.get("pid") if isinstance(owner.get("pid"), int) else None)
    beat = owner.get("heartbeat")
    if not isinstance(beat, (int, float)):
        return False
    return (time.time() if now is None else now) - beat < stale_after_s


def _heartbeat_stale(owner: dict[str, Any], stale_after_s: float) -> bool:
    beat = owner.get("heartbeat")
    return isinstance(beat, (int, float)) and time.time() - beat >= stale_after_s


class RunLock:
    """Context manager holding the run folder's lock; refusal is a one-line UserError.

    After :meth:`acquire`, :attr:`notice` is a line to show when a stale lock was taken
    over (whose, and how old its heartbeat was), else None. :attr:`lost` is set when
    another process replaced the owner file meanwhile (it judged ours stale)."""

    def __init__(self, run_dir: str | Path, purpose: str = RUN, heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_AFTER_S):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.purpose = purpose
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.notice: str | None = None
        self.lost: dict[str, Any] | None = None
        self._fd: int | None = None
        self._record: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- acquiring ----------------------------------------------------------------------
    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        flocked = self._flock()
        try:
            self._claim(flocked)
        except BaseException:
            self._unflock()
            raise
        if self.purpose == RUN:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="run-lock heartbeat", daemon=True)
            self._thread.start()

    def _flock(self) -> bool:
        """Take the flock; False where the file system has no working flock."""
        fd = os.open(self.run_dir / FLOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._refuse(_read_owner(self.path))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise
        self._fd = fd
        return True

    def _refuse(self, owner: dict[str, Any]) -> None:
        who = describe_owner(owner) if _is_owner(owner) else "another process"
        raise UserError(f"{self.run_dir} is being run by {who}; wait for it or stop it")

    def _claim(self, flocked: bool) -> None:
        now = time.time()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": now, "heartbeat": now,
                  "token": uuid.uuid4().hex, "purpose": self.purpose}
        for _ in range(8):  # each pass either claims, refuses, or removes a stale record
            if self._link(record):
                self._record = record
                return
            owner = _read_owner(self.path)
            if _is_owner(owner) and owner_alive(owner, stale_after_s=self.stale_after_s):
                # Held on this host by a live pid, unless that pid is a reused one: then
                # we hold the flock (a real owner would) and its heartbeat stopped long ago.
                reused = (flocked and owner.get("host", socket.gethostname()) == socket.gethostname()
                          and _heartbeat_stale(owner, self.stale_after_s))
                if not reused:
                    self._refuse(owner)
            if self._remove_if_unchanged(owner) and _is_owner(owner):
                self.notice = f"took over the stale lock of {self.run_dir} left by {describe_owner(owner)}"
        raise UserError(f"{self.run_dir}: could not take its lock ({self.path} keeps changing); try again")

    def _link(self, record: dict[str, Any]) -> bool:
        """Create the owner file holding ``record`` if no file has the name (atomic)."""
        tmp = self.run_dir / f".lock.{record['token']}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(json.dumps(record).encode())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            except OSError:
                if os.stat(tmp).st_nlink != 2:  # NFS: a lost reply of a link that was made
                    raise
            return True
        except OSError as exc:  # a full disk: one line naming the file
            cause = write_error_of(exc)
            raise WriteError(self.path, cause) if cause is not None else exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _remove_if_unchanged(self, seen: dict[str, Any]) -> bool:
        """Remove the owner file if it still holds ``seen`` (judged stale or empty):
        moved aside first (atomic), so a record another process wrote meanwhile is put
        back instead of deleted."""
        aside = self.run_dir / f".lock.{uuid.uuid4().hex}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        moved = _read_owner(aside)
        if moved != seen:
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # fails if yet another owner is there: it stays
        with contextlib.suppress(OSError):
            os.unlink(aside)
        return moved == seen

    # -- holding ------------------------------------------------------------------------
    def _beat(self) -> None:
        """Rewrite the heartbeat every ``heartbeat_s``, as long as the file is ours."""
        while not self._stop.wait(self.heartbeat_s):
            record = self._record
            if record is None:
                return
            owner = _read_owner(self.path)
            if owner.get("token") != record["token"]:
                self.lost = owner
                print(f"warning: {self.path} was taken over by {describe_owner(owner)} (it took this "
                      "run's lock for stale); stop one of the two runs", file=sys.stderr, flush=True)
                return
            record = {**record, "heartbeat": time.time()}
            try:
                with atomic_file(self.path) as fh:
                    fh.write(json.dumps(record).encode())
            except (OSError, WriteError):
                continue  # a full disk for a moment: the next beat tries again
            self._record = record

    def heartbeat(self) -> None:
        """Rewrite the heartbeat now (what the thread does every ``heartbeat_s``)."""
        record = self._record
        if record is not None:
            record = {**record, "heartbeat": time.time()}
            with atomic_file(self.path) as fh:
                fh.write(json.dumps(record).encode())
            self._record = record

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        record, self._record = self._record, None
        if record is not None and _read_owner(self.path).get("token") == record["token"]:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # no owner left behind for readers to report
        self._unflock()

    def _unflock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def ledger_lock(run_dir: str | Path) -> Iterator[None]:
    """The run folder's lock held for a moment while the ledger is changed outside a
    `run` (`dcvc-bench skip`), so that no `run` starts meanwhile; readers do not take it
    for a run (:func:`lock_owner` ignores it)."""
    lock = RunLock(run_dir, purpose=SKIP)
    try:
        lock.acquire()
    except UserError:
        raise UserError(f"{run_dir} is locked by another process; try again in a moment") from None
    try:
        yield
    finally:
        lock.release()


def lock_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """The live `run` holding a run folder, on this host or another (by its heartbeat),
    or None (checked without touching the lock)."""
    owner = _read_owner(Path(run_dir) / LOCK_FILE)
    if owner.get("purpose", RUN) != RUN:
        return None
    return owner if owner_alive(owner) else None


def lock_owner(run_dir: str | Path) -> dict[str, Any] | None:
    """The live `run` of this host holding a run folder, as written by it (its pid can be
    signalled), or None (checked by the owner's pid, without touching the lock)."""
    owner = lock_holder(run_dir)
    if owner is None or owner.get("host", socket.gethostname()) != socket.gethostname():
        return None
    return owner


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
