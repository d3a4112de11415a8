"""Talking to Slurm: ``sbatch``, ``squeue``, ``scontrol``, ``sacct``, ``scancel``.

Plain subprocesses with argv lists (no shell, no submitit: one batch job per step needs
``sbatch --parsable`` and a state query, nothing that a library would add, and a job's
state must come from the cluster's own commands, which also work when the runner that
submitted it is gone). A job's state is asked of ``squeue`` (pending and running jobs),
then ``scontrol show job`` (finished jobs for ``MinJobAge``), then ``sacct`` (accounting,
where the cluster has it); ``None`` when none of them knows the job any more.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from dcvc_bench.checkpoints import atomic_file
from dcvc_bench.runner.slurm_script import JOB_SCRIPT, SlurmJob

#: States of a job that is not over yet (it may still start, run or be requeued).
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                    "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"})
#: Final states that mean the job was taken away from the step (not the trainer's doing).
TAKEN = frozenset({"TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"})
QUERY_TIMEOUT_S = 30.0


class SlurmError(Exception):
    """A Slurm command refused or failed; ``str()`` is Slurm's own message, one line."""


@dataclass(frozen=True)
class JobState:
    state: str          # COMPLETED, FAILED, RUNNING, ... (the first word: "CANCELLED by 0" -> CANCELLED)
    exit_code: Optional[int] = None
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def command(name: str) -> Optional[str]:
    return shutil.which(name)


def _run(argv: Sequence[str], env: Optional[dict[str, str]] = None, timeout: float = QUERY_TIMEOUT_S,
         cwd: Optional[str | Path] = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{argv[0]}` did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise SlurmError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


def slurm_message(text: str) -> str:
    """Slurm's message in one line: ``sbatch: error: Batch job submission failed: X`` -> ``X``."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()] or lines
    line = errors[-1] if errors else "no message"
    line = re.sub(r"^(sbatch|squeue|scontrol|scancel|sacct): (error: )?", "", line)
    return re.sub(r"^Batch job submission failed: ", "", line)


def write_script(job: SlurmJob, step_dir: Path) -> Path:
    """The job's script in the step's folder (atomically: a job never reads half of it)."""
    step_dir.mkdir(parents=True, exist_ok=True)
    path = step_dir / JOB_SCRIPT
    with atomic_file(path) as fh:
        fh.write(job.script.encode())
    path.chmod(0o755)
    return path


def submit(job: SlurmJob, script: Path, env: dict[str, str], sbatch: str = "sbatch") -> str:
    """Submit; the job id (``sbatch --parsable`` prints ``id`` or ``id;cluster``)."""
    done = _run(job.sbatch_argv(script, sbatch), env=env)
    if done.returncode != 0:
        raise SlurmError(slurm_message(done.stderr or done.stdout))
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {done.stdout.strip()!r}")
    return job_id


def test_only(job: SlurmJob, script: Path, env: dict[str, str], sbatch: str = "sbatch") -> Optional[str]:
    """``sbatch --test-only``: None when Slurm would take the job, else its message."""
    done = _run(job.sbatch_argv(script, sbatch, test_only=True), env=env)
    return None if done.returncode == 0 else slurm_message(done.stderr or done.stdout)


def job_state(job_id: str) -> Optional[JobState]:
    """What Slurm knows of the job now (see the module doc); None when nothing does."""
    if command("squeue"):
        done = _run(["squeue", "-h", "-j", job_id, "-o", "%T|%r"])
        if done.returncode == 0 and done.stdout.strip():
            state, _, reason = done.stdout.strip().splitlines()[0].partition("|")
            return JobState(state.split()[0], None, reason)
    if command("scontrol"):
        done = _run(["scontrol", "show", "job", "-o", job_id])
        if done.returncode == 0 and "JobState=" in done.stdout:
            fields = dict(re.findall(r"(\w+)=(\S*)", done.stdout))
            return JobState(fields.get("JobState", "UNKNOWN"), _exit_code(fields.get("ExitCode", "")),
                            fields.get("Reason", ""))
    if command("sacct"):
        done = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"])
        if done.returncode == 0 and done.stdout.strip():
            state, _, code = done.stdout.strip().splitlines()[-1].partition("|")
            return JobState(state.split()[0], _exit_code(code))
    return None


def find_job(name: str) -> Optional[str]:
    """The id of an active job called ``name`` (one whose id never reached the ledger)."""
    if not command("squeue"):
        return None
    done = _run(["squeue", "-h", "-n", name, "-o", "%i"])
    ids = [w for w in done.stdout.split() if w.isdigit()] if done.returncode == 0 else []
    return ids[-1] if ids else None


def cancel(job_id: str, signal: Optional[str] = None) -> None:
    """``scancel`` the job, or send it ``signal`` (its job steps' processes)."""
    argv = ["scancel"] + ([f"--signal={signal}"] if signal else []) + [job_id]
    done = _run(argv)
    if done.returncode != 0 and "already completing or completed" not in (done.stderr or ""):
        raise SlurmError(slurm_message(done.stderr or done.stdout))


def _exit_code(text: str) -> Optional[int]:
    """``130:0`` (code:signal) -> 130; a job killed by a signal -> 128 + signal."""
    m = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if m is None:
        return None
    code, sig = int(m.group(1)), int(m.group(2))
    return code if code or not sig else 128 + sig
