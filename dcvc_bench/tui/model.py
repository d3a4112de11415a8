"""A run folder as view data: step states, metric series, evaluations, checkpoints, ETAs.

The TUI never computes anything from files itself: the watcher thread calls
:meth:`RunModel.poll` (stat-first, cheap when nothing changed) and the widgets ask the
model for plain dataclasses. States and "how a step starts" are the runner's own answers
(:mod:`dcvc_bench.runner.status` and :mod:`~dcvc_bench.runner.resume`), so the TUI,
`status` and `plan` never disagree. Time comes from an injectable clock, so ages are
reproducible in tests. Pure Python: importing this module never imports torch or Textual.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from dcvc_bench.checkpoints import checkpoint_name
from dcvc_bench.curriculum import StartKind, Step, load_curriculum, run_paths
from dcvc_bench.curriculum.start_words import start_phrase
from dcvc_bench.errors import UserError
from dcvc_bench.evaldoc import (EVAL_INDEX, EVAL_KIND, EVAL_LATEST, INDEX_KIND, EVAL_RD, RD_KIND, VERSION, EvalResults, RDView, as_float,
                                as_int, read_eval_results, read_rd_view)
from dcvc_bench.health import collapses
from dcvc_bench.runner.ledger import LEDGER_FILE, SKIPPED, Ledger
from dcvc_bench.runner.lock import lock_owner
from dcvc_bench.runner.resume import Action, Decision, decide, fingerprints
from dcvc_bench.runner.status import FROZEN_CURRICULUM, RunView, inspect_run, open_run
from dcvc_bench.tui import eta
from dcvc_bench.tui.rows import (checkpoint_row, checkpoint_sort_key, codebook_lines, eval_rows, start_source,
                                 step_row)
from dcvc_bench.evaldoc.views import EvalEntry, read_eval_history
from dcvc_bench.tui.readers import CheckpointShelf, JsonDoc, LogTail, StepEvents, read_eval_entry, stat_key
from dcvc_bench.tui.views import (CODEBOOK_GROUP, Changes, Chart, CheckpointRow, EvalRow, MetricGroup,
                                  StepProgress, StepRow)

Clock = Callable[[], float]
#: How often the lock file's owner is checked (a pid check, so not on every poll).
OWNER_CHECK_S = 1.0
#: Lines of a step's log kept for the log pane.
LOG_LINES = 500
#: States of a step that `k` may skip (a running one after the run is stopped).
SKIPPABLE = ("pending", "interrupted", "failed", "diverged", "will re-run", "running")


class RunModel:
    """A run folder (or the folder a curriculum will run into), read incrementally."""

    def __init__(self, view: RunView, source: Path, clock: Clock = time.time):
        #: The curriculum file `dcvc-bench run` is given to start or continue this run.
        self.source = source
        self.clock = clock
        self._view = view
        self._lock = threading.Lock()
        paths = view.paths
        self._events = {s.id: StepEvents(paths.events_file(s.id)) for s in view.steps}
        self._shelves = {
            track: CheckpointShelf(paths.checkpoints_dir(track),
                                   {s.id: paths.final_checkpoint(s.id) for s in view.steps if s.track == track})
            for track in self.tracks}
        self._ledger_key = stat_key(paths.run_dir / LEDGER_FILE)
        self._owner_checked = 0.0
        self._log: LogTail | None = None
        self._log_new: list[str] = []
        self._log_reset = False
        self._changes = Changes()
        self._eval_doc = JsonDoc(paths.run_dir / EVAL_LATEST, EVAL_KIND, VERSION)
        self._rd_doc = JsonDoc(paths.run_dir / EVAL_RD, RD_KIND, VERSION)
        self._index_doc = JsonDoc(paths.run_dir / EVAL_INDEX, INDEX_KIND, VERSION)
        self._eval_dir_key: tuple[int, int, int] | None | bool = False
        self._history: tuple[EvalEntry, ...] = ()
        self._eval_results = EvalResults(self._eval_doc.path)
        self._rd_view = RDView(self._rd_doc.path)
        self._eval_version = 0

    @classmethod
    def open(cls, target: str | os.PathLike[str], clock: Clock = time.time) -> RunModel:
        """A curriculum file (its run folder need not exist yet) or a run folder; anything
        else is a one-line :class:`UserError`."""
        path = Path(target)
        if path.is_dir():
            return cls(open_run(path), path / FROZEN_CURRICULUM, clock)
        if path.is_file():
            if path.suffix != ".toml":
                raise UserError(f"{path} is neither a curriculum (.toml) nor a run folder")
            cur = load_curriculum(path)
            return cls(inspect_run(cur, run_paths(cur)), path, clock)
        raise UserError(f"{path}: no such curriculum file or run folder; "
                        "give one such as curricula/smoke.toml or runs/smoke")

    # -- what it is ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._view.cur.name

    @property
    def run_dir(self) -> Path:
        return self._view.paths.run_dir

    @property
    def steps(self) -> list[Step]:
        return self._view.steps

    @property
    def tracks(self) -> list[str]:
        return list(dict.fromkeys(s.track for s in self._view.steps))

    @property
    def owner(self) -> dict[str, Any] | None:
        """The live `run` process holding the folder's lock (this TUI's or another's)."""
        return self._view.owner

    # -- reading (the watcher thread) ---------------------------------------------------
    def poll(self) -> bool:
        """Read what changed on disk; True when the interface has something to show."""
        changes = Changes()
        for step_id, events in self._events.items():
            batch = events.read()
            if batch is not None and (batch[0] or batch[1]):
                with self._lock:
                    events.apply(*batch)
                changes.events.add(step_id)
        changes.checkpoints = {track for track, shelf in self._shelves.items() if shelf.poll()}
        ledger_key = stat_key(self.run_dir / LEDGER_FILE)
        now = time.monotonic()
        if ledger_key != self._ledger_key or changes.checkpoints:
            self._ledger_key = ledger_key
            self._view = inspect_run(self._view.cur, self._view.paths)
            self._owner_checked = now
            changes.steps = True
        elif now - self._owner_checked >= OWNER_CHECK_S:
            self._owner_checked = now
            owner = lock_owner(self.run_dir)
            if owner != self._view.owner:
                self._view = dataclasses.replace(self._view, owner=owner)
                changes.steps = True
        changes.log = self._poll_log()
        changes.eval_files = self._poll_eval_files()
        with self._lock:
            self._changes.merge(changes)
        return bool(changes)

    def _poll_eval_files(self) -> bool:
        """Parse eval/latest.json and eval/rd.json again when they change (here, in the
        watcher thread: a big result document never holds up the interface)."""
        changed = False
        if self._eval_doc.poll():
            results = read_eval_results(self._eval_doc.path, self._eval_doc.doc, missing=self._eval_doc.missing, problem=self._eval_doc.problem)
            with self._lock:
                self._eval_results = results
            changed = True
        if self._rd_doc.poll():
            rd = read_rd_view(self._rd_doc.path, self._rd_doc.doc, missing=self._rd_doc.missing, problem=self._rd_doc.problem)
            with self._lock:
                self._rd_view = rd
            changed = True
        eval_dir = self.run_dir / "eval"
        dir_key = stat_key(eval_dir)  # a document added or removed (the fallback lists names)
        if self._index_doc.poll() or dir_key != self._eval_dir_key:
            self._eval_dir_key = dir_key
            history = read_eval_history(eval_dir, self._index_doc.doc)
            with self._lock:
                self._history = history
            changed = True
        if changed:
            with self._lock:
                self._eval_version += 1
        return changed

    def _poll_log(self) -> bool:
        tail = self._log
        batch = tail.poll() if tail is not None else None
        if batch is None:
            return False
        with self._lock:
            if tail is not self._log:  # another step was selected meanwhile
                return False
            restart, lines = batch
            if restart:
                self._log_new, self._log_reset = [], True
            self._log_new = (self._log_new + lines)[-LOG_LINES:]
        return True

    def take_changes(self) -> Changes:
        with self._lock:
            changes, self._changes = self._changes, Changes()
        return changes

    # -- the log pane -------------------------------------------------------------------
    def follow_log(self, step_id: str) -> None:
        """Show this step's stdout.log from now on (read by the next poll)."""
        with self._lock:
            self._log = LogTail(self._view.paths.stdout_log(step_id))
            self._log_new, self._log_reset = [], True

    def take_log(self) -> tuple[bool, list[str]]:
        """(clear the pane first?, lines to add) since the last call."""
        with self._lock:
            reset, new = self._log_reset, self._log_new
            self._log_reset, self._log_new = False, []
        return reset, new

    # -- steps ----------------------------------------------------------------------------
    def rows(self) -> list[StepRow]:
        view = self._view
        return [step_row(view, step, decision) for step, decision in zip(view.steps, view.decisions)]

    def step(self, step_id: str) -> Step:
        return next(s for s in self._view.steps if s.id == step_id)

    def row(self, step_id: str) -> StepRow:
        return next(r for r in self.rows() if r.step.id == step_id)

    def current_step(self) -> str | None:
        """The step to look at first: the running one, else the next to run, else the last."""
        rows = self.rows()
        for wanted in (("running",), ("interrupted", "failed", "diverged", "will re-run", "pending")):
            found = next((r for r in rows if r.state in wanted), None)
            if found is not None:
                return found.step.id
        return rows[-1].step.id if rows else None

    def progress(self, step_id: str) -> StepProgress:
        row = self.row(step_id)
        step = row.step
        with self._lock:
            ev = self._events[step_id]
            last, first = ev.last_train, ev.attempt_first_train
            starts, ends = list(ev.starts), list(ev.ends)
            latest = [c for c in ev.checkpoints if c.get("kind") == "latest"]
            warnings = tuple(c.warning() for c in collapses(ev.evals, step.stage))
        row = _named_source(row, starts)
        ipe = as_int((last or {}).get("iters_per_epoch")) or as_int((starts[-1] if starts else {}).get("iters_per_epoch"))
        epoch, it = 0, 0
        if row.state == "done":
            epoch, it = step.epochs, ipe or 0
        elif last is not None:
            epoch, it = min((as_int(last.get("epoch")) or 0) + 1, step.epochs), as_int(last.get("iter")) or 0
        elif row.state == "running" and starts:  # started, no iteration reported yet
            epoch = min((as_int(starts[-1].get("start_epoch")) or 0) + 1, step.epochs)
        eta_epoch = eta_step = None
        spi = eta.seconds_per_iter(first, last)
        if row.state == "running" and spi is not None and ipe:
            eta_epoch = max(ipe - it, 0) * spi
            epoch_s = eta.epoch_seconds(starts, latest) or ipe * spi
            eta_step = eta_epoch + max(step.epochs - epoch, 0) * epoch_s
        took = eta.took(starts, ends, self.clock() if row.state == "running" else None)
        return StepProgress(row, epoch, it, ipe, eta_epoch, eta_step, took, spi, last, warnings)

    def curriculum_eta(self) -> float | None:
        """Seconds until every step is done (0 when none is left; None before anything
        was measured). Measured: seconds per epoch per GOP frame of the latest attempt,
        evaluation and checkpoints included; the running step uses its own speed. Tracks
        run in parallel as the runner runs them: the I-frame steps first, then as many
        tracks at once as are running now (``--gpus``), or as Slurm's ``max_parallel``
        allows, whichever is more (:func:`~dcvc_bench.tui.eta.makespan`)."""
        view = self._view
        left = [(r, d) for r, d in zip(self.rows(), view.decisions)
                if d.action is Action.RUN or r.state == "running"]
        if not left:
            return 0.0
        rate = self._seconds_per_gop_epoch()
        first, per_track = 0.0, {}
        for row, decision in left:
            seconds = None
            if row.state == "running":
                progress = self.progress(row.step.id)
                if progress.eta_step_s is not None:
                    seconds = progress.eta_step_s
                    if rate is None and progress.iters_per_epoch and progress.seconds_per_iter:
                        rate = progress.iters_per_epoch * progress.seconds_per_iter / row.step.gop
            if seconds is None:
                if rate is None:
                    return None
                resumes = decision.start is StartKind.RESUME_OWN_LATEST or row.state == "running"
                epochs_left = row.step.epochs - (row.epochs_done if resumes else 0)
                seconds = max(epochs_left, 0) * row.step.gop * rate
            if row.step.is_iframe:
                first += seconds
            else:
                per_track[row.step.track] = per_track.get(row.step.track, 0.0) + seconds
        running = len({r.step.track for r, _ in left if r.state == "running" and not r.step.is_iframe})
        return eta.makespan(first, list(per_track.values()), max(running, view.cur.launcher.parallel_tracks))

    def _seconds_per_gop_epoch(self) -> float | None:
        """Seconds per epoch per GOP frame of the most recent attempt that finished an
        epoch (from its step_start to its last latest checkpoint or step_end)."""
        newest, rate = float("-inf"), None
        with self._lock:
            for step in self._view.steps:
                ev = self._events[step.id]
                marks = sorted(ev.starts + ev.ends + [c for c in ev.checkpoints if c.get("kind") == "latest"],
                               key=lambda e: as_float(e.get("t")) or 0)
                begun = None
                for mark in marks:
                    if mark.get("event") == "step_start":
                        begun = mark
                        continue
                    if begun is None:
                        continue
                    epochs = (as_int(mark.get("epoch")) or 0) - (as_int(begun.get("start_epoch")) or 0)
                    t = as_float(mark.get("t")) or 0
                    seconds = t - (as_float(begun.get("t")) or 0)
                    if epochs > 0 and seconds > 0 and t > newest:
                        newest, rate = t, seconds / (epochs * step.gop)
        return rate

    # -- charts ---------------------------------------------------------------------------
    def step_chart(self, step_id: str, group: MetricGroup) -> Chart:
        with self._lock:
            events = self._events[step_id]
            if group.key == CODEBOOK_GROUP:
                lines = codebook_lines(events.codebooks)
            else:
                lines = {name: events.series.points(name) for name in group.fields}
        return Chart(f"{group.title} · {step_id}", lines, y_format=group.y_format)

    def track_chart(self, track: str, group: MetricGroup) -> Chart:
        """The track's steps one after another (x: epochs since the track began), with a
        mark where each stage starts."""
        lines: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in group.fields}
        marks: list[tuple[float, str]] = []
        offset, stage = 0.0, None
        with self._lock:
            for step in (s for s in self._view.steps if s.track == track):
                if step.stage != stage and offset > 0:
                    marks.append((offset, f"S{step.stage}"))
                stage = step.stage
                events = self._events[step.id]
                parts = (codebook_lines(events.codebooks) if group.key == CODEBOOK_GROUP
                         else {name: events.series.points(name) for name in group.fields})
                for name, (xs, ys) in parts.items():
                    line = lines.setdefault(name, ([], []))
                    line[0].extend(offset + x for x in xs)
                    line[1].extend(ys)
                offset += step.epochs
        return Chart(f"{group.title} · track {track}", lines, tuple(marks), group.y_format, x_max=offset)

    # -- evaluations ----------------------------------------------------------------------
    @property
    def eval_count(self) -> int:
        """How many eval events were read (a cheap 'anything new?' for the eval view)."""
        with self._lock:
            return sum(len(ev.evals) for ev in self._events.values())

    def eval_rows(self, track: str | None = None, step_id: str | None = None) -> list[EvalRow]:
        """Every evaluation (normal and EMA) of one step, a track, or the run; the row with
        the lowest RD loss among them is marked best."""
        rows: list[EvalRow] = []
        with self._lock:
            for step in self._view.steps:
                if (track is None or step.track == track) and (step_id is None or step.id == step_id):
                    for event in self._events[step.id].evals:
                        rows.extend(eval_rows(step, event))
        ranked = [r for r in rows if r.rd_loss is not None]
        if ranked:
            best = min(ranked, key=lambda r: r.rd_loss)  # type: ignore[arg-type, return-value]
            rows[rows.index(best)] = dataclasses.replace(best, best=True)
        return rows

    # -- `dcvc-bench eval` --------------------------------------------------------------------
    @property
    def eval_version(self) -> int:
        """Changes whenever eval/latest.json or eval/rd.json was read again."""
        with self._lock:
            return self._eval_version

    def eval_results(self) -> EvalResults:
        with self._lock:
            return self._eval_results

    def rd_view(self) -> RDView:
        with self._lock:
            return self._rd_view

    def eval_history(self) -> tuple[EvalEntry, ...]:
        """Every `dcvc-bench eval` of the run, newest first (eval/index.json, or the
        documents' names when there is no index)."""
        with self._lock:
            return self._history

    def read_eval(self, entry: EvalEntry) -> tuple[EvalResults, RDView]:
        """One evaluation of the history, read now (from a worker thread)."""
        return read_eval_entry(self.run_dir / "eval", entry)

    def eval_hint(self) -> str:
        """The command that writes the eval results of this run."""
        return f"dcvc-bench eval --checkpoint {self.run_dir}"

    # -- skipping -------------------------------------------------------------------------
    def skip_preview(self, step_id: str) -> str:
        """What skipping ``step_id`` would change: how the next step of its track would
        start (the runner's own decision, on a copy of the ledger)."""
        view = self._view
        records = [dataclasses.replace(r) for r in view.ledger.records.values()]
        ledger = Ledger(view.ledger.path, records)
        ledger.ensure(step_id).status = SKIPPED
        decisions = decide(view.steps, ledger, view.paths, fingerprints(view.cur, view.steps))
        step = self.step(step_id)
        nxt = next((d for d in decisions if d.step.track == step.track and d.step.index > step.index
                    and d.action is Action.RUN), None)
        if nxt is None:
            return f"no later step of {step.track} is left to run"
        text = f"{nxt.step.id} then starts from {nxt.how()}"
        return text + (f"; cannot start: missing {nxt.missing}" if nxt.missing else "")

    def anything_to_run(self) -> bool:
        """Whether a `run` would launch a step now (read from the folder, not the cache)."""
        view = inspect_run(self._view.cur, self._view.paths)
        return any(d.action is Action.RUN and not d.missing for d in view.decisions)

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_prefix(self, track: str) -> str:
        """The part of the file names shared by a track's checkpoints."""
        step = next(s for s in self._view.steps if s.track == track)  # the track's λ and quality
        if step.is_iframe:
            return f"iframe_{step.i_frame_type}_"
        return checkpoint_name(step.lambda_value, step.quality_index, 1, "latest").split("stage_")[0]

    def checkpoints(self, track: str, step_id: str | None = None) -> list[CheckpointRow]:
        """The checkpoints of a track on disk, or those ``step_id`` wrote (its sidecars say
        so; a file whose sidecar is not trusted is shown with every step of its stage)."""
        if step_id is not None:
            step = self.step(step_id)
            return [r for r in self.checkpoints(track) if r.step == step.phase_id
                    or (r.problem and (step.stage is None or r.stage in (None, step.stage)))]
        files = self._shelves[track].files
        prefix = self.checkpoint_prefix(track)
        source = self._next_decision(track)
        source_path = start_source(source) if source is not None else None
        order = {s.id: s.index for s in self._view.steps}
        now = self.clock()
        rows = [(checkpoint_sort_key(f, order), checkpoint_row(f, prefix, now, source_path)) for f in files]
        return [row for _, row in sorted(rows, key=lambda pair: pair[0])]

    def next_start(self, track: str) -> str:
        """Which step of the track runs next and what it starts from, in words."""
        decision = self._next_decision(track)
        if decision is None:
            return "every step of this track is done"
        row = step_row(self._view, decision.step, decision)
        if row.state == "running":
            return f"{decision.step.id} is running"
        text = f"next: {decision.step.id} starts from {decision.how()}"
        return text + (f"; cannot start: missing {decision.missing}" if decision.missing else "")

    def _next_decision(self, track: str) -> Decision | None:
        return next((d for d in self._view.decisions if d.step.track == track and d.action is Action.RUN), None)


def _named_source(row: StepRow, starts: list[dict[str, Any]]) -> StepRow:
    """A step that started (not one about to: its decision names the file already) says
    which file it started from, as its last ``step_start`` recorded it."""
    kinds = {k.value: k for k in StartKind}
    source = starts[-1].get("resumed_from") if starts and row.state not in ("pending", "will re-run") else None
    if row.start not in kinds or not isinstance(source, str) or row.start == StartKind.FRESH.value:
        return row
    path = Path(source)
    name = f"{path.parent.name}/final.pth" if path.name == "final.pth" else path.name
    return dataclasses.replace(row, start_text=start_phrase(kinds[row.start], row.step.reset_learning_rate, name))
