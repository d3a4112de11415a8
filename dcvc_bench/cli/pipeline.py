"""The commands of a curriculum's run: `plan`, `run`, `status`, `skip`, `tui`, `doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcvc_bench.cli.app import app, guard


@app.command("plan", epilog="Example: dcvc-bench plan curricula/full.toml --json")
def plan(
    curriculum: Path = typer.Argument(..., help="Curriculum TOML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the steps as JSON."),
    launcher: Optional[str] = typer.Option(None, "--launcher", metavar="local|slurm",
                                           help="Plan for this launcher (overrides [launcher] kind); slurm prints each job script."),
) -> None:
    """The steps in order, how each starts, its exact accelerate command; status and next action if run before."""

    def body() -> int:
        from dcvc_bench.runner.commands import plan_command

        return plan_command(curriculum, as_json, launcher)

    guard(body)


@app.command("run", epilog="Example: dcvc-bench run curricula/full.toml --gpus 0,1,2,3")
def run(
    curriculum: Optional[Path] = typer.Argument(None, help="Curriculum TOML file (default: the embedded smoke curriculum)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Run tracks in parallel, one GPU each, e.g. 0,1,2,3."),
    launcher: Optional[str] = typer.Option(None, "--launcher", metavar="local|slurm",
                                           help="Where steps run (overrides [launcher] kind): local subprocesses or Slurm jobs."),
) -> None:
    """Run or continue a curriculum: done steps are skipped, an interrupted one resumes. Ctrl-C saves and stops."""

    def body() -> int:
        from dcvc_bench.runner.commands import run_command

        return run_command(curriculum, gpus, launcher)

    guard(body)


@app.command("status", epilog="Example: dcvc-bench status runs/smoke")
def status(run_dir: Path = typer.Argument(..., help="A run folder, such as runs/smoke.")) -> None:
    """A run folder's steps, epochs, best loss, last eval, checkpoints, and what the next run would do."""

    def body() -> int:
        from dcvc_bench.runner.commands import status_command

        return status_command(run_dir)

    guard(body)


@app.command("skip", epilog=("Examples:\n\n"
                             "  dcvc-bench skip runs/smoke l2048-s1g3         # never launch it\n\n"
                             "  dcvc-bench skip runs/smoke l2048-s1g3 --undo  # run it again"))
def skip(
    run_dir: Path = typer.Argument(..., help="A run folder, such as runs/smoke."),
    step_id: str = typer.Argument(..., help="The step's id as `dcvc-bench status` lists it, e.g. l2048-s1g3."),
    undo: bool = typer.Option(False, "--undo", help="Stop skipping the step: the next run decides it as before."),
) -> None:
    """Skip a step: `run` never launches it, and the next step of its track starts as if it were absent. Refused while a run holds the folder."""

    def body() -> int:
        from dcvc_bench.runner.commands import skip_command

        return skip_command(run_dir, step_id, undo)

    guard(body)


@app.command("tui", epilog="Example: dcvc-bench tui runs/smoke")
def tui(target: Optional[Path] = typer.Argument(
        None, help="A curriculum .toml or a run folder (default: pick one from curricula/ and runs/).")) -> None:
    """The Textual workbench: the curriculum tree, live losses, BPP/PSNR, evaluations and
    checkpoints; start, stop and follow runs (also one started in another terminal)."""

    def body() -> int:
        import gc

        gc.disable()  # startup allocates much and frees little; the app turns it back on once painted
        from dcvc_bench.tui.app import run_tui

        return run_tui(target)

    guard(body)


@app.command("doctor", epilog=("Examples:\n\n"
                               "  dcvc-bench doctor                                  # before the first run\n\n"
                               "  dcvc-bench doctor runs --curriculum curricula/full.toml"))
def doctor(
    run_dir: Path = typer.Argument(Path("runs"), help="The folder runs will be written into (its free disk is checked)."),
    curriculum: Optional[Path] = typer.Option(None, "--curriculum", help="Check the weight files this curriculum "
                                              "loads (default: the embedded smoke curriculum, as `run`)."),
    ffmpeg: Optional[str] = typer.Option(None, "--ffmpeg", help="The ffmpeg executable to check (default: ffmpeg on PATH)."),
    min_free_gb: float = typer.Option(5.0, "--min-free-gb", help="Free disk (GiB) the run folder needs."),
) -> None:
    """Check the environment a run needs: torch build and device, OpenCV, accelerate, free disk,
    SpyNet / CompressAI zoo / LPIPS / FID weight files, ffmpeg and its x265/x264 encoders.

    One line per check (ok or missing, and what to do). Exit code 0 when everything a
    training run needs is there, 1 otherwise; ffmpeg, LPIPS and FID are optional (eval
    skips them or says why)."""

    def body() -> int:
        from dcvc_bench.doctor import doctor_command

        return doctor_command(run_dir, curriculum, ffmpeg, min_free_gb, echo=typer.echo)

    guard(body)
