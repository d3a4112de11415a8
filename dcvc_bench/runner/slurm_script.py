"""The batch job of one step: its ``#SBATCH`` lines, its script, and the ``sbatch`` argv.

The script runs the very ``accelerate launch … -m dcvc_bench.train …`` argv that `plan`
prints (:func:`~dcvc_bench.curriculum.command.accelerate_argv`, the one builder), under
``srun`` (one task per node), so that Slurm's signals reach it: ``--signal=USR1@S`` and
``scancel --signal=USR1`` go to the job steps' processes, not to the batch shell.

USR1: slurmstepd starts each task afresh (it does not inherit the batch shell's signal
dispositions), so each task is ``bash -c "trap '' USR1; exec accelerate launch …"``: an
ignored signal stays ignored across ``exec``, so ``accelerate launch`` (which installs no
handler for it) does not die of it (measured before this: ``srun: error: task 0: User
defined signal 1``, exit 138, with the trainer killed by the step's end while it was
stopping, or never started); the trainer installs its own handler (``train/stopping.py``)
and stops as on SIGTERM: it ends ``interrupted`` with ``latest`` of its last finished epoch
kept. The batch shell ignores USR1 too; it is no job step, so Slurm signals it only with
``B:`` / ``scancel --batch``, which the script does not use.

A multi-node step: ``--num_machines N --machine_rank "$SLURM_NODEID" --main_process_ip
"$DCVC_BENCH_MAIN_IP" --main_process_port P``, the address being the first host of
``scontrol show hostnames "$SLURM_JOB_NODELIST"``, run once per node by ``srun
--ntasks-per-node=1`` through ``bash -c`` (the variables are expanded on each node).

Every value comes from the curriculum: the ``#SBATCH`` values are validated to narrow
shapes (:mod:`dcvc_bench.curriculum.launcher_spec`; sbatch reads those lines, not a shell),
every word of the body is :func:`shlex.quote`\\ d, and paths (log, working folder) go to
``sbatch`` on its argv, never into the script. Pure Python: building a job runs nothing.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from dcvc_bench.curriculum import Curriculum, RunPaths, Step
from dcvc_bench.curriculum.command import MultiNode, accelerate_argv
from dcvc_bench.faults import RUNNER_PID_ENV
from dcvc_bench.runner.launcher import RUN_DIR_ENV, STEP_ENV

#: Argv words that the script writes as shell variables (expanded on each node).
RANK_WORD, MAIN_IP_WORD = "$SLURM_NODEID", "$DCVC_BENCH_MAIN_IP"
JOB_SCRIPT = "job.sh"
#: What each task runs before the launch line (see the module doc).
TASK_PREFIX = "trap '' USR1; exec "


@dataclass(frozen=True)
class SlurmJob:
    """One step's batch job: ``script`` (the file's text), ``options`` (sbatch's argv
    options besides the script's own lines) and ``name`` (the job name, by which a job
    whose id never reached the ledger is found again)."""

    step_id: str
    name: str
    script: str
    options: tuple[str, ...]
    argv: tuple[str, ...]  # the accelerate launch argv inside

    def sbatch_argv(self, script_path: str | Path, sbatch: str = "sbatch", test_only: bool = False) -> list[str]:
        return [sbatch, "--test-only" if test_only else "--parsable", *self.options, str(script_path)]


def job_name(paths: RunPaths, step_id: str) -> str:
    """``dcvc-<step id>-<8 hex of the run folder>``: unique per run folder and step."""
    digest = hashlib.sha256(str(Path(paths.run_dir).resolve()).encode()).hexdigest()[:8]
    return f"dcvc-{step_id}-{digest}"


def sbatch_lines(cur: Curriculum) -> list[str]:
    """The ``#SBATCH`` lines of the curriculum's settings (values validated by the schema)."""
    s = cur.launcher.slurm
    lines = [f"--nodes={s.nodes}", "--ntasks-per-node=1", f"--cpus-per-task={s.cpus_per_task}"]
    for flag, value in (("partition", s.partition), ("account", s.account), ("qos", s.qos), ("time", s.time),
                        ("mem", s.mem), ("constraint", s.constraint)):
        if value is not None:
            lines.append(f"--{flag}={value}")
    if s.gpus_per_node:
        lines.append(f"--gpus-per-node={s.gpus_per_node}")
    lines.append(f"--signal=USR1@{s.signal_s}")
    # Slurm's own requeue reruns this script, whose flags are those of the attempt it was
    # submitted for (e.g. a fresh start): the runner resubmits instead (`requeue`).
    lines.append("--no-requeue")
    lines += list(s.extra_sbatch)
    return lines


def build_job(cur: Curriculum, step: Step, run_flags: Mapping[str, object], paths: RunPaths,
              python: Optional[str] = None, cwd: Optional[str | Path] = None) -> SlurmJob:
    """The job of ``step`` with the run flags of how it starts (the runner's decision, or
    the plan's on a fresh folder). ``python`` as for ``accelerate_argv``."""
    s = cur.launcher.slurm
    machines = MultiNode(s.nodes, RANK_WORD, MAIN_IP_WORD, s.port) if s.nodes > 1 else None
    threads = max(1, s.cpus_per_task // cur.accelerate.num_processes)
    argv = accelerate_argv(cur, step, run_flags, python, cpu_threads=threads, machines=machines)
    name = job_name(paths, step.id)
    body = [
        "#!/bin/bash",
        f"# dcvc-bench step {step.id} of run folder {_comment(paths.run_dir)}",
        f"#SBATCH --job-name={name}",
        *(f"#SBATCH {line}" for line in sbatch_lines(cur)),
        "set -u",
        f"unset {RUNNER_PID_ENV} {RUN_DIR_ENV} {STEP_ENV}  # the job is not the runner's child: it runs on without it",
        "export PYTHONUNBUFFERED=1",
        "# USR1 (--signal, scancel --signal=USR1): ignored by the launcher, handled by the trainer (save, stop)",
        "trap '' USR1",
        'echo "=== $(date \'+%Y-%m-%d %H:%M:%S\') slurm job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST}'
        f' (step {step.id})"',
    ]
    task = shlex.quote(f"{TASK_PREFIX}{render_argv(argv)}")  # one per node; ignores USR1, see above
    if machines is None:
        body.append(f"srun --ntasks=1 --ntasks-per-node=1 bash -c {task}")
    else:
        body += [
            'DCVC_BENCH_MAIN_IP="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
            "export DCVC_BENCH_MAIN_IP",
            f"srun --ntasks={s.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c {task}",
        ]
    body += ["status=$?", 'echo "=== slurm job ${SLURM_JOB_ID}: exit code ${status}"', 'exit "$status"', ""]
    work = Path(cwd) if cwd is not None else Path(os.getcwd())
    options = (f"--output={Path(paths.stdout_log(step.id)).resolve()}", "--open-mode=append",
               f"--chdir={work.resolve()}")
    return SlurmJob(step.id, name, "\n".join(body), options, tuple(argv))


def render_argv(argv: list[str]) -> str:
    """The argv as shell words: each quoted, but the rank and address words as variables."""
    words = []
    for before, word in zip([""] + argv, argv):
        variable = (before, word) in (("--machine_rank", RANK_WORD), ("--main_process_ip", MAIN_IP_WORD))
        words.append(f'"{word}"' if variable else shlex.quote(word))
    return " ".join(words)


def _comment(text: object) -> str:
    """Text for a comment or an ``echo "..."`` line: no line break, no ``"``, ``$``, backquote or backslash."""
    return "".join(c if c.isprintable() and c not in '"$`\\' else "?" for c in str(text))
