"""End to end with the real trainer:
- `dcvc-bench run` survives a SIGKILL of the whole process tree at a random moment: the
  second run completes the curriculum, finished steps are not re-run, the interrupted step
  resumes from its own latest epoch, and no checkpoint is left corrupt (issue 3);
- Ctrl-C stops a step, which the next run resumes from its own latest checkpoint;
- a step the trainer refuses is reported once, not retried;
- a really diverging step (λ = 1e39) is rolled back with a lower LR a bounded number of
  times.

The curricula are the smallest that still cross an epoch boundary, a GOP increase (LR
reset) and a stage change (previous stage's best), so the suite stays fast; the embedded
smoke curriculum is run by hand (see the README).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcvc_bench.checkpoints import read_meta
from dcvc_bench.events import read_events
from dcvc_bench.runner.ledger import Ledger

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),
]

TINY = """\
name = "tiny"

[data.synthetic]
videos = 2
frames = 4
width = 64
height = 64
val_frames = 3

[model]
preset = "tiny"

[i_frame]
type = "opencv"

[train]
batch_size = 1
crop_size = 64
num_workers = 0
steps_per_epoch = 2
eval_max_frames = 3

[[tracks]]
lambda = 256
quality_index = 1

[[stages]]
stage = 1
gops = [2, 3]
epochs = [4, 1]

[accelerate]
device = "cpu"
"""

# Three steps: s1g2 (2 epochs), s1g3 (GOP increase), s2g2 (stage change).
KILLABLE = TINY.replace("epochs = [4, 1]", "epochs = [2, 1]").replace('name = "tiny"', 'name = "kill"') + """
[[stages]]
stage = 2
gops = [2]
epochs = 1
"""


def dcvc_bench_run(cwd: Path, *args: str) -> subprocess.Popen:
    """`dcvc-bench run ...` in ``cwd`` in its own session, as a user's terminal would."""
    script = Path(sys.executable).with_name("dcvc-bench")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "dcvc_bench.cli"]
    log_path = cwd / f"run-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*argv, "run", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the runner and everything under it, every process group included (the
    steps run in sessions of their own)."""
    os.killpg(proc.pid, signal.SIGSTOP)  # freeze the runner: it starts nothing more
    pids = [proc.pid, *descendants(proc.pid)]
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def finish(proc: subprocess.Popen, timeout: float = 1200) -> int:
    """The exit code, after printing the runner's output (shown when a test fails)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        raise
    finally:
        print(proc.log_path.read_text())


def step_starts(events: Path) -> list[dict]:
    return [e for e in read_events(events) if e["event"] == "step_start"]


def assert_no_corrupt_checkpoint(run_dir: Path) -> None:
    import torch

    files = [*run_dir.glob("checkpoints/*/*.pth"), *run_dir.glob("steps/*/final.pth")]
    assert files
    for pth in files:
        assert read_meta(pth) is not None, f"{pth}: sidecar does not match"
        state = torch.load(pth, map_location="cpu", weights_only=True)
        assert "model_state_dict" in state, pth


def test_run_survives_sigkill_of_the_whole_tree_at_a_random_moment(tmp_path):
    seed = int(os.environ.get("DCVC_BENCH_KILL_SEED", time.time_ns() % 10_000))
    delay = random.Random(seed).uniform(3, 45)
    print(f"kill after {delay:.1f}s (DCVC_BENCH_KILL_SEED={seed})")
    (tmp_path / "kill.toml").write_text(KILLABLE)
    run_dir = tmp_path / "runs" / "kill"

    first = dcvc_bench_run(tmp_path, "kill.toml")
    try:
        first.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        kill_tree(first)

    ledger = Ledger.load(run_dir / "ledger.json")
    done_before = {r.id: os.stat(run_dir / "steps" / r.id / "final.pth")
                   for r in ledger.records.values() if r.status == "done"}
    events_before = {sid: (run_dir / "steps" / sid / "events.jsonl").stat().st_size for sid in done_before}
    cut = next((r for r in ledger.records.values() if r.status == "running"), None)
    own_latest = None
    cut_had_finished = False
    if cut is not None:
        cut_events = run_dir / "steps" / cut.id / "events.jsonl"
        # Killed after the trainer ended the step (final written, step_end done) but
        # before the runner recorded it: the next run must not redo it.
        cut_had_finished = any(e["event"] == "step_end" and e["status"] == "done"
                               for e in read_events(cut_events))
        phase = cut.id[len(cut.track) + 1:]
        for latest in run_dir.glob(f"checkpoints/{cut.track}/*_latest.pth"):
            meta = read_meta(latest)
            if meta and meta["step_id"] == phase and not meta["finished"]:
                own_latest = (latest, meta["epoch"])
        cut_starts = len(step_starts(cut_events))

    second = dcvc_bench_run(tmp_path, "kill.toml")
    assert finish(second) == 0

    ledger = Ledger.load(run_dir / "ledger.json")
    assert len(ledger.records) == 3
    assert {r.status for r in ledger.records.values()} == {"done"}
    for sid, st in done_before.items():  # finished steps were not re-run
        again = os.stat(run_dir / "steps" / sid / "final.pth")
        assert (again.st_ino, again.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), sid
        assert (run_dir / "steps" / sid / "events.jsonl").stat().st_size == events_before[sid], sid
    if cut_had_finished:  # a finished step is never redone, even when the ledger missed its end
        assert len(step_starts(run_dir / "steps" / cut.id / "events.jsonl")) == cut_starts, cut.id
    elif own_latest is not None:  # the interrupted step resumed from its own latest epoch
        resumed = step_starts(run_dir / "steps" / cut.id / "events.jsonl")[cut_starts]
        assert (tmp_path / resumed["resumed_from"]).resolve() == own_latest[0].resolve()
        assert resumed["start_epoch"] == own_latest[1] and resumed["lr_reset"] is False
    assert_no_corrupt_checkpoint(run_dir)


def test_ctrl_c_saves_the_step_and_the_next_run_resumes_it_without_lr_reset(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    run_dir = tmp_path / "runs" / "tiny"
    events = run_dir / "steps" / "l256-s1g2" / "events.jsonl"

    first = dcvc_bench_run(tmp_path, "tiny.toml")
    deadline = time.monotonic() + 600
    while not any(e["event"] == "checkpoint" and e["kind"] == "latest" for e in read_events(events)):
        assert first.poll() is None and time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGINT)  # Ctrl-C reaches the runner, not the step's session
    assert finish(first, timeout=300) == 130

    record = Ledger.load(run_dir / "ledger.json").get("l256-s1g2")
    assert record.status == "interrupted" and record.epochs_done >= 1
    latest = run_dir / "checkpoints" / "l256" / "model_dcvc_lambda_256.0_quality_1_stage_1_latest.pth"
    meta = read_meta(latest)
    assert meta["step_id"] == "s1g2" and not meta["finished"] and meta["epoch"] >= 1

    second = dcvc_bench_run(tmp_path, "tiny.toml")
    assert finish(second) == 0
    resumed = step_starts(events)[-1]
    assert (tmp_path / resumed["resumed_from"]).resolve() == latest.resolve()
    assert resumed["start_epoch"] == meta["epoch"] and resumed["lr_reset"] is False
    gop3 = step_starts(run_dir / "steps" / "l256-s1g3" / "events.jsonl")
    assert len(gop3) == 1 and gop3[0]["lr_reset"] is True
    assert (tmp_path / gop3[0]["resumed_from"]).resolve() == (run_dir / "steps" / "l256-s1g2" / "final.pth").resolve()
    assert_no_corrupt_checkpoint(run_dir)


def test_a_step_the_trainer_refuses_is_reported_once_not_retried(tmp_path):
    # The files exist (so `run`'s pre-flight check passes); the trainer refuses the config.
    refused = TINY.replace('name = "tiny"', 'name = "refused"').replace(
        '[i_frame]\ntype = "opencv"', '[i_frame]\ntype = "vqgan"\nconfig = "vq.json"\ncheckpoint = "vq.pth"')
    (tmp_path / "refused.toml").write_text(refused)
    (tmp_path / "vq.json").write_text('{"family": "vqgan"}')
    (tmp_path / "vq.pth").write_bytes(b"")
    proc = dcvc_bench_run(tmp_path, "refused.toml")
    assert finish(proc, timeout=300) == 1
    record = Ledger.load(tmp_path / "runs" / "refused" / "ledger.json").get("l256-s1g2")
    assert record.status == "failed" and record.attempts == 1
    assert "refused to start" in record.message and "vq.json" in record.message


def test_a_diverging_step_is_rolled_back_with_a_lower_lr_then_reported(tmp_path):
    # The largest λ and LR a curriculum allows, with clipping out of the way: Adam's steps
    # of size ~1 blow the weights up within a few batches and the losses become inf/NaN.
    diverging = TINY.replace('name = "tiny"', 'name = "nan"').replace(
        "lambda = 256", "lambda = 100000").replace("steps_per_epoch = 2", "steps_per_epoch = 8").replace(
        "eval_max_frames = 3", "eval_max_frames = 3\nlearning_rate = 1.0\ngrad_clip_max_norm = 10000.0").replace(
        "epochs = [4, 1]", "epochs = [1, 1]") + "\n[failure]\ndivergence_retries = 1\n"
    (tmp_path / "nan.toml").write_text(diverging)
    proc = dcvc_bench_run(tmp_path, "nan.toml")
    assert finish(proc, timeout=300) == 1
    run_dir = tmp_path / "runs" / "nan"
    step_id = next(iter(Ledger.load(run_dir / "ledger.json").records))
    record = Ledger.load(run_dir / "ledger.json").get(step_id)
    assert record.status == "diverged" and record.attempts == 2
    starts = step_starts(run_dir / "steps" / step_id / "events.jsonl")
    assert len(starts) == 2  # one roll-back, then it gave up
    assert starts[1]["lr"] == pytest.approx(starts[0]["lr"] * 0.5) and starts[1]["lr_reset"] is True
    ends = [e for e in read_events(run_dir / "steps" / step_id / "events.jsonl") if e["event"] == "step_end"]
    assert [e["status"] for e in ends] == ["diverged", "diverged"]
    assert not list(run_dir.glob("steps/*/final.pth"))  # nothing diverged was archived as finished
