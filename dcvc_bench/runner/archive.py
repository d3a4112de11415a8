"""The archive of a finished step: its ``final`` checkpoint kept as
``steps/<id>/final.pth``, written so that a kill at any moment leaves something the next
`run` can repair (see :mod:`~dcvc_bench.runner.repair`)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoints import (
    WriteError,
    content_meta,
    fsync_dir,
    read_meta,
    temp_path,
    write_error_of,
    write_sidecar,
)
from dcvc_bench.faults import fault


def archive_final(source: Path, dest: Path, extra: dict[str, Any]) -> None:
    """Keep a finished step's ``final`` checkpoint as ``steps/<id>/final.pth``: the next
    GOP step of the stage overwrites the shared checkpoint names. A hard link (a copy
    across file systems) under a temporary name, renamed into place, then the sidecar
    (the trainer's metadata, its sha256, plus ``extra``). ``source`` must match its
    sidecar by content. A kill in between leaves an archive whose sidecar does not
    match: the next `run` archives it again from ``source``."""
    meta = read_meta(source, verify=True)
    if meta is None:
        raise RuntimeError(f"{source} has no sidecar matching its content")
    fault("archive:before")
    tmp = temp_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, tmp)
        except OSError as exc:
            if write_error_of(exc) is not None:
                raise
            shutil.copy2(source, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        cause = write_error_of(exc)
        raise WriteError(dest, cause) if cause is not None else exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)
    fault("archive:linked")
    write_sidecar(dest, {**content_meta(meta), **extra})
