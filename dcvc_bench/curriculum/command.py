"""Run-folder paths and the `accelerate launch` command line of a step. Pure Python.

Commands are argv lists, never shell strings; ``shlex.join(argv)`` is only for display
(``plan`` prints it so a user can copy a step and run it by hand).

Trainer flags are rendered from ``{name: value}``: ``None`` is left out, a float keeps
its exact ``repr``, and booleans follow the trainer's argparse: the flags in
:data:`NEGATABLE_FLAGS` are ``BooleanOptionalAction`` (``--use_ema`` / ``--no-use_ema``);
every other boolean is a ``store_true`` switch, passed only when true.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from dcvc_bench.checkpoints import checkpoint_name
from dcvc_bench.curriculum.schema import Curriculum
from dcvc_bench.curriculum.steps import PFRAME_MODULE, StartKind, Step, producer

NEGATABLE_FLAGS = frozenset({"i_frame_pretrained", "use_scheduler", "use_ema", "evaluate_both"})
RUN_FLAGS = ("checkpoint_dir", "events_file", "resume", "load_pretrained", "force_learning_rate")
"""Trainer flags that depend on the run folder and on how a step starts: the runner adds
them, and the flags of ``Step.input_flags`` (the archive of what the step reads)."""

TRAINER_MODULE = PFRAME_MODULE
"""The P-frame steps' trainer; a step launches ``step.module`` (its kind's)."""


@dataclass(frozen=True)
class RunPaths:
    """Where things live in a run folder (shared/DESIGN.md). Relative paths stay relative
    to the current directory, as in the curriculum; the runner launches steps from it."""

    run_dir: Path
    data_dirs: tuple[Path, Path]  # (train, val) clip folders the steps read

    @property
    def frozen_curriculum(self) -> Path:
        return self.run_dir / "curriculum.toml"

    def checkpoints_dir(self, track: str) -> Path:
        return self.run_dir / "checkpoints" / track

    def step_dir(self, step_id: str) -> Path:
        return self.run_dir / "steps" / step_id

    def events_file(self, step_id: str) -> Path:
        return self.step_dir(step_id) / "events.jsonl"

    def stdout_log(self, step_id: str) -> Path:
        return self.step_dir(step_id) / "stdout.log"

    def own_checkpoint(self, step: Step, kind: str) -> Path:
        """One of the step's own checkpoints (``latest``/``best``/``final``), named by its kind."""
        return self.checkpoints_dir(step.track) / step.checkpoint_name(kind)

    def final_checkpoint(self, step_id: str) -> Path:
        """Where the runner archives a finished step's ``final`` checkpoint: the GOP steps
        of a stage share one ``latest``, so the next step resumes from this copy."""
        return self.step_dir(step_id) / "final.pth"


def run_paths(cur: Curriculum) -> RunPaths:
    """The run folder layout; synthetic clips live in ``<run_dir>/data/{train,val}``."""
    run_dir = cur.run_dir
    if cur.data.synthetic is not None:
        data_dirs = (run_dir / "data" / "train", run_dir / "data" / "val")
    else:
        assert cur.data.train_dir is not None and cur.data.val_dir is not None
        data_dirs = (Path(cur.data.train_dir), Path(cur.data.val_dir))
    return RunPaths(run_dir=run_dir, data_dirs=data_dirs)


def planned_run_flags(cur: Curriculum, step: Step, steps: Sequence[Step]) -> dict[str, object]:
    """The run-dependent flags of ``step`` on a fresh run folder (its ``planned_start``):

    - fresh: none beyond the checkpoint folder and events file;
    - previous stage's best: ``--load_pretrained`` (weights only, fresh optimizer);
    - GOP increase / GOP optimisation: ``--resume`` the previous step's archived final
      checkpoint and ``--force_learning_rate`` the reset LR;
    - a later I-frame step: ``--load_pretrained`` the previous I-frame step's archived final;

    and for each artifact it reads (``Step.input_flags``), its producer's archived final.
    """
    paths = run_paths(cur)
    flags: dict[str, object] = {"checkpoint_dir": str(paths.checkpoints_dir(step.track)),
                                "events_file": str(paths.events_file(step.id))}
    start = step.planned_start
    if start is StartKind.PREVIOUS_STAGE_BEST:
        assert step.previous_stage is not None
        best = checkpoint_name(step.lambda_value, step.quality_index, step.previous_stage, "best")
        flags["load_pretrained"] = str(paths.checkpoints_dir(step.track) / best)
    elif start is StartKind.STAGE_LATEST_LR_RESET:
        flags["resume"] = str(paths.final_checkpoint(previous_step(step, steps).id))
        flags["force_learning_rate"] = step.reset_learning_rate
    elif start is StartKind.PREVIOUS_STEP_FINAL:
        flags["load_pretrained"] = str(paths.final_checkpoint(previous_step(step, steps).id))
    for artifact, flag in step.input_flags:
        source = producer(step, artifact, steps)
        if source is not None:
            flags[flag] = str(paths.final_checkpoint(source.id))
    return flags


def previous_step(step: Step, steps: Sequence[Step]) -> Step:
    """The step whose weights ``step`` continues: the producer of what it updates."""
    before = producer(step, step.produces, steps) if step.updates else None
    if before is None:
        raise ValueError(f"step {step.id} has no previous step in track {step.track}")
    return before


def accelerate_argv(cur: Curriculum, step: Step, run_flags: Mapping[str, object],
                    python: Optional[str] = None, *, gpu_ids: Optional[Sequence[int]] = None,
                    cpu_threads: Optional[int] = None, machines: Optional[MultiNode] = None) -> list[str]:
    """``accelerate launch <accelerate flags> -m <step.module> <trainer flags>``.

    ``python``: launch accelerate as ``python -m accelerate.commands.launch`` with that
    interpreter (accelerate then starts the trainer with the same one) instead of the
    ``accelerate`` found on PATH. ``gpu_ids`` and ``cpu_threads`` override the
    curriculum's settings (tracks run in parallel get one GPU and a share of the CPUs each).
    ``machines``: a multi-node launch (a Slurm job of several nodes): ``--num_machines``,
    ``--machine_rank``, ``--main_process_ip`` and ``--main_process_port`` from it, and
    ``--num_processes`` the total over the nodes (``[accelerate] num_processes`` per node).

    Every launcher setting is passed explicitly: accelerate warns about each default it
    fills in, and a bare launch sets ``OMP_NUM_THREADS=1``, which makes CPU training
    several times slower — hence ``--num_cpu_threads_per_process`` always (default: the
    available CPUs divided by the processes).
    """
    overlap = set(run_flags) & set(step.train_flags)
    if overlap:
        raise ValueError(f"run flags {sorted(overlap)} are already set by the curriculum")
    acc = cur.accelerate
    threads = cpu_threads or acc.cpu_threads_per_process or max(1, available_cpus() // acc.num_processes)
    gpus = list(gpu_ids) if gpu_ids is not None else acc.gpu_ids
    argv = [python, "-m", "accelerate.commands.launch"] if python else ["accelerate", "launch"]
    nodes = machines.count if machines is not None else 1
    argv += ["--num_processes", str(acc.num_processes * nodes), "--num_machines", str(nodes)]
    if machines is not None:
        argv += ["--machine_rank", machines.rank, "--main_process_ip", machines.main_ip,
                 "--main_process_port", str(machines.port)]
    argv += ["--mixed_precision", acc.mixed_precision, "--dynamo_backend", "no",
             "--num_cpu_threads_per_process", str(threads)]
    if gpus:
        argv += ["--gpu_ids", ",".join(str(g) for g in gpus)]
    cpu_processes = acc.device == "cpu" and acc.num_processes * nodes > 1
    if acc.device == "cpu" and not cpu_processes:
        argv.append("--cpu")
    elif acc.num_processes * nodes > 1:
        # accelerate's --cpu starts ONE process (its multi-CPU launch is mpirun's); its
        # torchrun launcher (--multi_gpu) starts them all, and the trainer's --force_cpu
        # connects them over gloo. Port 0 on one machine: a free one, so parallel tracks
        # never collide (several machines share the port the job chose).
        argv.append("--multi_gpu")
        if cpu_processes and machines is None:
            argv += ["--main_process_port", "0"]
    argv += ["-m", step.module, *render_flags(step.train_flags), *render_flags(run_flags),
             *render_flags(tracker_flags(cur, step)), *(["--force_cpu"] if cpu_processes else [])]
    return argv


def tracker_flags(cur: Curriculum, step: Step) -> dict[str, object]:
    """``[logging] trackers`` as the P-frame trainer's flags: the trackers, their folder
    (the run folder), the project (the curriculum's name), the run (the step id) and its
    group (the track). Not in the step's config hash: a tracker never re-runs a step."""
    if not cur.logging.trackers or step.module != PFRAME_MODULE:
        return {}
    return {"trackers": ",".join(cur.logging.trackers), "tracker_dir": str(cur.run_dir),
            "tracker_project": cur.name, "tracker_run": step.id, "tracker_group": step.track}


@dataclass(frozen=True)
class MultiNode:
    """The machines of a multi-node launch. ``rank`` and ``main_ip`` are argv words that
    the job script turns into shell variables (:mod:`dcvc_bench.runner.slurm_script`)."""

    count: int
    rank: str
    main_ip: str
    port: int


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a Slurm allocation), not
    every core of the machine: more threads than that only oversubscribe."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def render_flags(flags: Mapping[str, object]) -> list[str]:
    """``{name: value}`` -> ``["--name", "value", ...]`` (see the module docstring)."""
    argv: list[str] = []
    for name, value in flags.items():
        if value is None:
            continue
        if isinstance(value, bool):
            if name in NEGATABLE_FLAGS:
                argv.append(f"--{name}" if value else f"--no-{name}")
            elif value:
                argv.append(f"--{name}")
            continue
        argv += [f"--{name}", repr(value) if isinstance(value, float) else str(value)]
    return argv
