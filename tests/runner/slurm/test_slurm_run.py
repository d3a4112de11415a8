"""Curricula run as real Slurm jobs (a live cluster: the ``slurm`` fixture).

One scenario walks every promise of the runner/job split on a one-step curriculum (the
smallest that shows them; the smoke curriculum was run by hand, see the README): the
step is a job (its id in the ledger, Slurm knows it); ``scancel --signal=USR1``
on the running step ends it ``interrupted`` with its latest kept, the runner resubmits it
and it continues from its own latest (same epoch counter, no LR reset); SIGKILL of the
runner while the step's job runs leaves the job running, and the next `run` re-attaches to
it (no second job) and completes the curriculum. Bad input is refused before anything is
submitted, one line, exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcvc_bench.events import read_events
from dcvc_bench.runner.ledger import Ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.usefixtures("slurm")]

CURRICULUM = """\
name = "sl"

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
steps_per_epoch = 3
eval_max_frames = 3
learning_rate = 2e-4
reset_learning_rate = 5e-5

[[tracks]]
lambda = 256
quality_index = 1

[[stages]]
stage = 1
gops = [2]
epochs = 3

[accelerate]
device = "cpu"

[launcher]
kind = "slurm"

[launcher.slurm]
time = "15"
cpus_per_task = 1
signal_s = 60
"""


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    script = Path(sys.executable).with_name("dcvc-bench")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "dcvc_bench.cli"]
    log_path = cwd / f"cli-{time.monotonic_ns()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*argv, *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    out = proc.log_path.read_text()
    print(out)
    return code, out


def wait_for(what: str, condition, timeout: float = 240.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the runner exited ({proc.returncode}) while waiting for {what}:\n"
                        + proc.log_path.read_text())
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{proc.log_path.read_text()}" if proc else ""))


def record(run: Path, step: str):
    return Ledger.load(run / "ledger.json").get(step)


def events(run: Path, step: str) -> list[dict]:
    path = run / "steps" / step / "events.jsonl"
    return read_events(path) if path.exists() else []


def slurm_field(job: str, name: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30).stdout
    return dict(w.split("=", 1) for w in out.split() if "=" in w).get(name, "")


def jobs_named(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i"], capture_output=True, text=True,
                         timeout=30).stdout
    return out.split()


def test_usr1_requeue_sigkill_reattach_complete(tmp_path):
    (tmp_path / "c.toml").write_text(CURRICULUM)
    run = tmp_path / "runs" / "sl"
    first = "l256-s1g2"
    proc = cli(tmp_path, "run", "c.toml")
    # 1. the first step is a job; once it saved epoch 1's latest, Slurm's USR1 stops it
    job1 = wait_for("the first job id", lambda: (r := record(run, first)) and r.job_id, proc=proc)
    wait_for("epoch 1's latest", lambda: any(e["event"] == "checkpoint" and e.get("kind") == "latest"
                                             for e in events(run, first)), proc=proc)
    assert slurm_field(job1, "JobState") == "RUNNING"
    row = step_row(status_of(tmp_path, run), first)  # not "runner gone": a job has no local pid
    assert " running " in row and "runner gone" not in row, row
    subprocess.run(["scancel", "--signal=USR1", job1], check=True, timeout=30)
    # 2. it ends interrupted and is resubmitted as a new job
    job2 = wait_for("the resubmitted job", lambda: (r := record(run, first)) and r.job_id != job1 and r.job_id,
                    proc=proc)
    # 3. SIGKILL of the runner while that job runs: the job runs on
    wait_for("job 2 running", lambda: slurm_field(job2, "JobState") == "RUNNING", proc=proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(2)
    assert slurm_field(job2, "JobState") in ("RUNNING", "COMPLETING", "COMPLETED")
    if slurm_field(job2, "JobState") == "RUNNING":  # status asks Slurm: the job runs on without its runner
        shown = status_of(tmp_path, run, width=300)
        row = step_row(shown, first)
        assert "running (its Slurm job," in row and f" {job2} RUNNING " in row, row  # the cell may wrap
        assert f"step {first} runs on as Slurm job {job2} (RUNNING) without its runner; `dcvc-bench run " \
               "--launcher slurm` re-attaches to it" in " ".join(shown.split())
    # 4. the next run re-attaches to it (no duplicate) and completes the curriculum
    code, out = finish(cli(tmp_path, "run", "c.toml"))
    assert code == 0
    assert f"re-attaching to its Slurm job {job2}" in out or slurm_field(job2, "JobState") == "COMPLETED"
    assert f"re-attaching to its Slurm job {job2}" in out
    assert "all 1 steps done" in out

    rec = record(run, first)
    assert rec.status == "done" and rec.job_id == job2 and rec.scheduler_state == "COMPLETED"
    for job in (job1, job2):  # Slurm knows each job by its id
        assert slurm_field(job, "JobId") == job
    assert slurm_field(job2, "JobState") == "COMPLETED"
    # the USR1 attempt and its resubmission only: no duplicate from the re-attaching run
    assert sorted(jobs_named(slurm_field(job1, "JobName"))) == sorted([job1, job2])

    ev = events(run, first)
    starts = [e for e in ev if e["event"] == "step_start"]
    ends = [e for e in ev if e["event"] == "step_end"]
    assert [e["status"] for e in ends] == ["interrupted", "done"]
    assert "SIGUSR1" in ends[0]["message"]
    saved = [e for e in ev[:ev.index(ends[0])] if e["event"] == "checkpoint" and e.get("kind") == "latest"]
    assert len(starts) == 2 and starts[0]["start_epoch"] == 0
    # continues from its own latest: the epoch counter and LR it had, no reset
    assert starts[1]["start_epoch"] == saved[-1]["epoch"] >= 1
    assert starts[1]["resumed_from"] and Path(starts[1]["resumed_from"]).name == Path(saved[-1]["path"]).name
    assert starts[1]["lr_reset"] is False and starts[1]["lr"] == pytest.approx(2e-4)
    assert (run / "steps" / first / "job.sh").read_text().startswith("#!/bin/bash")
    # status shows each step's job and Slurm state
    status = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "status", str(run)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert status.returncode == 0 and f"{job2} COMPLETED" in status.stdout


def status_of(cwd: Path, run: Path, width: int = 200) -> str:
    done = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "status", str(run)], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, "COLUMNS": str(width)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def step_row(status: str, step: str) -> str:
    return next(line for line in status.splitlines() if f" {step} " in line)


def all_jobs() -> set[str]:
    return set(subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True,
                              timeout=30).stdout.split())


def _refusal(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    (tmp_path / "c.toml").write_text(text)
    before = all_jobs()
    code, out = finish(cli(tmp_path, "run", "c.toml", env=env), timeout=120)
    assert all_jobs() == before  # no job submitted
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), out
    assert not (tmp_path / "runs" / "sl" / "ledger.json").exists()  # nothing submitted, no run started
    return lines[0]


def test_unknown_partition_is_refused_before_submission(tmp_path):
    line = _refusal(tmp_path, CURRICULUM.replace('time = "15"', 'time = "15"\npartition = "nosuchpart"'))
    assert "[launcher.slurm] partition" in line and "invalid partition specified: nosuchpart" in line


def test_no_sbatch_on_path(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    line = _refusal(tmp_path, CURRICULUM, env={**os.environ, "PATH": str(empty)})
    assert "sbatch is not on PATH" in line and '[launcher] kind = "slurm"' in line


def test_time_limit_shorter_than_a_measured_epoch(tmp_path):
    """A previous attempt's events say an epoch took 400 s; a 5-minute limit is refused."""
    step_dir = tmp_path / "runs" / "sl" / "steps" / "l256-s1g2"
    step_dir.mkdir(parents=True)
    t0 = 1_700_000_000.0
    lines = [{"v": 1, "t": t0, "event": "step_start", "step": "s1g2"},
             {"v": 1, "t": t0 + 400, "event": "checkpoint", "step": "s1g2", "kind": "latest", "epoch": 1,
              "path": "x", "loss": 1.0}]
    (step_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (tmp_path / "c.toml").write_text(CURRICULUM.replace('time = "15"', 'time = "5"'))
    code, out = finish(cli(tmp_path, "run", "c.toml"), timeout=120)
    assert code == 2 and out.strip().count("\n") == 0, out
    assert "[launcher.slurm] time: 5 (300 s) is shorter than one epoch of step l256-s1g2" in out
    assert "400 s" in out


def test_a_live_job_whose_id_never_reached_the_ledger_is_found_by_name(tmp_path):
    """`run` killed between sbatch and the ledger write: the step is recorded as running
    with no job id. A local run refuses (the job would train twice); `status` of the
    folder and the launcher find the job by its name."""
    from dcvc_bench.curriculum import load_curriculum, run_paths
    from dcvc_bench.runner.slurm_launch import live_jobs
    from dcvc_bench.runner.slurm_script import job_name

    (tmp_path / "c.toml").write_text(CURRICULUM.replace('name = "sl"', f'name = "sl"\noutput_dir = "{tmp_path}/runs"'))
    paths = run_paths(load_curriculum(tmp_path / "c.toml"))
    name = job_name(paths, "l256-s1g2")
    run = tmp_path / "runs" / "sl"
    run.mkdir(parents=True)
    ledger = Ledger(run / "ledger.json")
    ledger.update("l256-s1g2", track="l256", status="running", attempts=1)
    job = subprocess.run(["sbatch", "--parsable", f"--job-name={name}", "--cpus-per-task=1", "--output=/dev/null",
                          "--wrap=sleep 120"], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    try:
        assert live_jobs(Ledger.load(run / "ledger.json"), paths) == {"l256-s1g2": job}
        code, out = finish(cli(tmp_path, "run", "c.toml", "--launcher", "local"), timeout=120)
        assert code == 2, out
        assert f"error: step l256-s1g2 runs as Slurm job {job}; run with --launcher slurm" in out
        assert Ledger.load(run / "ledger.json").get("l256-s1g2").status == "running"  # left as it was
    finally:
        subprocess.run(["scancel", job], timeout=30)


def test_unknown_account_is_refused_before_submission(tmp_path):
    """Slurm knows accounts only with accounting enforced (.ci/slurm/up sets it up)."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    enforce = next((line for line in config.splitlines() if line.startswith("AccountingStorageEnforce")), "")
    if "associations" not in enforce:
        if os.environ.get("DCVC_BENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f".ci/slurm/up should enforce accounting associations; scontrol says {enforce!r}")
        pytest.skip(f"this Slurm does not enforce accounts ({enforce.strip() or 'no AccountingStorageEnforce'})")
    line = _refusal(tmp_path, CURRICULUM.replace('time = "15"', 'time = "15"\naccount = "nosuchacct"'))
    assert "[launcher.slurm] account" in line and "Invalid account" in line


def test_two_tracks_run_as_two_jobs_at_once(tmp_path):
    """``max_parallel = 2``: the two tracks' steps are two Slurm jobs in flight together
    (their trainers' lifetimes overlap), each writing its own checkpoint folder; with the
    default of 1 the same curriculum would run them one after the other."""
    text = CURRICULUM.replace("quality_index = 1\n", "quality_index = 1\n\n[[tracks]]\nlambda = 512\n"
                              "quality_index = 2\n").replace("epochs = 3", "epochs = 2") \
        .replace('signal_s = 60\n', 'signal_s = 60\nmax_parallel = 2\n')
    (tmp_path / "c.toml").write_text(text)
    run = tmp_path / "runs" / "sl"
    code, out = finish(cli(tmp_path, "run", "c.toml"))
    assert code == 0 and "all 2 steps done" in out
    steps = ["l256-s1g2", "l512-s1g2"]
    jobs = [record(run, s).job_id for s in steps]
    assert all(jobs) and len(set(jobs)) == 2
    assert all(slurm_field(j, "JobState") == "COMPLETED" for j in jobs)
    spans = []
    for step in steps:
        ev = events(run, step)
        (start,) = [e["t"] for e in ev if e["event"] == "step_start"]
        (end,) = [e for e in ev if e["event"] == "step_end"]
        assert end["status"] == "done"
        spans.append((start, end["t"]))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the two jobs did not overlap: {spans}"
    from dcvc_bench.curriculum import expand, load_curriculum, run_paths

    cur = load_curriculum(tmp_path / "c.toml")
    paths = run_paths(cur)
    finals = [paths.own_checkpoint(step, "final") for step in expand(cur, paths.data_dirs)]
    assert len(finals) == 2 and finals[0].parent != finals[1].parent  # a checkpoint folder per track
    assert all((tmp_path / f).is_file() for f in finals), finals
