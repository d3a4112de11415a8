"""Checkpoint names and metadata sidecars. Pure Python: readable without torch.

Names follow the DCVC convention (shared/DESIGN.md)::

    model_dcvc_lambda_{lambda:.1f}_quality_{q}_stage_{s}_{kind}.pth

The names carry no GOP size, so the GOP steps of a stage share one ``latest``. To tell
them apart every checkpoint stores ``step_id`` (``s1g3``, ``s4g7-opt``) and ``gop_size``,
and the writer puts a JSON *sidecar* next to it (``<name>.pth.json``) with the same
metadata, so the runner, ``status`` and the TUI can read a checkpoint's state without
importing torch. The sidecar records the size and mtime of the ``.pth`` it describes;
:func:`read_meta` rejects a sidecar that does not match its file (a crash between the
two atomic replaces), and callers then fall back to loading the checkpoint itself.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

KINDS = ("latest", "best", "best_ema", "global_best", "final")
SIDECAR_SUFFIX = ".json"


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
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write ``path`` atomically: yield a temp file in the same folder, then fsync it,
    give it the usual mode, replace ``path`` and fsync the folder. A reader sees the old
    file or the new one, never a torn one; an exception leaves the old file untouched.
    The one implementation behind every write that matters (checkpoints, ledger,
    sidecars, streams, reports)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


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
    """Describe the checkpoint file that now exists at ``pth`` (call after replacing it)."""
    st = os.stat(pth)
    atomic_write_json(sidecar_path(pth), {**meta, "file_size": st.st_size,
                                          "file_mtime_ns": st.st_mtime_ns})


def read_meta(pth: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Metadata of a checkpoint from its sidecar, or None when the checkpoint is missing,
    the sidecar is missing/unreadable, or the sidecar describes another version of it."""
    try:
        st = os.stat(pth)
        meta = json.loads(sidecar_path(pth).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("file_size") != st.st_size or meta.get("file_mtime_ns") != st.st_mtime_ns:
        return None
    return meta
