"""The run loop without the trainer: the frozen curriculum, the archive of a finished
step, synthetic data written whole, finished work recorded and skipped, stale history
reset after an edit, a leftover trainer stopped, and the failure policies. Launches use a
stand-in interpreter: ``/bin/false`` (a step that cannot start), a recorder of how steps
were started (GPU per track), and a script that writes the event contract's ``diverged``
(fast, and it pins the roll-back arithmetic). The real trainer runs in test_e2e_smoke.py,
including a real divergence (λ = 1e39)."""

from __future__ import annotations

import io
import json
import os
import resource
import stat
import subprocess
import sys
import time

import pytest

from dcvc_bench.checkpoints import atomic_file, atomic_write_bytes, read_meta, temp_path, write_sidecar
from dcvc_bench.curriculum import StartKind, parse_curriculum
from dcvc_bench.runner.display import PlainDisplay
from dcvc_bench.runner.archive import archive_final
from dcvc_bench.runner.commands import status_command
from dcvc_bench.runner.launcher import child_env, run_groups
from dcvc_bench.runner.outcome import last_error_line
from dcvc_bench.runner.folder import PREVIOUS_CURRICULUM, SYNTH_RECIPE, freeze_curriculum, prepare_synthetic_data
from dcvc_bench.runner.run import EXIT_FAILED, EXIT_OK, Runner

pytestmark = pytest.mark.timeout(60)


def run(fake_run, python: str = "/bin/false") -> tuple[int, str]:
    out = io.StringIO()
    code = Runner(fake_run.cur, PlainDisplay(out), python=python, stop_grace_s=5).run()
    return code, out.getvalue()


def test_frozen_curriculum_is_replaced_on_edit_and_the_previous_one_kept(tmp_path):
    assert freeze_curriculum(tmp_path, "a = 1\n") is False
    assert freeze_curriculum(tmp_path, "a = 1\n") is False
    assert not (tmp_path / PREVIOUS_CURRICULUM).exists()
    assert freeze_curriculum(tmp_path, "a = 2\n") is True
    assert (tmp_path / "curriculum.toml").read_text() == "a = 2\n"
    assert (tmp_path / PREVIOUS_CURRICULUM).read_text() == "a = 1\n"


def test_archived_final_survives_the_next_step_replacing_the_stage_final(tmp_path):
    final = tmp_path / "ckpt" / "final.pth"
    atomic_write_bytes(final, b"step one")
    write_sidecar(final, {"step_id": "s1g2", "finished": True})
    archive = tmp_path / "steps" / "l-s1g2" / "final.pth"
    archive_final(final, archive, {"config_hash": "h", "started_at": 1.5})
    assert os.stat(archive).st_ino == os.stat(final).st_ino  # a hard link, no copy
    atomic_write_bytes(final, b"step two, longer")  # the trainer's os.replace
    meta = read_meta(archive)
    assert archive.read_bytes() == b"step one"
    assert (meta["step_id"], meta["config_hash"], meta["started_at"]) == ("s1g2", "h", 1.5)


def test_synthetic_clips_are_written_once_and_rewritten_when_the_recipe_changes(fake_run):
    display = PlainDisplay(io.StringIO())
    train, val = fake_run.paths.data_dirs
    leftover = train.parent / ".train.tmp-killed"
    leftover.mkdir(parents=True)
    prepare_synthetic_data(fake_run.cur, fake_run.paths, display)
    clips = sorted(train.glob("*.mp4"))
    assert [c.name for c in clips] == ["synth_000.mp4"] and list(val.glob("*.mp4"))
    assert not leftover.exists()
    stamp = clips[0].stat().st_mtime_ns
    prepare_synthetic_data(fake_run.cur, fake_run.paths, display)
    assert clips[0].stat().st_mtime_ns == stamp
    text = fake_run.text().replace("videos = 1", "videos = 2")
    prepare_synthetic_data(parse_curriculum(text), fake_run.paths, display)
    assert len(list(train.glob("*.mp4"))) == 2
    assert '"videos": 2' in (train / SYNTH_RECIPE).read_text()
    assert sorted(p.name for p in train.parent.iterdir()) == ["train", "val"]


def test_clips_put_in_the_data_folder_by_hand_are_kept(fake_run):
    train, val = fake_run.paths.data_dirs
    for folder in (train, val):
        folder.mkdir(parents=True)
        (folder / "mine.mp4").write_bytes(b"not generated here")
    prepare_synthetic_data(fake_run.cur, fake_run.paths, PlainDisplay(io.StringIO()))
    assert [p.name for p in train.iterdir()] == ["mine.mp4"]


def _with_data(fake_run) -> None:
    """Clips in place so a run does not spend time generating them."""
    for folder in fake_run.paths.data_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "clip.mp4").write_bytes(b"")


def test_run_of_a_finished_curriculum_launches_nothing(fake_run):
    _with_data(fake_run)
    fake_run.finish_all()
    code, out = run(fake_run)
    assert code == EXIT_OK
    assert "8 steps, 8 done, 0 to run" in out and "all 8 steps done (0 run now, 8 done before)" in out


def test_step_finished_while_the_runner_was_killed_is_archived_and_recorded(fake_run):
    _with_data(fake_run)
    fake_run.finish_all()
    archive = fake_run.paths.final_checkpoint("low-s2g3")
    archive.unlink()
    fake_run.record("low-s2g3", status="running", pid=999999, started_at=time.time() - 5)
    fake_run.checkpoint("low-s2g3", "final", epoch=1, finished=True)
    code, out = run(fake_run)
    assert code == EXIT_OK, out
    assert read_meta(archive)["step_id"] == "s2g3"
    record = fake_run.ledger().get("low-s2g3")
    assert record.status == "done" and record.pid is None


def test_edit_resets_stale_history_and_a_crashing_step_is_retried_then_reported(fake_run):
    _with_data(fake_run)
    fake_run.freeze()
    fake_run.finish_all()
    before = fake_run.cur.source_text
    fake_run.use(low_lambda=512)
    code, out = run(fake_run)
    assert code == EXIT_FAILED
    assert (fake_run.paths.run_dir / PREVIOUS_CURRICULUM).read_text() == before
    ledger = fake_run.ledger()
    assert all(ledger.get(f"high-{p}").status == "done" for p in ("s1g2", "s1g3", "s2g2", "s2g3"))
    first = ledger.get("low-s1g2")
    assert first.status == "failed" and first.attempts == 3  # 1 + failure.retries (2)
    assert "before writing any event" in first.message and "gave up after 2 retries" in first.message
    later = ledger.get("low-s2g3")
    assert later.status == "pending" and later.message == "config changed (lambda 1024→512)"
    assert "retrying from its latest checkpoint (1 of 2)" in out
    assert "low-s1g2 failed:" in out and "run `dcvc-bench run` again" in out


def test_last_error_line_finds_the_trainers_one_line_error(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("starting\nerror: --resume: file x does not exist; check the path\nTraceback ...\n")
    assert last_error_line(log) == "error: --resume: file x does not exist; check the path"
    assert last_error_line(tmp_path / "missing.log") is None


def test_a_trainer_that_outlived_its_runner_is_asked_to_save_and_stop(fake_run):
    _with_data(fake_run)
    fake_run.finish_all()
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGINT, lambda *_: sys.exit(130))\nprint('up', flush=True)\ntime.sleep(60)",
         "-m", "dcvc_bench.train"],  # what the runner looks for in the group's command lines
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert orphan.stdout.readline().strip() == "up"
        fake_run.record("low-s2g3", status="running", pid=orphan.pid, started_at=time.time())
        code, out = run(fake_run)
        assert orphan.wait(timeout=5) == 130  # SIGINT: the trainer's graceful stop
    finally:
        orphan.kill()
        orphan.wait()
    assert f"low-s2g3: its trainer (process group {orphan.pid}) outlived the runner" in out
    assert code == EXIT_FAILED  # then re-run: /bin/false cannot start it


RECORDER = """\
import json, os, sys, time
from pathlib import Path
folder = Path(os.environ["RECORD_DIR"])
gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
argv = sys.argv[1:]
(folder / f"gpu{gpu}-{os.getpid()}.json").write_text(json.dumps({"gpu": gpu, "argv": argv}))
deadline = time.time() + 10  # wait to meet a step of another track on another GPU
while time.time() < deadline and len({p.name.split("-")[0] for p in folder.glob("gpu*.json")}) < 2:
    time.sleep(0.05)
sys.exit(1)
"""


def test_gpus_run_tracks_in_parallel_one_gpu_each(fake_run, tmp_path, monkeypatch):
    text = fake_run.text().replace('device = "cpu"', 'device = "auto"') + "\n[failure]\nretries = 0\n"
    fake_run.cur = parse_curriculum(text)
    _with_data(fake_run)
    records = tmp_path / "records"
    records.mkdir()
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n{RECORDER}")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("RECORD_DIR", str(records))
    t0 = time.monotonic()
    code = Runner(fake_run.cur, PlainDisplay(io.StringIO()), gpus=[0, 1], python=str(python)).run()
    assert code == EXIT_FAILED and time.monotonic() - t0 < 9  # the two tracks met: they ran at once
    launched = [json.loads(p.read_text()) for p in records.iterdir()]
    pairs = set()
    for record in launched:
        argv = record["argv"]
        track = argv[argv.index("--checkpoint_dir") + 1].rsplit("/", 1)[-1]
        assert argv[argv.index("--gpu_ids") + 1] == record["gpu"]
        pairs.add((track, record["gpu"]))
    assert len(launched) == 2 and {t for t, _ in pairs} == {"high", "low"} and {g for _, g in pairs} == {"0", "1"}


DIVERGING = """\
import json, os, sys, time
from pathlib import Path
from dcvc_bench.events import EventWriter
argv = sys.argv[1:]
flag = lambda name, default=None: argv[argv.index(name) + 1] if name in argv else default
(Path(os.environ["RECORD_DIR"]) / f"{time.time_ns()}.json").write_text(json.dumps(argv))
lr = float(flag("--force_learning_rate", "1e-4"))
out = EventWriter(flag("--events_file"))
out.emit("train", step="x", epoch=0, iter=1, iters_per_epoch=1, loss=float("nan"), mse=0.1, psnr=10.0,
         bpp=0.1, bpp_y=0.1, bpp_z=0.0, bpp_mv_y=0.0, bpp_mv_z=0.0, lr=lr, frames_per_s=1.0)
out.emit("step_end", step="x", status="diverged", epoch=0, best_loss=None,
         message="non-finite loss in 6 consecutive batches")
sys.exit(3)
"""


def test_diverged_step_is_rolled_back_with_a_lower_lr_a_bounded_number_of_times(fake_run, tmp_path, monkeypatch):
    """A stand-in that speaks the event contract, so the roll-back arithmetic is pinned fast."""
    _with_data(fake_run)
    records = tmp_path / "records"
    records.mkdir()
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n{DIVERGING}")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("RECORD_DIR", str(records))
    code, out = run(fake_run, python=str(python))
    assert code == EXIT_FAILED
    attempts = [json.loads(p.read_text()) for p in sorted(records.iterdir())]
    high = [a for a in attempts if a[a.index("--checkpoint_dir") + 1].endswith("/high")]
    forced = [a[a.index("--force_learning_rate") + 1] if "--force_learning_rate" in a else None for a in high]
    assert forced == [None, "5e-05", "2.5e-05"]  # fresh start, then LR × 0.5 per roll-back
    record = fake_run.ledger().get("high-s1g2")
    assert record.status == "diverged" and record.attempts == 3
    assert record.message == "non-finite loss in 6 consecutive batches; gave up after 2 roll-back(s) with a lower LR"
    assert "rolling back to its latest checkpoint with LR 5e-05 (roll-back 1 of 2)" in out


# ---------------------------------------------------------------- issue 9: kills and full disks


def test_a_step_that_ended_unarchived_does_not_block_the_next_gop_step(fake_run):
    """Killed between the trainer's step_end and the archive: the next GOP step resumes
    that archive, which only the recovery writes (the old code refused to start)."""
    _with_data(fake_run)
    started = time.time() - 5
    fake_run.record("high-s1g2", status="running", pid=999999, started_at=started)
    fake_run.checkpoint("high-s1g2", "latest", epoch=2)
    fake_run.checkpoint("high-s1g2", "final", epoch=2, finished=True)
    code, out = run(fake_run)
    assert "cannot start" not in out and "high-s1g2: done (archived now from its final checkpoint)" in out
    archive = read_meta(fake_run.paths.final_checkpoint("high-s1g2"), verify=True)
    assert archive["step_id"] == "s1g2" and archive["started_at"] == started
    ledger = fake_run.ledger()
    assert ledger.get("high-s1g2").status == "done"
    assert ledger.get("high-s1g3").start_kind == StartKind.STAGE_LATEST_LR_RESET.value  # launched (/bin/false fails it)
    assert code == EXIT_FAILED


def test_a_trainer_whose_pid_never_reached_the_ledger_is_found_by_its_environment(fake_run):
    _with_data(fake_run)
    fake_run.finish_all()
    fake_run.record("low-s2g3", status="running", pid=None, started_at=time.time())
    env = child_env(run_dir=fake_run.paths.run_dir, step_id="low-s2g3")
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGINT, lambda *_: sys.exit(130))\nprint('up', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        assert orphan.stdout.readline().strip() == "up"
        assert run_groups(fake_run.paths.run_dir) == {orphan.pid: "low-s2g3"}
        code, out = run(fake_run)
        assert orphan.wait(timeout=5) == 130
    finally:
        orphan.kill()
        orphan.wait()
    assert f"low-s2g3: its trainer (process group {orphan.pid}) outlived the runner" in out
    assert fake_run.ledger().get("low-s2g3").status != "running"


DISK_FULL = """\
import json, os, sys, time
from pathlib import Path
from dcvc_bench.events import EventWriter
argv = sys.argv[1:]
flag = lambda name: argv[argv.index(name) + 1]
(Path(os.environ["RECORD_DIR"]) / f"{time.time_ns()}.json").write_text(json.dumps(argv))
EventWriter(flag("--events_file")).emit("step_start", step="s1g2", stage=1, gop=2, epochs=2, start_epoch=0,
                                        lr=1e-4, resumed_from=None, lr_reset=False, **{"lambda": 2048.0})
print(f"error: {flag('--checkpoint_dir')}/model_latest.pth: No space left on device (ENOSPC); "
      "free space on that disk, then run again", file=sys.stderr, flush=True)
sys.exit(2)
"""


def test_a_full_disk_reported_by_the_trainer_is_not_retried_and_run_exits_2(fake_run, tmp_path, monkeypatch):
    _with_data(fake_run)
    records = tmp_path / "records"
    records.mkdir()
    python = tmp_path / "python"
    python.write_text(f"#!{sys.executable}\n{DISK_FULL}")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("RECORD_DIR", str(records))
    code, out = run(fake_run, python=str(python))
    assert code == 2
    assert len(list(records.iterdir())) == 2  # one attempt per track: no retry
    record = fake_run.ledger().get("high-s1g2")
    assert record.status == "failed" and record.attempts == 1
    assert record.message.startswith("the trainer could not write: ") and "No space left on device" in record.message
    assert "retrying" not in out and "Once the disk has room" in out


def test_a_write_the_disk_refuses_to_the_runner_is_one_line_exit_2_and_the_ledger_stays(fake_run, tmp_path):
    """A real refusal at the OS boundary: the runner under a file-size limit (EFBIG)."""
    _with_data(fake_run)
    fake_run.freeze()
    fake_run.finish_all()
    toml = tmp_path / "t.toml"
    toml.write_text(fake_run.cur.source_text)
    ledger = fake_run.paths.run_dir / "ledger.json"
    before = ledger.read_bytes()
    assert len(before) > 4096

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "run", str(toml)], capture_output=True,
                         text=True, preexec_fn=limit, timeout=120, cwd=tmp_path)
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode == 2, lines
    assert lines[-1].startswith(f"error: {ledger}: File too large (EFBIG)") and "`dcvc-bench run" in lines[-1]
    assert not [line for line in lines if "Traceback" in line]
    assert ledger.read_bytes() == before
    assert not list(fake_run.paths.run_dir.rglob(".*.tmp"))
    code, _ = run(fake_run)  # the limit lifted ("space freed"): the run goes on
    assert code == EXIT_OK


def test_run_rebuilds_a_sidecar_a_kill_left_stale_and_resumes_from_that_latest(fake_run):
    import torch

    _with_data(fake_run)
    fake_run.finish("high-s1g2")
    fake_run.record("high-s1g3", status="interrupted", started_at=time.time())
    latest = fake_run.checkpoint("high-s1g3", "latest", epoch=1)  # its sidecar...
    state = {"model_state_dict": {"w": torch.zeros(2)}, "step_id": "s1g3", "epoch": 2, "epochs": 2,
             "stage": 1, "gop_size": 3, "finished": False, "kind": "latest", "loss": 1.0}
    with atomic_file(latest) as fh:  # ... then epoch 2's latest, killed before its sidecar
        torch.save(state, fh)
    assert read_meta(latest) is None
    code, out = run(fake_run)
    assert f"{latest}: sidecar rebuilt from the checkpoint" in out
    assert read_meta(latest, verify=True)["epoch"] == 2
    assert fake_run.ledger().get("high-s1g3").start_kind == StartKind.RESUME_OWN_LATEST.value


def test_run_removes_the_temp_files_of_killed_writes_and_status_does_not(fake_run):
    _with_data(fake_run)
    fake_run.finish_all()
    strays = [temp_path(fake_run.paths.run_dir / "ledger.json"),
              temp_path(fake_run.paths.checkpoints_dir("high") / "model_latest.pth"),
              temp_path(fake_run.paths.final_checkpoint("low-s1g2"))]
    for stray in strays:
        stray.write_bytes(b"cut short")
    fake_run.freeze()
    status_command(fake_run.paths.run_dir)
    assert all(p.exists() for p in strays)
    code, out = run(fake_run)
    assert code == EXIT_OK and "removed 3 temp file(s) of writes cut short" in out
    assert not any(p.exists() for p in strays)
