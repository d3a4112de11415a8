"""Sidecars and the one atomic writer (dcvc_bench/checkpoints.py): a sidecar records its
file's sha256 and a verified read checks it; a sidecar left stale by a kill is rebuilt
from the .pth (in a child process: this process never imports torch for it); the temp
files of killed writes are found and removed, nothing else; a write the file system
refuses is one line naming the file, the old file intact, no temp file left."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import subprocess
import sys

import pytest

from dcvc_bench.checkpoints import (
    WriteError,
    atomic_file,
    atomic_write_bytes,
    is_write_error_text,
    read_meta,
    rebuild_sidecars,
    remove_stray_temps,
    sidecar_path,
    temp_path,
    write_sidecar,
)
from dcvc_bench.errors import UserError


def test_sidecar_records_the_sha256_and_a_verified_read_checks_the_content(tmp_path):
    pth = tmp_path / "x.pth"
    atomic_write_bytes(pth, b"weights")
    write_sidecar(pth, {"step_id": "s1g2"})
    meta = json.loads(sidecar_path(pth).read_text())
    assert meta["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert read_meta(pth, verify=True)["step_id"] == "s1g2"
    st = pth.stat()
    with open(pth, "r+b") as fh:
        fh.write(b"W")  # same size, changed content
    os.utime(pth, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back
    assert read_meta(pth) is not None  # the fast check (status, TUI) cannot tell
    assert read_meta(pth, verify=True) is None


def test_a_verified_read_refuses_a_sidecar_without_a_hash(tmp_path):
    pth = tmp_path / "x.pth"
    atomic_write_bytes(pth, b"weights")
    st = pth.stat()  # what the sidecars of earlier versions held
    sidecar_path(pth).write_text(json.dumps({"step_id": "s1g2", "file_size": st.st_size,
                                             "file_mtime_ns": st.st_mtime_ns}))
    assert read_meta(pth)["step_id"] == "s1g2"
    assert read_meta(pth, verify=True) is None


def test_a_replaced_pth_makes_its_sidecar_stale(tmp_path):
    pth = tmp_path / "x.pth"
    atomic_write_bytes(pth, b"epoch 1")
    write_sidecar(pth, {"epoch": 1})
    atomic_write_bytes(pth, b"epoch 2")  # killed before the sidecar write
    assert read_meta(pth) is None


KILLED_WRITER = """\
import os, sys
from dcvc_bench.checkpoints import atomic_file
with atomic_file(sys.argv[1]) as fh:
    fh.write(b"half")
    fh.flush()
    os._exit(9)  # as SIGKILL: no cleanup runs
"""


def test_temp_files_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    for target in ("ledger.json", "model_latest.pth"):
        subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path / target)])
    temp_path(tmp_path / "final.pth").write_bytes(b"a link of a killed archive")
    keep = ["notes.tmp", ".hidden", ".x.tmp", ".ledger.json.too-long-suffix.tmp", "ledger.json.bak"]
    for name in keep:
        (tmp_path / name).write_bytes(b"user's")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == len(keep) + 4  # three temp files, one folder
    removed = remove_stray_temps(tmp_path)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, ".dir.abcdefgh.tmp"])


def _state(step_id: str = "s1g3", epoch: int = 2) -> dict:
    import torch

    return {"epoch": epoch, "epochs": 2, "loss": 1.5, "best_loss": 1.25, "global_best_loss": float("inf"),
            "stage": 1, "gop_size": 3, "step_id": step_id, "lambda_value": 256.0, "quality_index": 1,
            "finished": False, "kind": "latest", "lr": 1e-4, "model_preset": "tiny",
            "i_frame": {"type": "opencv", "quality": 90},
            "model_state_dict": {"w": torch.ones(3)}, "rng_state": {"torch": torch.get_rng_state()}}


def test_a_stale_sidecar_is_rebuilt_from_the_checkpoint_and_an_unloadable_one_is_said(tmp_path):
    import torch

    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    with atomic_file(good) as fh:
        torch.save(_state(), fh)
    sidecar_path(good).write_text(json.dumps({"step_id": "s1g2", "epoch": 1}))  # an older version's
    atomic_write_bytes(bad, b"truncated")
    results = rebuild_sidecars([good, bad])
    assert results[good] is None and "is not a checkpoint" in results[bad]  # b"truncated" is no torch file
    meta = read_meta(good, verify=True)
    assert (meta["step_id"], meta["epoch"], meta["i_frame"]["type"]) == ("s1g3", 2, "opencv")
    assert meta["global_best_loss"] is None  # JSON has no inf
    assert not sidecar_path(bad).exists()


def test_rebuild_fields_are_the_writers(tmp_path):
    """A rebuilt sidecar says what the checkpoint writer's own sidecar says."""
    import torch

    from dcvc_bench.checkpoint_meta import META_KEYS

    pth = tmp_path / "x.pth"
    state = _state()
    with atomic_file(pth) as fh:
        torch.save(state, fh)
    write_sidecar(pth, {k: state.get(k) for k in META_KEYS})  # as the writer does
    written = json.loads(sidecar_path(pth).read_text())
    sidecar_path(pth).unlink()
    assert rebuild_sidecars([pth]) == {pth: None}
    rebuilt = json.loads(sidecar_path(pth).read_text())
    assert {k: v for k, v in rebuilt.items() if k != "global_best_loss"} == \
        {k: v for k, v in written.items() if k != "global_best_loss"}


def test_a_write_error_wrapped_by_the_writer_is_one_line_naming_the_file(tmp_path):
    """torch.save reports a full disk as RuntimeError('unexpected pos ...') raised from the
    OSError; atomic_file still names the disk error and the file."""
    pth = tmp_path / "model_latest.pth"
    atomic_write_bytes(pth, b"previous epoch")
    with pytest.raises(WriteError) as caught:
        with atomic_file(pth) as fh:
            fh.write(b"new")
            try:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos") from None
    exc = caught.value
    assert isinstance(exc, UserError) and isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    assert str(exc).startswith(f"{pth}: No space left on device (ENOSPC); free space on that disk")
    assert "\n" not in str(exc) and is_write_error_text(str(exc))
    assert pth.read_bytes() == b"previous epoch" and sorted(tmp_path.iterdir()) == [pth]


FSIZE_WRITER = """\
import sys
from dcvc_bench.checkpoints import atomic_write_bytes
from dcvc_bench.errors import UserError
try:
    atomic_write_bytes(sys.argv[1], b"x" * 100_000)
except UserError as exc:
    print(f"error: {exc}")
"""


def test_a_write_the_os_refuses_is_a_write_error_and_the_old_file_stays(tmp_path):
    """A real refusal at the OS boundary without root: a file-size limit (EFBIG)."""
    pth = tmp_path / "ledger.json"
    pth.write_bytes(b"old ledger")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = subprocess.run([sys.executable, "-c", FSIZE_WRITER, str(pth)], capture_output=True, text=True,
                         preexec_fn=limit, timeout=60)
    assert out.stdout.strip() == (f"error: {pth}: File too large (EFBIG); the file is larger than this "
                                  "system allows (ulimit -f), then run again")
    assert pth.read_bytes() == b"old ledger" and sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]


def test_iframe_checkpoint_names_round_trip_and_never_parse_as_pframe_names():
    from dcvc_bench.checkpoints import (iframe_checkpoint_name, parse_checkpoint_name,
                                        parse_iframe_checkpoint_name)
    for kind in ("latest", "best", "final"):
        name = iframe_checkpoint_name("rvq", "p4", kind)
        assert parse_iframe_checkpoint_name(name) == ("rvq", "p4", kind)
        assert parse_checkpoint_name(name) is None
    assert parse_iframe_checkpoint_name("model_dcvc_lambda_2048.0_quality_4_stage_1_latest.pth") is None
    with pytest.raises(ValueError):
        iframe_checkpoint_name("rvq", "p4", "global_best")
    with pytest.raises(ValueError):
        iframe_checkpoint_name("rvq", "../x", "latest")


def test_atomic_files_get_the_umask_mode_without_the_umask_ever_changing(tmp_path, monkeypatch):
    """The mode comes from the umask; reading it must not set it, even for a moment: the
    runner's track threads create files meanwhile, and under umask 0 they would be
    world-writable."""
    import os
    import stat

    from dcvc_bench.checkpoints import atomic_file

    old = os.umask(0o027)
    try:
        def no_umask_change(mask):
            raise AssertionError(f"os.umask({mask:o}) called: every thread would have that umask meanwhile")

        monkeypatch.setattr(os, "umask", no_umask_change)
        with atomic_file(tmp_path / "ledger.json") as f:
            f.write(b"{}")
        assert stat.S_IMODE((tmp_path / "ledger.json").stat().st_mode) == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)
