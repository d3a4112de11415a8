"""`dcvc-bench status RUN_DIR` and the run-folder half of `plan`: read-only views.

Everything here reads files (frozen curriculum, ledger, checkpoint sidecars, the lock's
owner) and never writes, locks or imports torch, so it answers at once and can watch a
folder that another terminal is running. The one question asked of anything else: when no
runner holds the folder and a step is recorded as running in a Slurm job, ``squeue``
says whether that job still runs (the runner is not the job).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoints import read_meta, sidecar_path
from dcvc_bench.curriculum import Curriculum, RunPaths, StartKind, Step, expand, load_curriculum, run_paths
from dcvc_bench.curriculum.start_words import start_words
from dcvc_bench.errors import UserError
from dcvc_bench.events import read_events
from dcvc_bench.health import collapses
from dcvc_bench.runner.display import eval_summary, fmt_duration, human_size
from dcvc_bench.runner.ledger import LEDGER_FILE, SKIPPED, Ledger, StepRecord
from dcvc_bench.runner.lock import describe_owner, lock_owner, pid_alive
from dcvc_bench.runner.resume import Action, Decision, decide, fingerprints

FROZEN_CURRICULUM = "curriculum.toml"


@dataclass(frozen=True)
class RunView:
    """A run folder as a reader sees it, with the decisions of a next `run`."""

    cur: Curriculum
    paths: RunPaths
    steps: list[Step]
    ledger: Ledger
    decisions: list[Decision]
    owner: dict[str, Any] | None   # the live `run` holding the folder, if any
    #: Slurm's state now of the jobs of steps recorded as running while no runner holds
    #: the folder (asked only then); a step absent here has no such job.
    live_jobs: dict[str, str] = field(default_factory=dict)

    def status_word(self, step: Step) -> str:
        """The ledger status, corrected for a dead runner: a step recorded as running
        with no live process is shown as interrupted; one whose Slurm job runs on
        without its runner says so."""
        record = self.ledger.get(step.id)
        if record is None:
            return "pending"
        if record.status == SKIPPED:
            return "skipped (by user)"
        if record.status == "running" and record.job_id:  # the trainer is the job, on its node
            if self.owner is not None:
                return "running"
            if step.id in self.live_jobs:
                return "running (its Slurm job, without a runner)"
            return "interrupted (runner gone)"
        if record.status == "running" and (self.owner is None or not pid_alive(record.pid)):
            return "interrupted (runner gone)"
        return record.status


def is_run_folder(run_dir: Path) -> bool:
    return (run_dir / FROZEN_CURRICULUM).is_file() or (run_dir / LEDGER_FILE).is_file()


def inspect_run(cur: Curriculum, paths: RunPaths) -> RunView:
    """The run folder at ``paths`` seen with curriculum ``cur`` (its frozen copy for
    `status`; the file given to `plan`, which may have been edited since)."""
    steps = expand(cur, paths.data_dirs)
    ledger = Ledger.load(paths.run_dir / LEDGER_FILE)
    owner = lock_owner(paths.run_dir)
    return RunView(cur, paths, steps, ledger, decide(steps, ledger, paths, fingerprints(cur, steps)), owner,
                   {} if owner is not None else _orphaned_jobs(ledger))


def _orphaned_jobs(ledger: Ledger) -> dict[str, str]:
    """``{step id: Slurm state}`` of the steps recorded as running in a Slurm job that is
    still pending or running (asked of ``squeue`` only for such steps)."""
    running = {r.id: r.job_id for r in ledger.records.values() if r.status == "running" and r.job_id}
    if not running:
        return {}
    from dcvc_bench.runner.slurm_jobs import SlurmError, job_state

    found = {}
    for step_id, job in running.items():
        try:
            state = job_state(job)
        except (SlurmError, OSError):
            continue
        if state is not None and state.active:
            found[step_id] = state.state
    return found


def open_run(run_dir: str | Path) -> RunView:
    """The run folder ``run_dir`` with its frozen curriculum. The folder may have been
    moved or be given from another directory: paths are taken from where it is."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; give one such as runs/smoke")
    if not (run_dir / FROZEN_CURRICULUM).is_file():
        if (run_dir / LEDGER_FILE).is_file():
            raise UserError(f"{run_dir} has a {LEDGER_FILE} but no {FROZEN_CURRICULUM}, so its steps "
                            "cannot be listed; run its curriculum again with `dcvc-bench run` to restore it")
        raise UserError(f"{run_dir} is not a run folder (no {FROZEN_CURRICULUM} or {LEDGER_FILE}); "
                        "give a folder that `dcvc-bench run` created, such as runs/smoke")
    cur = load_curriculum(run_dir / FROZEN_CURRICULUM)
    cur = cur.model_copy(update={"output_dir": str(run_dir.parent), "name": run_dir.name})
    return inspect_run(cur, run_paths(cur))


def step_cells(view: RunView, step: Step) -> dict[str, str]:
    """The status table's cells of one step."""
    record = view.ledger.get(step.id) or StepRecord(id=step.id)
    last_eval = record.last_eval
    return {
        "status": view.status_word(step),
        "epochs": f"{record.epochs_done}/{step.epochs}",
        "best loss": f"{record.best_loss:.4f}" if record.best_loss is not None else "-",
        "last eval": (f"ep {last_eval.get('epoch')}: {eval_summary(last_eval)}" if last_eval else "-"),
        "start": _start(step, record.start_kind),
        "Slurm job": slurm_cell(record, view.live_jobs.get(step.id)),
    }


def slurm_cell(record: StepRecord | None, live: str | None = None) -> str:
    """``12345 RUNNING``: the step's Slurm job and its state (``live``, asked of Slurm, for a
    job without its runner; else what the runner last recorded), ``-`` for a local step."""
    if record is None or not record.job_id:
        return "-"
    return f"{record.job_id} {live or record.scheduler_state or ''}".strip()


def orphan_lines(view: RunView) -> list[str]:
    """One line per Slurm job that runs on without its runner, with what to do."""
    return [f"step {step_id} runs on as Slurm job {view.ledger.get(step_id).job_id} ({state}) without its "  # type: ignore[union-attr]
            f"runner; `dcvc-bench run --launcher slurm` re-attaches to it (no second job), `scancel` stops it"
            for step_id, state in view.live_jobs.items()]


def _start(step: Step, kind: str | None) -> str:
    """The recorded start kind in words (the raw value when it is not one any more)."""
    known = {k.value: k for k in StartKind}
    return start_words(known[kind], step.reset_learning_rate) if kind in known else (kind or "-")


def latent_warnings(view: RunView) -> list[str]:
    """Each step's collapsed latents at its newest evaluation (:mod:`dcvc_bench.health`),
    read from its events, with what to check."""
    lines = []
    for step in view.steps:
        path = view.paths.events_file(step.id)
        if path.is_file():
            evals = [e for e in read_events(path) if e.get("event") == "eval"]
            lines += [f"{step.id}: {c.warning()}" for c in collapses(evals, step.stage)]
    return lines


def plan_statuses(view: RunView) -> dict[str, str]:
    """`plan`'s status column: what the ledger says and what the next run does."""
    out = {}
    for decision in view.decisions:
        record = view.ledger.get(decision.step.id)
        now = view.status_word(decision.step)
        if record is not None and record.status not in ("pending", "done", SKIPPED):
            now += f" {record.epochs_done}/{decision.step.epochs}"
        if decision.user_skipped:
            nxt = "not launched"
        elif decision.action is Action.SKIP:
            nxt = "skip"
        elif decision.missing:
            nxt = f"blocked: missing {decision.missing}"
        else:
            assert decision.start is not None
            nxt = f"run ({decision.reason}): {start_words(decision.start, decision.step.reset_learning_rate)}"
        out[decision.step.id] = f"{now} → {nxt}"
    return out


def checkpoint_rows(paths: RunPaths, tracks: list[str]) -> list[dict[str, Any]]:
    """Every checkpoint of every track folder, described by its sidecar."""
    rows = []
    now = time.time()
    for track in tracks:
        folder = paths.checkpoints_dir(track)
        for pth in sorted(folder.glob("*.pth")) if folder.is_dir() else ():
            try:
                st = pth.stat()
            except OSError:  # replaced while listing
                continue
            meta = read_meta(pth)
            if meta is None:
                state = "no sidecar" if not sidecar_path(pth).is_file() else "sidecar does not match"
                step_id, epoch, loss = state, "?", "?"
            else:
                step_id = str(meta.get("step_id") or "?")
                of = f"/{meta['epochs']}" if meta.get("epochs") is not None else ""
                epoch = f"{meta.get('epoch')}{of}" + (" final" if meta.get("finished") else "")
                loss = f"{meta['loss']:.4f}" if isinstance(meta.get("loss"), (int, float)) else "-"
            rows.append({"track": track, "file": pth.name, "step": step_id, "epoch": epoch, "loss": loss,
                         "size": human_size(st.st_size), "age": fmt_duration(now - st.st_mtime)})
    return rows


def render_status(view: RunView) -> list[Any]:
    """The status report as rich renderables: summary, steps, checkpoints, next run."""
    from rich.table import Table
    from rich.text import Text

    counts: dict[str, int] = {}
    for step in view.steps:
        word = view.status_word(step).split(" ")[0]
        counts[word] = counts.get(word, 0) + 1
    summary = ", ".join(f"{n} {word}" for word, n in counts.items())
    owner = (f"being run by {describe_owner(view.owner)}" if view.owner
             else "no run in progress")
    parts: list[Any] = [Text(f"run {view.cur.name} ({view.paths.run_dir}): {len(view.steps)} steps: "
                             f"{summary}; {owner}")]
    if view.ledger.warning:
        parts.append(Text(f"warning: {view.ledger.warning}"))

    steps = Table(title="steps", title_justify="left")
    slurm = any((r := view.ledger.get(s.id)) is not None and r.job_id for s in view.steps)
    headers = ("#", "step", "stage", "GOP", "λ", "status", "epochs", "best loss", "last eval", "start") \
        + (("Slurm job",) if slurm else ())
    for header in headers:
        steps.add_column(header, justify="right" if header in ("#", "stage", "GOP", "λ") else "left")
    for step in view.steps:
        cells = step_cells(view, step)
        steps.add_row(str(step.index + 1), step.id, step.stage_label, step.gop_label, step.lambda_label,
                      cells["status"], cells["epochs"], cells["best loss"], cells["last eval"], cells["start"],
                      *((cells["Slurm job"],) if slurm else ()))
    parts.append(steps)
    parts += [Text(line) for line in orphan_lines(view)]
    parts += [Text(f"warning: {line}") for line in latent_warnings(view)]

    rows = checkpoint_rows(view.paths, list(dict.fromkeys(s.track for s in view.steps)))
    if rows:
        table = Table(title="checkpoints", title_justify="left")
        for header in ("track", "file", "step", "epoch", "loss", "size", "age"):
            table.add_column(header, justify="right" if header in ("loss", "size", "age") else "left")
        for row in rows:
            table.add_row(*(row[k] for k in ("track", "file", "step", "epoch", "loss", "size", "age")))
        parts.append(table)
    else:
        parts.append(Text("checkpoints: none yet"))

    skips = [d.step.id for d in view.decisions if d.action is Action.SKIP and not d.user_skipped]
    by_user = [d.step.id for d in view.decisions if d.user_skipped]
    lines = ["next `run` would:"]
    if skips:
        lines.append(f"  skip {len(skips)} finished step(s): {', '.join(skips)}")
    if by_user:
        lines.append(f"  skip {len(by_user)} step(s) skipped by user: {', '.join(by_user)} "
                     f"(`dcvc-bench skip {view.paths.run_dir} STEP --undo` runs one again)")
    runs = [f"  {d.step.id}: {d.describe()}" for d in view.decisions if d.action is Action.RUN]
    lines += runs
    if not runs:
        lines.append("  nothing: every step is done" + (" or skipped" if by_user else ""))
    parts.append(Text("\n".join(lines)))
    return parts
