"""Checkpoint names and metadata sidecars. Pure Python: readable without torch.

Names follow the DCVC convention (shared/DESIGN.md)::

    model_dcvc_lambda_{lambda:.1f}_quality_{q}_stage_{s}_{kind}.pth

The names carry no GOP size, so the GOP steps of a stage share one ``latest``. To tell
them apart every checkpoint stores ``step_id`` (``s1g3``, ``s4g7-opt``) and ``gop_size``,
and the writer puts a JSON *sidecar* next to it (``<name>.pth.json``) with the same
metadata, so the runner, ``status`` and the TUI can read a checkpoint's state without
importing torch. The sidecar records the size, mtime and sha256 of the ``.pth`` it
describes. :func:`read_meta` rejects a sidecar whose size or mtime do not match its file
(a kill between the two atomic replaces: :func:`rebuild_sidecars` then rewrites it from
the ``.pth``); with ``verify=True`` it also checks the content against the sha256, which
is what the runner does before it trusts a checkpoint for a decision.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

from dcvc_bench.errors import UserError
from dcvc_bench.faults import fault

KINDS = ("latest", "best", "best_ema", "global_best", "final")
SIDECAR_SUFFIX = ".json"
#: The module that reads a checkpoint's sidecar fields from the checkpoint (compute plane).
META_READER = "dcvc_bench.checkpoint_meta"
#: Sidecar fields that describe the file rather than the training state.
FILE_KEYS = ("file_size", "file_mtime_ns", "sha256")


def checkpoint_name(lambda_value: float, quality_index: int, stage: int, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    return f"model_dcvc_lambda_{float(lambda_value):.1f}_quality_{int(quality_index)}_stage_{int(stage)}_{kind}.pth"


def checkpoint_path(checkpoint_dir: str | os.PathLike[str], lambda_value: float,
                    quality_index: int, stage: int, kind: str) -> Path:
    return Path(checkpoint_dir) / checkpoint_name(lambda_value, quality_index, stage, kind)


@dataclass(frozen=True)
class CheckpointName:
    """The parts of a checkpoint file name (see :func:`checkpoint_name`)."""

    lambda_value: float
    quality_index: int
    stage: int
    kind: str


_NAME_RE = re.compile(r"^model_dcvc_lambda_(?P<lmbda>[0-9.eE+-]+)_quality_(?P<q>\d+)"
                      r"_stage_(?P<stage>\d+)_(?P<kind>[a-z_]+)\.pth$")


def parse_checkpoint_name(name: str) -> CheckpointName | None:
    """The inverse of :func:`checkpoint_name`; None for any other file name."""
    match = _NAME_RE.match(name)
    if match is None or match["kind"] not in KINDS:
        return None
    try:
        lmbda = float(match["lmbda"])
    except ValueError:
        return None
    return CheckpointName(lmbda, int(match["q"]), int(match["stage"]), match["kind"])


IFRAME_KINDS = ("latest", "best", "final")
_IFRAME_RE = re.compile(r"^iframe_(?P<type>[a-z0-9]+)_(?P<tag>[a-z0-9]+)_(?P<kind>[a-z_]+)\.pth$")


def iframe_checkpoint_name(i_frame_type: str, tag: str, kind: str) -> str:
    """The checkpoint of an I-frame training step (issue 12): ``iframe_{type}_{tag}_{kind}.pth``,
    e.g. ``iframe_rvq_p4_latest.pth``. ``tag`` is the step's phase (``train``, ``e2e``,
    ``p2``, ``p4``...), so the steps of a progressive schedule keep apart in one folder."""
    if kind not in IFRAME_KINDS:
        raise ValueError(f"I-frame checkpoint kind must be one of {IFRAME_KINDS}, got {kind!r}")
    name = f"iframe_{i_frame_type}_{tag}_{kind}.pth"
    if _IFRAME_RE.match(name) is None:
        raise ValueError(f"I-frame type and tag must be lower-case letters and digits: {i_frame_type!r}, {tag!r}")
    return name


def iframe_checkpoint_path(checkpoint_dir: str | os.PathLike[str], i_frame_type: str, tag: str, kind: str) -> Path:
    return Path(checkpoint_dir) / iframe_checkpoint_name(i_frame_type, tag, kind)


def parse_iframe_checkpoint_name(name: str) -> tuple[str, str, str] | None:
    """``(type, tag, kind)`` of an I-frame step's checkpoint name; None for any other name."""
    match = _IFRAME_RE.match(name)
    if match is None or match["kind"] not in IFRAME_KINDS:
        return None
    return match["type"], match["tag"], match["kind"]


def phase_id(stage: int, gop: int, gop_opt: bool = False) -> str:
    """What the trainer writes into every checkpoint as ``step_id``: ``s{stage}g{gop}``,
    plus ``-opt`` for the stage-4 GOP-optimisation step. The names carry no GOP, so this
    is what tells the GOP steps of a stage apart."""
    return f"s{stage}g{gop}" + ("-opt" if gop_opt else "")


def sidecar_path(pth: str | os.PathLike[str]) -> Path:
    return Path(str(pth) + SIDECAR_SUFFIX)


def default_file_mode() -> int:
    """The mode a plain ``open()`` would give (0666 minus the umask); mkstemp uses 0600,
    which would hide run folders from colleagues on a shared machine."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the kernel says it
    (``/proc/self/status``, Linux 4.7+). Elsewhere the only way is to set it and put it
    back; that briefly gives other threads (the runner's track threads) umask 0, so it is
    done under a lock, and files those threads create meanwhile could be world-writable:
    the reason to prefer the kernel's answer."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        umask = os.umask(0o077)  # the strictest interim value, not 0
        os.umask(umask)
    return umask


_UMASK_LOCK = threading.Lock()


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write ``path`` atomically: yield a temp file in the same folder, then fsync it,
    give it the usual mode, replace ``path`` and fsync the folder. A reader sees the old
    file or the new one, never a torn one; an exception leaves the old file untouched.
    The one implementation behind every write that matters (checkpoints, ledger,
    sidecars, streams, reports). A full disk, a quota, a read-only file system or a
    permission refused (also when it surfaces wrapped, as torch.save's RuntimeError
    does) is raised as :class:`WriteError`: one line naming ``path``."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)
        cause = write_error_of(exc)
        if cause is not None and not isinstance(exc, WriteError):
            raise WriteError(path, cause) from exc
        raise
    fsync_dir(path.parent)


#: OS errors of a write that no retry fixes, and what the user can do about each.
WRITE_ERRNOS = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space or raise your disk quota",
    errno.EFBIG: "the file is larger than this system allows (ulimit -f)",
    errno.EROFS: "the file system is mounted read-only; remount it read-write or use another folder",
    errno.EACCES: "fix the permissions of that folder",
    errno.EPERM: "fix the permissions of that folder",
}


class WriteError(UserError, OSError):
    """A write refused by the file system (see :data:`WRITE_ERRNOS`): bad input from the
    user's machine, not a crash. Still an OSError, with the original ``errno``."""

    def __init__(self, path: str | os.PathLike[str], error: OSError):
        self.path = Path(path)
        name = errno.errorcode.get(error.errno or 0, str(error.errno))
        UserError.__init__(self, f"{self.path}: {error.strerror or error} ({name}); "
                                 f"{WRITE_ERRNOS.get(error.errno or 0, 'check that disk')}, then run again")
        self.errno = error.errno

    def __str__(self) -> str:
        return str(self.args[0])


def write_error_of(exc: BaseException | None) -> OSError | None:
    """The OSError of :data:`WRITE_ERRNOS` that ``exc`` is or was raised from, if any."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def is_write_error_text(line: str | None) -> bool:
    """Whether a one-line error (another process's ``error: ...``) is a write refused by
    the file system: it carries the OS's words for one of :data:`WRITE_ERRNOS`."""
    if not line:
        return False
    return any(os.strerror(code) in line for code in WRITE_ERRNOS)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_file(path) as fh:
        fh.write(data)


def json_safe(value: Any) -> Any:
    """A copy with non-finite floats as None: JSON has no NaN/inf, and every reader
    (the TUI, jq, another language) must be able to parse what we write."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def write_sidecar(pth: str | os.PathLike[str], meta: dict[str, Any]) -> None:
    """Describe the checkpoint file that now exists at ``pth`` (call after replacing it):
    ``meta`` plus the file's size, mtime and sha256."""
    fault(f"sidecar:{Path(pth).name}")
    digest = file_sha256(pth)
    st = os.stat(pth)
    atomic_write_json(sidecar_path(pth), {**content_meta(meta), "file_size": st.st_size,
                                          "file_mtime_ns": st.st_mtime_ns, "sha256": digest})


def content_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A sidecar's metadata without the fields that describe the file itself."""
    return {k: v for k, v in meta.items() if k not in FILE_KEYS}


def read_meta(pth: str | os.PathLike[str], verify: bool = False) -> dict[str, Any] | None:
    """Metadata of a checkpoint from its sidecar, or None when the checkpoint is missing,
    the sidecar is missing/unreadable, or the sidecar describes another version of it
    (size or mtime differ). ``verify``: also None unless the content has the sidecar's
    sha256 (a file changed in place, or a sidecar written before hashes were recorded).
    Fast by default (two stats and a small read), as `status` and the TUI need."""
    try:
        st = os.stat(pth)
        meta = json.loads(sidecar_path(pth).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("file_size") != st.st_size or meta.get("file_mtime_ns") != st.st_mtime_ns:
        return None
    if verify:
        try:
            if meta.get("sha256") != file_sha256(pth):
                return None
        except OSError:
            return None
    return meta


#: sha256 per file version: (device, inode, size, mtime, ctime). Any change to a file's
#: content changes its ctime, which no one can set back, so a hit is the same content.
_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file (hex), computed once per version of the file in a process."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        digest = _DIGESTS.get(key)
        if digest is None:
            h = hashlib.sha256()
            while chunk := fh.read(1 << 20):
                h.update(chunk)
            digest = _DIGESTS[key] = h.hexdigest()
    return digest


# ---------------------------------------------------------------- after a kill

#: The names :func:`atomic_file` (mkstemp) and :func:`temp_path` give a file being written.
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def temp_path(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary name next to ``path``, of the form :func:`remove_stray_temps` knows."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def remove_stray_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files that killed atomic writes left in ``folder`` (not in its
    sub-folders); returns them. Only for the owner of the folder while nothing else
    writes there: a live writer's temp file would go too."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
            with suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def rebuild_sidecars(paths: Sequence[str | os.PathLike[str]], timeout: float = 1800.0) -> dict[Path, str | None]:
    """Rewrite the sidecar of each checkpoint from the checkpoint itself (a kill between
    its ``.pth`` replace and its sidecar write left a missing or stale one). Returns, per
    path, None when rebuilt, else why not (it cannot be loaded).

    The checkpoints are loaded with ``weights_only=True`` by the compute plane's one
    loader in one child interpreter (:mod:`dcvc_bench.checkpoint_meta`), so the caller
    never imports torch: `status` and `plan` stay fast, the runner stays small, and a
    file that crashes the loader cannot take it down. That costs a torch start-up
    (seconds), paid only when something needs a repair."""
    todo = [Path(p) for p in paths]
    if not todo:
        return {}
    results: dict[Path, str | None] = {p: "the loader gave no answer" for p in todo}
    try:
        proc = subprocess.run([sys.executable, "-m", META_READER, *map(str, todo)],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {p: f"the loader failed ({type(exc).__name__})" for p in todo}
    for line in proc.stdout.splitlines():
        try:
            answer = json.loads(line)
            path = Path(answer["path"])
        except (ValueError, KeyError, TypeError):
            continue
        if path not in results:
            continue
        if isinstance(answer.get("meta"), dict):
            write_sidecar(path, answer["meta"])
            results[path] = None
        else:
            results[path] = str(answer.get("error") or "unreadable")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        for path, why in results.items():
            if why == "the loader gave no answer":
                results[path] = f"the loader failed: {last[:160]}"
    return results
