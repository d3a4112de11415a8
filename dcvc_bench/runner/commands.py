"""Bodies of `dcvc-bench plan`, `run`, `status` and `skip`: print, return the exit code.

The CLI (``dcvc_bench/cli.py``) only parses arguments and calls these inside its
UserError guard, so everything a command does is testable without Typer.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from dcvc_bench.curriculum import (
    Curriculum,
    accelerate_argv,
    expand,
    load_curriculum,
    plan_json,
    plan_rows,
    plan_summary,
    render_plan_commands,
    render_plan_table,
    run_paths,
)
from dcvc_bench.curriculum.command import planned_run_flags
from dcvc_bench.curriculum.iframe_checks import check_iframe_inputs, iframe_warnings
from dcvc_bench.curriculum.preflight import check_run_inputs, run_input_problems
from dcvc_bench.errors import UserError
from dcvc_bench.runner.display import make_display
from dcvc_bench.runner.launcher import run_groups
from dcvc_bench.runner.ledger import SKIPPED, STATUSES
from dcvc_bench.runner.lock import describe_owner, ledger_lock, lock_holder, pid_alive
from dcvc_bench.runner.resume import Action, Decision
from dcvc_bench.runner.run import Runner
from dcvc_bench.runner.status import RunView, inspect_run, is_run_folder, open_run, plan_statuses, render_status

#: Width of tables written to a file or pipe (rich would otherwise squeeze them to 80).
PIPE_WIDTH = 160


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def plan_command(curriculum: str | Path | None, as_json: bool = False, launcher: str | None = None) -> int:
    """The steps in order, how each starts, and its exact command. When the run folder
    exists, each step's status and what the next `run` does with it (and why), with the
    commands that `run` would launch. With the Slurm launcher, each step's job script."""
    cur = with_launcher(load_curriculum(curriculum), launcher)
    check_iframe_inputs(cur)  # a codec that cannot be trained as written: refused here too
    for problem in run_input_problems(cur) + iframe_warnings(cur):  # plan only shows; `run` refuses the first
        print(f"warning: {problem}", file=sys.stderr)
    paths = run_paths(cur)
    steps = expand(cur, paths.data_dirs)
    rows = plan_rows(cur, steps)
    statuses = None
    if is_run_folder(paths.run_dir):
        view = inspect_run(cur, paths)
        statuses = plan_statuses(view)
        rows = [_as_decided(cur, row, decision) for row, decision in zip(rows, view.decisions)]
    if cur.launcher.kind == "slurm":
        flags = {s.id: planned_run_flags(cur, s, steps) for s in steps}
        if statuses is not None:
            flags.update({d.step.id: d.run_flags(paths) for d in view.decisions if d.action is Action.RUN})
        rows = [_with_job(cur, row, step, flags[step.id]) for row, step in zip(rows, steps)]
    if as_json:
        print(plan_json(rows, statuses))
        return 0
    console = _console()
    where = (f"run folder {paths.run_dir} exists: status and next action per step"
             if statuses is not None else f"run folder {paths.run_dir} (not created yet)")
    console.print(f"{cur.name}: {plan_summary(cur, steps)}; {where}", markup=False, highlight=False,
                  soft_wrap=True)
    console.print(render_plan_table(rows, statuses))
    print(render_plan_commands(rows))  # plain: long commands must not be wrapped
    if cur.launcher.kind == "slurm":
        tracks = len({s.track for s in steps if not s.is_iframe})
        print(f"\n# Slurm: each step one job; {tracks} track{'s' * (tracks != 1)}, up to "
              f"{min(cur.launcher.parallel_tracks, tracks)} of them with a job in flight at once "
              f"([launcher.slurm] max_parallel = {cur.launcher.slurm.max_parallel})"
              + ("; the I-frame steps first, one at a time" if any(s.is_iframe for s in steps) else ""))
    for row in rows:
        if "job_script" in row:
            print(f"\n# ---- {row['id']}: Slurm job script (sbatch {' '.join(row['sbatch_options'])} job.sh)\n"
                  f"{row['job_script']}", end="")
    return 0


def _with_job(cur: Curriculum, row: dict[str, Any], step: Any, flags: dict[str, Any]) -> dict[str, Any]:
    """A plan row with the step's Slurm job script (for the run flags of the row's start);
    its ``argv`` and ``command`` become the job's accelerate launch line."""
    from dcvc_bench.runner.slurm_script import build_job

    job = build_job(cur, step, flags, run_paths(cur))
    return {**row, "argv": list(job.argv), "command": shlex.join(job.argv), "job_script": job.script,
            "sbatch_options": list(job.options)}


def _as_decided(cur: Curriculum, row: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """A plan row with the start and command that the next `run` would use."""
    if decision.user_skipped:
        return {**row, "start_description": f"skipped by user, never launched (planned: {row['start_description']})"}
    if decision.action is Action.SKIP:
        return {**row, "start_description": f"done, skipped (planned: {row['start_description']})"}
    assert decision.start is not None
    argv = accelerate_argv(cur, decision.step, decision.run_flags(run_paths(cur)))
    return {**row, "start": decision.start.value, "argv": argv, "command": shlex.join(argv),
            "start_description": decision.how()}


def parse_gpus(text: str | None) -> list[int] | None:
    """``0,1,2,3`` -> [0, 1, 2, 3]; one line naming the problem otherwise."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise UserError(f"--gpus: expected GPU ids such as 0,1,2,3, got {text!r}")
    ids = [int(p) for p in parts]
    if len(set(ids)) != len(ids):
        raise UserError(f"--gpus: an id is repeated in {text!r}")
    return ids


def with_launcher(cur: Curriculum, launcher: str | None) -> Curriculum:
    """The curriculum with ``[launcher] kind`` replaced by ``--launcher`` (when given)."""
    if launcher is None:
        return cur
    if launcher not in ("local", "slurm"):
        raise UserError(f"--launcher: expected local or slurm, got {launcher!r}")
    return cur.model_copy(update={"launcher": cur.launcher.model_copy(update={"kind": launcher})})


def run_command(curriculum: str | Path | None, gpus: str | None = None, launcher: str | None = None) -> int:
    """Run (or continue) a curriculum; see :mod:`dcvc_bench.runner.run`."""
    cur = with_launcher(load_curriculum(curriculum), launcher)
    check_run_inputs(cur)  # before the run folder or any process exists
    check_iframe_inputs(cur)
    gpu_ids = parse_gpus(gpus)
    if cur.launcher.kind == "slurm":
        if gpu_ids:
            raise UserError("--gpus: Slurm gives each job its GPUs; use [launcher.slurm] gpus_per_node instead")
        from dcvc_bench.runner.slurm_checks import check_slurm

        check_slurm(cur, python=sys.executable)  # before anything is submitted
    hint = "dcvc-bench run" + (f" {shlex.quote(str(curriculum))}" if curriculum is not None else "") \
        + (f" --gpus {gpus}" if gpus else "") + (f" --launcher {launcher}" if launcher else "")
    display = make_display(cur.name, sys.stdout)
    try:
        for line in iframe_warnings(cur):
            display.message(f"warning: {line}")
        return Runner(cur, display, gpu_ids, rerun_hint=hint).run()
    finally:
        display.close()


def status_command(run_dir: str | Path) -> int:
    """Steps, epochs, best loss, last eval, checkpoints on disk, and the next run's plan."""
    view = open_run(run_dir)
    console = _console()
    for part in render_status(view):
        console.print(part)
    return 0


def skip_step(run_dir: str | Path, step_id: str, undo: bool = False) -> str:
    """Mark a step of a run folder as skipped by the user (``undo``: as it was before),
    and say what happened in one line. The TUI calls this too.

    Refused (:class:`UserError`, one line) while a `run` holds the folder (stop it first:
    the runner would not see the change), for an id that is not a step of the run, for a
    step that is done (nothing left to skip), and for ``undo`` of a step that is not
    skipped. The folder's lock is held while the ledger is rewritten, so a `run` cannot
    start in between. What a skip does to the rest of the track:
    :mod:`dcvc_bench.runner.resume`.
    """
    run_dir = Path(run_dir)
    view = open_run(run_dir)
    ids = [s.id for s in view.steps]
    if step_id not in ids:
        raise UserError(f"{run_dir} has no step {step_id!r}{_did_you_mean(step_id, ids)}; its steps are "
                        f"{_some(ids)} (`dcvc-bench status {run_dir}` lists them)")
    _refuse_while_running(run_dir)
    with ledger_lock(run_dir):
        view = open_run(run_dir)  # again, under the lock: what a run that just ended wrote
        ledger = view.ledger
        if ledger.warning:
            raise UserError(f"cannot change the ledger: {ledger.warning}")
        step = next(s for s in view.steps if s.id == step_id)
        decision = next(d for d in view.decisions if d.step.id == step_id)
        record = ledger.get(step_id)
        status = record.status if record is not None else "pending"
        if undo:
            if status != SKIPPED:
                raise UserError(f"step {step_id} is not skipped (it is {view.status_word(step)}); nothing to undo")
            restored = record.skipped_from if record and record.skipped_from in STATUSES else "pending"
            restored = "pending" if restored in (SKIPPED, "running") else restored
            ledger.update(step_id, status=restored, skipped_from=None, message="skip undone")
            again = next(d for d in open_run(run_dir).decisions if d.step.id == step_id)
            return f"{step_id}: no longer skipped; the next `dcvc-bench run` would {again.describe()}"
        if status == SKIPPED:
            return f"{step_id} is already skipped; `dcvc-bench skip {run_dir} {step_id} --undo` runs it again"
        if decision.action is Action.SKIP:
            raise UserError(f"step {step_id} is done; there is nothing left to skip")
        alive = [pgid for pgid, sid in run_groups(run_dir).items() if sid == step_id]
        if status == "running" and record is not None and pid_alive(record.pid):
            alive.insert(0, record.pid)
        if alive:
            raise UserError(f"step {step_id} is recorded as {status} and its trainer (pid {alive[0]}) is still "
                            f"alive; run `dcvc-bench run` to let it save and stop, or stop it, then skip")
        ledger.ensure(step_id, track=step.track, epochs=step.epochs)
        ledger.update(step_id, status=SKIPPED, skipped_from="interrupted" if status == "running" else status,
                      pid=None, message="skipped by user")
    follow = _next_start(open_run(run_dir), step_id)
    return f"{step_id}: skipped (by user); `dcvc-bench run` never launches it; {follow}"


def _next_start(view: RunView, step_id: str) -> str:
    """How the step after ``step_id`` in its track starts now, in words."""
    step = next(s for s in view.steps if s.id == step_id)
    nxt = next((d for d in view.decisions if d.step.track == step.track and d.step.index > step.index
                and d.action is Action.RUN), None)
    if nxt is None:
        return "no later step of its track is left to run"
    return f"next: {nxt.step.id} starts from {nxt.how()}"


def _refuse_while_running(run_dir: Path) -> None:
    owner = lock_holder(run_dir)
    if owner is not None:
        raise UserError(f"{run_dir} is being run by {describe_owner(owner)}; stop it first (Ctrl-C in its "
                        "terminal, or `s` in `dcvc-bench tui`), then skip")


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _some(ids: list[str], limit: int = 6) -> str:
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def skip_command(run_dir: str | Path, step_id: str, undo: bool = False) -> int:
    """`dcvc-bench skip RUN_DIR STEP_ID [--undo]`."""
    print(skip_step(run_dir, step_id, undo))
    return 0
