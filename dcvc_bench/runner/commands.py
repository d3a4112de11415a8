"""Bodies of `dcvc-bench plan`, `run` and `status`: print, return the exit code.

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
    render_plan_commands,
    render_plan_table,
    run_paths,
)
from dcvc_bench.errors import UserError
from dcvc_bench.runner.display import make_display
from dcvc_bench.runner.resume import Action, Decision
from dcvc_bench.runner.run import Runner
from dcvc_bench.runner.status import inspect_run, is_run_folder, open_run, plan_statuses, render_status

#: Width of tables written to a file or pipe (rich would otherwise squeeze them to 80).
PIPE_WIDTH = 160


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def plan_command(curriculum: str | Path | None, as_json: bool = False) -> int:
    """The steps in order, how each starts, and its exact command. When the run folder
    exists, each step's status and what the next `run` does with it (and why), with the
    commands that `run` would launch."""
    cur = load_curriculum(curriculum)
    paths = run_paths(cur)
    steps = expand(cur, paths.data_dirs)
    rows = plan_rows(cur, steps)
    statuses = None
    if is_run_folder(paths.run_dir):
        view = inspect_run(cur, paths)
        statuses = plan_statuses(view)
        rows = [_as_decided(cur, row, decision) for row, decision in zip(rows, view.decisions)]
    if as_json:
        print(plan_json(rows, statuses))
        return 0
    console = _console()
    where = (f"run folder {paths.run_dir} exists: status and next action per step"
             if statuses is not None else f"run folder {paths.run_dir} (not created yet)")
    console.print(f"{cur.name}: {len(steps)} steps; {where}", markup=False, highlight=False)
    console.print(render_plan_table(rows, statuses))
    print(render_plan_commands(rows))  # plain: long commands must not be wrapped
    return 0


def _as_decided(cur: Curriculum, row: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """A plan row with the start and command that the next `run` would use."""
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


def run_command(curriculum: str | Path | None, gpus: str | None = None) -> int:
    """Run (or continue) a curriculum; see :mod:`dcvc_bench.runner.run`."""
    cur = load_curriculum(curriculum)
    gpu_ids = parse_gpus(gpus)
    hint = "dcvc-bench run" + (f" {shlex.quote(str(curriculum))}" if curriculum is not None else "") \
        + (f" --gpus {gpus}" if gpus else "")
    display = make_display(cur.name, sys.stdout)
    try:
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
