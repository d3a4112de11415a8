"""What `run --launcher slurm` refuses before anything is submitted: one line each, exit 2.

- no ``sbatch`` on PATH;
- a time limit shorter than one epoch of a previous attempt of this run folder (measured
  from the steps' ``events.jsonl``: the time from a ``step_start`` or ``latest``
  checkpoint to the next ``latest``, evaluation included);
- what ``sbatch --test-only`` refuses (an unknown partition, account, QOS, constraint, a
  node configuration the cluster does not have): the key it concerns and Slurm's own message.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

from dcvc_bench.curriculum import Curriculum, RunPaths, Step, expand, run_paths
from dcvc_bench.curriculum.command import planned_run_flags
from dcvc_bench.errors import UserError
from dcvc_bench.runner.slurm_jobs import SlurmError, command, test_only
from dcvc_bench.runner.slurm_launch import _job_env
from dcvc_bench.runner.slurm_script import build_job

#: Words of Slurm's message -> the setting it is about.
_KEYS = (("account", "account"), ("qos", "qos"), ("partition", "partition"), ("time limit", "time"),
         ("feature", "constraint"), ("constraint", "constraint"), ("gres", "gpus_per_node"),
         ("memory", "mem"))


def check_slurm(cur: Curriculum, python: Optional[str] = None) -> None:
    """Raise :class:`UserError` (one line) for the first problem above."""
    s = cur.launcher.slurm
    if command("sbatch") is None:
        raise UserError('[launcher] kind = "slurm": sbatch is not on PATH (this machine needs Slurm\'s client '
                        "commands and a slurm.conf); install them, or run with --launcher local")
    paths = run_paths(cur)
    measured = longest_epoch(paths)
    if s.time_s is not None and measured is not None and s.time_s <= measured[0]:
        seconds, step_id = measured
        raise UserError(f"[launcher.slurm] time: {s.time} ({s.time_s} s) is shorter than one epoch of step {step_id} "
                        f"in an earlier attempt ({seconds:.0f} s, from {paths.events_file(step_id)}); raise it")
    steps = expand(cur, paths.data_dirs)
    message = _test_only(cur, steps[0], steps, paths, python)
    if message is not None:
        key = next((k for word, k in _KEYS if word in message.lower()), None)
        where = f"[launcher.slurm] {key}" if key else "[launcher.slurm]"
        raise UserError(f"{where}: Slurm refuses the job: {message} (sbatch --test-only)")


def _test_only(cur: Curriculum, step: Step, steps: list[Step], paths: RunPaths, python: Optional[str]) -> Optional[str]:
    job = build_job(cur, step, planned_run_flags(cur, step, steps), paths, python=python)
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-slurm-") as tmp:
        script = Path(tmp) / "job.sh"
        script.write_text(job.script)
        try:
            return test_only(job, script, _job_env())
        except SlurmError as exc:
            return str(exc)


def longest_epoch(paths: RunPaths) -> Optional[tuple[float, str]]:
    """(seconds, step id) of the longest epoch any attempt in the run folder recorded."""
    best: Optional[tuple[float, str]] = None
    for events in sorted(paths.run_dir.glob("steps/*/events.jsonl")):
        since: Optional[float] = None
        try:
            lines = events.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind, t = event.get("event"), event.get("t")
            if not isinstance(t, (int, float)):
                continue
            if kind == "step_start":
                since = t
            elif kind == "checkpoint" and event.get("kind") == "latest" and since is not None:
                if best is None or t - since > best[0]:
                    best = (t - since, events.parent.name)
                since = t
            elif kind == "step_end":
                since = None
    return best
