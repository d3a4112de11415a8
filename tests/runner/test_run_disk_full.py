"""A full disk, for real (issue 9): the run folder on a small tmpfs, filled with a filler
file. Needs root (``mount -t tmpfs``); skipped elsewhere (tests/test_checkpoints.py and
tests/runner/test_run.py inject a real refusal, EFBIG, without root).

1. Less free space than a checkpoint takes: the trainer's first save fails; it says so in
   one line; `run` does not retry, names the disk error, says what to do, exits 2.
2. Not a byte free: `run`'s own first write (the lock's owner, the ledger) fails: one
   line, exit 2, the ledger as it was.
3. The disk fills up while the step trains, so that not even the trainer's error line
   reaches the log: still no retry, exit 2.
4. Space freed: `run` completes; every checkpoint loads and matches its sidecar; no temp
   file is left anywhere.

And the race a CI run hit: the trainer's checkpoint temp file takes the last bytes just
as the runner mirrors an evaluation into the ledger. The step goes on; the trainer's own
error (naming the checkpoint) is what is recorded, and the ledger says failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_e2e_smoke import TINY, dcvc_bench_run, finish

from dcvc_bench.checkpoints import read_meta
from dcvc_bench.events import read_events
from dcvc_bench.runner.launcher import run_groups
from dcvc_bench.runner.ledger import Ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ONE_STEP = TINY.replace('name = "tiny"', 'name = "full"').replace("gops = [2, 3]", "gops = [2]").replace(
    "epochs = [4, 1]", "epochs = 1")
STEP = "l256-s1g2"


@pytest.fixture
def disk(tmp_path):
    """A 48 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    for pgid in run_groups(mount / "runs" / "full"):
        os.killpg(pgid, 9)
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """A filler file that leaves ``leave`` bytes free on the tmpfs."""
    filler = mount / f"filler-{time.monotonic_ns()}"
    free = shutil.disk_usage(mount).free - leave
    with open(filler, "wb") as fh:
        try:
            while free > 0:
                free -= fh.write(b"\0" * min(free, 1 << 20))
        except OSError:  # the last partial page
            pass
    return filler


def starts(events: Path) -> int:
    return sum(e["event"] == "step_start" for e in read_events(events)) if events.exists() else 0


def test_a_full_disk_stops_the_run_with_one_line_and_exit_2_and_freeing_it_lets_the_run_complete(tmp_path, disk):
    (tmp_path / "full.toml").write_text(ONE_STEP.replace('name = "full"', f'name = "full"\noutput_dir = "{disk}/runs"'))
    run_dir = disk / "runs" / "full"
    events = run_dir / "steps" / STEP / "events.jsonl"

    # 1. room for the clips, the ledger and the logs, not for a checkpoint (5.5 MB)
    filler = fill(disk, leave=3 << 20)
    first = dcvc_bench_run(tmp_path, "full.toml")
    assert finish(first, timeout=600) == 2
    out = first.log_path.read_text()
    record = Ledger.load(run_dir / "ledger.json").get(STEP)
    assert record.status == "failed" and record.attempts == 1 and starts(events) == 1  # no retry
    assert "the trainer could not write: " in record.message and "No space left on device (ENOSPC)" in record.message
    assert "_latest.pth" in record.message  # names the file
    assert "retrying" not in out and "Once the disk has room" in out
    assert not list(run_dir.rglob("*.pth")) and not list(run_dir.rglob(".*.tmp"))

    # 2. not a byte free: the runner's own write
    ledger_before = (run_dir / "ledger.json").read_bytes()
    filler2 = fill(disk, leave=0)
    second = dcvc_bench_run(tmp_path, "full.toml")
    assert finish(second, timeout=300) == 2
    last = second.log_path.read_text().strip().splitlines()[-1]
    assert last.startswith(f"error: {run_dir}/") and "No space left on device (ENOSPC)" in last, last
    assert "Traceback" not in second.log_path.read_text()
    assert (run_dir / "ledger.json").read_bytes() == ledger_before

    # 3. the disk fills up while the step trains
    filler2.unlink()
    third = dcvc_bench_run(tmp_path, "full.toml")
    deadline = time.monotonic() + 300
    while starts(events) < 2:
        assert third.poll() is None and time.monotonic() < deadline, "the step did not start"
        time.sleep(0.05)
    filler2 = fill(disk, leave=0)
    assert finish(third, timeout=600) == 2
    assert starts(events) == 2  # no retry
    assert "No space left on device" in third.log_path.read_text().strip().splitlines()[-1]

    # 4. space freed: the run completes
    filler.unlink()
    filler2.unlink()
    fourth = dcvc_bench_run(tmp_path, "full.toml")
    assert finish(fourth, timeout=600) == 0
    assert Ledger.load(run_dir / "ledger.json").get(STEP).status == "done"
    import torch

    files = [*run_dir.glob("checkpoints/*/*.pth"), *run_dir.glob("steps/*/final.pth")]
    assert files
    for pth in files:
        assert read_meta(pth, verify=True) is not None, pth
        torch.load(pth, map_location="cpu", weights_only=True)
    assert not list(run_dir.rglob(".*.tmp"))


#: A stand-in trainer that does what the real one did in a CI run (2026-12-02): its
#: checkpoint's temp file takes the last bytes of the disk just after an evaluation, so the
#: runner's ledger write for that evaluation is refused, then the trainer's own write fails
#: and it removes its temp file (space is back) and says which file, exit 2.
FILLS_THE_DISK = """\
import os, shutil, sys, time
from pathlib import Path
from dcvc_bench.events import EventWriter
argv = sys.argv[1:]
flag = lambda name: argv[argv.index(name) + 1]
events = EventWriter(flag("--events_file"))
events.emit("step_start", step="s1g2", stage=1, gop=2, epochs=2, start_epoch=0, lr=1e-4, resumed_from=None,
            lr_reset=False, **{"lambda": 2048.0})
temp = Path(flag("--checkpoint_dir")) / ".model_latest.pth.tmp"
temp.parent.mkdir(parents=True, exist_ok=True)
with open(temp, "wb") as fh:  # all but one page: the eval line still fits, a ledger does not
    try:
        left = shutil.disk_usage(temp.parent).free - 4096
        while left > 0:
            left -= fh.write(b"\\0" * min(left, 1 << 20))
    except OSError:
        pass
events.emit("eval", step="s1g2", epoch=1, psnr=30.0, bpp=0.5, ms_ssim=0.9, rd_loss=1.0, loss=1.0, i_frame={},
            p_frame={}, ema=False)
time.sleep(3)  # the runner reads the eval and tries to write its ledger: the disk is full
temp.unlink()
print(f"error: {temp.parent}/model_latest.pth: No space left on device (ENOSPC); "
      "free space on that disk, then run again", file=sys.stderr, flush=True)
sys.exit(2)
"""


def test_a_ledger_write_refused_while_the_trainer_fills_the_disk_does_not_hide_the_trainers_error(tmp_path, disk,
                                                                                                  fake_run):
    """The runner's progress write is refused (the trainer's temp file took the space):
    the step goes on, the trainer's own error is what is recorded and reported (it names
    the checkpoint), and the ledger says failed, not running."""
    import io
    import stat
    import sys

    from dcvc_bench.runner.display import PlainDisplay
    from dcvc_bench.runner.run import Runner

    fake = type(fake_run)(disk)  # tests/runner/conftest.py's FakeRun, its run folder on the small disk
    for folder in fake.paths.data_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "clip.mp4").write_bytes(b"")
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n{FILLS_THE_DISK}")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    out = io.StringIO()
    try:
        code = Runner(fake.cur, PlainDisplay(out), python=str(python), stop_grace_s=5).run()
    finally:
        print(out.getvalue(), *(p.read_text() for p in fake.paths.run_dir.glob("steps/*/stdout.log")))
    text = out.getvalue()
    assert code == 2, text
    assert "warning: the ledger's progress could not be written" in text and "No space left on device" in text
    first = fake.ledger().get("high-s1g2")
    assert first.status == "failed" and first.attempts == 1, (first, text)  # no retry, not left "running"
    assert first.message.startswith("the trainer could not write: ") and "model_latest.pth" in first.message
    assert first.last_eval and first.last_eval["psnr"] == 30.0  # the refused progress was written with it
