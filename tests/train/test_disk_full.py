"""A write that fails for lack of space or permission (ENOSPC, EDQUOT, EROFS, EACCES):
one line naming the file, exit 2, no traceback, the previous checkpoint intact, no temp
file left; once the space is back, the same resume completes."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dcvc_bench.checkpoint_io import load_checkpoint

from train_helpers import ckpt, events_of, run_in_process, run_subprocess, step_argv


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, synthetic_clips):
    """A step that finished epoch 1 of 2 (its latest), as a folder to copy."""
    root = tmp_path_factory.mktemp("one_epoch")
    argv = step_argv(synthetic_clips, root / "ck", root / "e.jsonl", stage=1, epochs=1, steps=2)
    assert run_in_process(argv) == 0
    for kind in ("final", "best"):  # keep only what an interrupted step would have
        ckpt(root / "ck", 1, kind).unlink()
        Path(str(ckpt(root / "ck", 1, kind)) + ".json").unlink()
    return root / "ck"


def _resume_argv(data: Path, ck: Path, events: Path) -> list[str]:
    return step_argv(data, ck, events, stage=1, epochs=2, steps=2,
                     extra=["--resume", str(ckpt(ck, 1, "latest"))])


@pytest.mark.parametrize("code, target", [(errno.ENOSPC, "checkpoint"), (errno.EDQUOT, "checkpoint"),
                                          (errno.EROFS, "checkpoint"), (errno.EACCES, "checkpoint"),
                                          (errno.ENOSPC, "events")])
def test_an_injected_write_error_is_one_line_exit_2_and_keeps_the_checkpoint(
        one_epoch, synthetic_clips, tmp_path, monkeypatch, capsys, code, target):
    ck = tmp_path / "ck"
    shutil.copytree(one_epoch, ck)
    events = tmp_path / "e.jsonl"
    latest = ckpt(ck, 1, "latest")
    before = _digest(latest)
    argv = _resume_argv(synthetic_clips, ck, events)
    fail_in = str(ck) if target == "checkpoint" else str(events)
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the OS refuses to make the data durable
        where = os.readlink(f"/proc/self/fd/{fd}")
        armed = target == "checkpoint" or events_of(events, "train")  # events: after the first ones
        if armed and where.startswith(fail_in) and not os.path.isdir(where):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert run_in_process(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    monkeypatch.undo()
    assert len(err) == 1, err
    named = latest if target == "checkpoint" else events
    assert err[0].startswith(f"error: {named}: {os.strerror(code)} ({errno.errorcode[code]}); "), err[0]
    assert err[0].endswith(", then run again")
    assert ("free space" in err[0]) == (code in (errno.ENOSPC, errno.EDQUOT))
    assert _digest(latest) == before and load_checkpoint(latest)["epoch"] == 1
    assert _leftovers(ck) == []
    if target == "checkpoint":
        end = events_of(events, "step_end")[-1]
        assert end["status"] == "failed" and end["message"] == err[0][len("error: "):]

    # The space is back: the same command completes.
    assert run_in_process(argv) == 0
    assert load_checkpoint(ckpt(ck, 1, "final"))["epoch"] == 2


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 24 MiB filesystem (tmpfs), where this test may mount one (root on Linux)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_a_full_disk_is_one_line_exit_2_and_a_resume_completes_once_space_is_freed(
        one_epoch, synthetic_clips, tmp_path, small_tmpfs):
    ck = small_tmpfs / "ck"
    shutil.copytree(one_epoch, ck)
    latest = ckpt(ck, 1, "latest")
    before = _digest(latest)
    # Fill the disk so that less than one more checkpoint fits.
    free = shutil.disk_usage(small_tmpfs).free
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * max(0, free - latest.stat().st_size // 2))
    events = tmp_path / "e.jsonl"
    argv = _resume_argv(synthetic_clips, ck, events)

    res = run_subprocess(argv, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: {latest}: No space left on device (ENOSPC); free space on that disk, "
                     "then run again"], lines
    assert _digest(latest) == before and load_checkpoint(latest)["epoch"] == 1
    assert _leftovers(ck) == []
    assert events_of(events, "step_end")[-1]["status"] == "failed"

    filler.unlink()
    res = run_subprocess(argv, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_checkpoint(ckpt(ck, 1, "final"))["epoch"] == 2
