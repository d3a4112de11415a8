"""The run screen: the curriculum tree beside the selected step's progress, charts,
evaluations, checkpoints and log, all following the run folder as it grows.

A thread worker polls the model (stat-first, every :data:`POLL_S`) and posts
:class:`RunScreen.Changed`, which coalesces: a flood of train events is one repaint.
"""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Tree
from textual.worker import Worker, WorkerState, get_current_worker

from dcvc_bench.errors import UserError
from dcvc_bench.runner.lock import describe_owner, lock_owner
from dcvc_bench.tui.control import RunControl
from dcvc_bench.tui.model import SKIPPABLE, RunModel
from dcvc_bench.tui.views import GROUPS_BY_KEY, METRIC_GROUPS, PFRAME_GROUPS, StepRow, metric_groups
from dcvc_bench.tui.screens.confirm import ConfirmScreen
from dcvc_bench.tui.screens.evals import EvalScreen
from dcvc_bench.tui.titles import fit_title, refit
from dcvc_bench.tui.widgets.checkpoint_panel import CheckpointPanel
from dcvc_bench.tui.widgets.choice_bar import ChoiceBar
from dcvc_bench.tui.widgets.curriculum_tree import CurriculumTree
from dcvc_bench.tui.widgets.eval_table import EvalTable
from dcvc_bench.tui.widgets.log_pane import LogPane
from dcvc_bench.tui.widgets.metric_chart import MetricChart
from dcvc_bench.tui.widgets.progress_panel import ProgressPanel
from dcvc_bench.tui.widgets.run_banner import RunBanner

#: Seconds between two looks at the run folder (an event shows within ~this much).
POLL_S = 0.1
#: Seconds between two redraws of checkpoint ages when nothing else changes.
AGE_REFRESH_S = 10.0
#: What `k` does (the help screen shows it).
SKIP_HELP = ("Skip the highlighted step (pending, interrupted, failed...): asks first; a run in progress is "
             "stopped gracefully first, then it offers to continue. On a skipped step: run it again. "
             "Same as `dcvc-bench skip RUN_DIR STEP [--undo]`")
#: How long to wait for a stopped run to save and exit before giving up on a skip.
STOP_WAIT_S = 180.0
DECK = ("evals", "checkpoints", "log")  # the bottom panels (one at a time on small terminals)


class RunScreen(Screen[None]):
    BINDINGS = [
        Binding("r", "start", "Run", tooltip="Start or continue the run in the background (dcvc-bench run)"),
        Binding("s", "stop", "Stop", tooltip="Stop gracefully: the running step saves its latest checkpoint"),
        Binding("k", "skip", "Skip", tooltip=SKIP_HELP),
        Binding("e", "evals", "Evals", tooltip="Every evaluation of the run (best marked) and the latest "
                                               "`dcvc-bench eval` results"),
        Binding("d", "rd", "RD", tooltip="RD curves and BD-rates of the latest `dcvc-bench eval` (eval/rd.json)"),
        Binding("f", "toggle_follow", "Follow", tooltip="Jump to each step as it starts"),
        *(Binding(str(n), f"metric('{g.key}')", f"Chart {g.title}", show=False,
                  tooltip="" if g in PFRAME_GROUPS else "I-frame training steps (runs that train an I-frame codec)")
          for n, g in enumerate(METRIC_GROUPS, start=1)),
        Binding("t", "swap_chart", "Step/track chart", show=False,
                tooltip="On a narrow terminal: the step's chart or the whole track's"),
        Binding("v", "next_panel", "Next panel", show=False,
                tooltip="On a small terminal: evaluations, checkpoints or log"),
        Binding("z", "zoom", "Zoom panel", show=False,
                tooltip="The focused bottom panel (or the one shown) fills the screen, with every column; again: back"),
    ]

    class Changed(Message):
        """The model read something new from the run folder."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunScreen.Changed)

    class SkipDone(Message):
        """The skip worker finished: ``text`` says what happened (``ok``: it was done)."""

        def __init__(self, text: str, ok: bool, offer: bool, stopped: bool):
            super().__init__()
            self.text = text
            self.ok = ok
            self.offer = offer      # a run would have something to do: offer to continue
            self.stopped = stopped  # a run was stopped for the skip

    def __init__(self, model: RunModel, control: RunControl, poll_s: float = POLL_S):
        super().__init__()
        self.model = model
        self.control = control
        self.poll_s = poll_s
        self.selected = model.current_step() or model.steps[0].id
        self.groups = metric_groups(model.steps)
        self.metric = self.groups[0]
        self.follow = True
        # the running step last jumped to (none yet: a step that starts later is jumped to)
        self._followed = next((r.step.id for r in model.rows() if r.state == "running"), "")
        self.skipping: str | None = None  # the step being skipped (a run may be stopping first)

    def compose(self) -> ComposeResult:
        yield RunBanner(id="banner")
        with Horizontal(id="body"):
            yield CurriculumTree(self.model.rows(), id="tree")
            with Vertical(id="main"):
                yield ProgressPanel(id="progress")
                with Vertical(id="charts"):
                    yield ChoiceBar([(g.key, f"{n} {g.title}") for n, g in enumerate(self.groups, start=1)],
                                    self.metric.key, id="metric-bar")
                    with Horizontal(id="plots"):
                        yield MetricChart(id="step-chart")
                        yield MetricChart(id="track-chart")
                with Vertical(id="deck", classes="-show-evals"):
                    yield ChoiceBar([("evals", "Evaluations"), ("checkpoints", "Checkpoints"), ("log", "Log")],
                                    "evals", id="deck-bar", classes="deck-bar")
                    with Horizontal(classes="deck-row"):
                        yield EvalTable(one_step=True, id="eval-table").add_class("deck-panel", "evals-panel")
                        yield CheckpointPanel(id="checkpoint-panel").add_class("deck-panel", "checkpoints-panel")
                    yield LogPane(id="log-pane").add_class("deck-panel", "log-panel")
        yield Footer()

    def on_mount(self) -> None:
        fit_title(self.query_one("#tree"), "Curriculum")
        self.query_one("#tree").border_subtitle = "? legend"
        fit_title(self.query_one("#charts"), "Training")
        self._show_run()
        self._show_step()
        self.query_one(CurriculumTree).select_step(self.selected)
        self.query_one(CurriculumTree).focus()
        self.model.follow_log(self.selected)
        self.call_after_refresh(self.follow_files)  # paint first, then read
        self.set_interval(1.0, self._check_own_run)
        self.set_interval(AGE_REFRESH_S, self._show_checkpoints)
        self.call_after_refresh(refit, self)

    def on_resize(self) -> None:
        self._show_progress()  # compact or not
        self.call_after_refresh(refit, self)

    # -- reading ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="watch", exit_on_error=False, name="run folder watcher")
    def follow_files(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            if self.model.poll():
                self.post_message(self.Changed())
            time.sleep(self.poll_s)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "watch" and event.state is WorkerState.ERROR:
            self.notify(f"stopped following the run folder: {event.worker.error}", severity="error", timeout=30)

    def on_run_screen_changed(self, _: Changed) -> None:
        changes = self.model.take_changes()
        step = self.model.step(self.selected)
        mine = {s.id for s in self.model.steps if s.track == step.track}
        if changes.steps:
            self._show_run()
        elif changes.events:
            self._show_banner(self.model.rows())  # the curriculum ETA
        if changes.steps and self.follow:
            self._follow_running()
        if changes.steps or self.selected in changes.events:
            self._show_progress()
        if self.selected in changes.events:
            self._show_step_chart()
        if changes.events & mine:
            self._show_track_chart()
        if self.selected in changes.events:
            self.query_one(EvalTable).show_rows(self.model.eval_rows(step.track, self.selected))
        if changes.steps or step.track in changes.checkpoints:
            self._show_checkpoints()
        if changes.log:
            self.query_one(LogPane).show(*self.model.take_log())

    # -- showing ------------------------------------------------------------------------
    def _show_run(self) -> None:
        rows = self.model.rows()
        self.query_one(CurriculumTree).show_rows(rows)
        self._show_banner(rows)
        self.refresh_bindings()

    def _show_banner(self, rows: list[StepRow]) -> None:
        self.query_one(RunBanner).show(self.model.name, self.model.run_dir, rows, self._runner_text(),
                                       self.model.curriculum_eta())

    def _runner_text(self) -> str:
        owner = self.model.owner
        state = "stopping" if self.control.stopping(owner) else "running"
        if self.control.owns_live_run():
            return f"{state}: started here (pid {self.control.live_pid(owner)})"
        if owner is not None:
            return f"{state}: followed, run by {describe_owner(owner)}"
        return "no run in progress"

    def _show_step(self) -> None:
        """Everything about the selected step (after the selection changed)."""
        self._show_progress()
        self._show_step_chart()
        self._show_track_chart()
        step = self.model.step(self.selected)
        self.query_one(EvalTable).show_rows(self.model.eval_rows(step.track, self.selected))
        note = "BPP: uniform, per RVQ depth" if step.is_iframe else "★ lowest RD loss"
        phase = step.phase_id
        fit_title(self.query_one("#eval-table"), f"Evaluations · {step.id} · {note}",
                  f"Evaluations · {phase} · {note}", f"Evals · {phase} · {note}", f"Evals · {phase}")
        self._show_checkpoints()
        fit_title(self.query_one("#log-pane"), f"Log · {self.selected}/stdout.log", f"Log · {phase}/stdout.log",
                  f"Log · {phase}")

    def _show_progress(self) -> None:
        compact = self.has_class("-short") or self.has_class("-narrow")
        self.query_one(ProgressPanel).show(self.model.progress(self.selected), compact)

    def _show_step_chart(self) -> None:
        self.query_one("#step-chart", MetricChart).show(self.model.step_chart(self.selected, self.metric))

    def _show_track_chart(self) -> None:
        track = self.model.step(self.selected).track
        self.query_one("#track-chart", MetricChart).show(self.model.track_chart(track, self.metric))

    def _show_checkpoints(self) -> None:
        step = self.model.step(self.selected)
        track, phase = step.track, step.phase_id
        panel = self.query_one(CheckpointPanel)
        where = f"{track}/{self.model.checkpoint_prefix(track)}*"
        fit_title(panel, f"Checkpoints · written by {phase} · {where}", f"Checkpoints · {phase} · {where}",
                  f"Checkpoints · written by {phase}", f"Checkpoints · {phase}")
        panel.show(self.model.checkpoints(track, self.selected), self.model.next_start(track),
                   f"no checkpoint of {phase} on disk")

    def _follow_running(self) -> None:
        running = next((r.step.id for r in self.model.rows() if r.state == "running"), None)
        if running is not None and running != self._followed:
            self._followed = running
            self.query_one(CurriculumTree).select_step(running)

    def _check_own_run(self) -> None:
        code = self.control.ended()
        if code is None:
            return
        said = self.control.last_line()
        severity = "information" if code == 0 else "warning" if code == 130 else "error"
        self.notify(f"`dcvc-bench run` ended (exit code {code}): {said}", severity=severity, timeout=15)
        self._show_run()

    # -- selection ----------------------------------------------------------------------
    @on(Tree.NodeHighlighted, "#tree")
    def _highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        step_id = event.node.data
        if step_id is None or step_id == self.selected:
            return
        self.selected = step_id
        self.model.follow_log(step_id)
        self._show_step()
        self.refresh_bindings()  # `k` depends on the highlighted step

    @on(ChoiceBar.Chosen, "#metric-bar")
    def _metric_chosen(self, event: ChoiceBar.Chosen) -> None:
        group = GROUPS_BY_KEY[event.key]
        if group is not self.metric:
            self.metric = group
            self._show_step_chart()
            self._show_track_chart()

    @on(ChoiceBar.Chosen, "#deck-bar")
    def _panel_chosen(self, event: ChoiceBar.Chosen) -> None:
        deck = self.query_one("#deck")
        for name in DECK:
            deck.set_class(name == event.key, f"-show-{name}")
        self.call_after_refresh(refit, self)

    # -- actions ------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        live = self.control.live_pid(self.model.owner) is not None
        if action == "start":
            return None if live else True
        if action == "stop":
            return True if live and not self.control.stopping(self.model.owner) else None
        if action == "skip":
            if self.skipping is not None:
                return None
            return True if self.model.row(self.selected).state in (*SKIPPABLE, "skipped") else None
        return True

    def action_start(self) -> None:
        try:
            self.control.start()
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            return
        self.notify(f"started `dcvc-bench run` in the background; its output goes to {self.control.log_path}")
        self._show_run()

    def action_stop(self) -> None:
        try:
            self.control.stop(self.model.owner)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify("stopping: the running step saves its latest checkpoint, then the run exits")
        self._show_run()

    def action_evals(self) -> None:
        self.app.push_screen(EvalScreen(self.model))

    def action_rd(self) -> None:
        from dcvc_bench.tui.screens.rd import RDScreen

        self.app.push_screen(RDScreen(self.model))

    # -- skipping a step ------------------------------------------------------------------
    def action_skip(self) -> None:
        """Ask, stop the run if one is going, skip (or un-skip) with the runner's own
        function, then offer to continue."""
        step_id = self.selected
        row = self.model.row(step_id)
        undo = row.state == "skipped"
        owner = self.model.owner
        live = self.control.live_pid(owner) is not None
        if undo:
            question = Content.from_markup(
                "[b]$id[/] is skipped. Run it again?\nThe next run decides it as before it was skipped "
                "(and the steps of its track after it run again from it).", id=step_id)
        else:
            question = Content.from_markup(
                "Skip [b]$id[/] ($state)?\n`dcvc-bench run` will never launch it; [b]$next[/].",
                id=step_id, state=row.state, next=self.model.skip_preview(step_id))
        if live:
            who = "this TUI's run" if self.control.owns_live_run() else f"the run of {describe_owner(owner or {})}"
            question = question.append(Content.from_markup(
                "\n\n[$warning]$who is stopped first[/] (the running step saves its latest checkpoint).", who=who))

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            stopping = self.control.live_pid(self.model.owner) is not None
            if stopping:
                if not self.control.stopping(self.model.owner):
                    try:
                        self.control.stop(self.model.owner)
                    except UserError:
                        pass  # it ended meanwhile: nothing to wait for
                self.notify(f"stopping the run, then {'un-skipping' if undo else 'skipping'} {step_id}...")
            self.skipping = step_id
            self.refresh_bindings()
            self._skip_worker(step_id, undo, stopping)

        title = "Run a skipped step again" if undo else "Skip a step"
        self.app.push_screen(ConfirmScreen(title, question, "Run it again" if undo else "Skip it"), answered)

    @work(thread=True, exclusive=True, group="skip", exit_on_error=False, name="skip a step")
    def _skip_worker(self, step_id: str, undo: bool, stopped: bool) -> None:
        from dcvc_bench.runner.commands import skip_step  # the CLI's own function

        worker = get_current_worker()
        deadline = time.monotonic() + STOP_WAIT_S
        def running() -> bool:
            process = self.control.process  # the interface thread may clear it meanwhile
            return (process is not None and process.poll() is None) or lock_owner(self.model.run_dir) is not None

        while running():
            if worker.is_cancelled:
                return
            if time.monotonic() > deadline:
                self.post_message(self.SkipDone(f"the run did not stop within {STOP_WAIT_S:.0f} s; "
                                                f"{step_id} was not skipped", False, False, stopped))
                return
            time.sleep(0.05)
        try:
            text = skip_step(self.model.run_dir, step_id, undo)
        except UserError as exc:
            self.post_message(self.SkipDone(str(exc), False, False, stopped))
            return
        self.post_message(self.SkipDone(text, True, self.model.anything_to_run(), stopped))

    def on_run_screen_skip_done(self, message: SkipDone) -> None:
        self.skipping = None
        self.refresh_bindings()
        self.notify(message.text, severity="information" if message.ok else "error", timeout=10)
        # Whether a run is going, asked now (the model's owner is up to a second old).
        if not (message.ok and message.offer) or self.control.owns_live_run() or lock_owner(self.model.run_dir):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_start()

        verb = "Continue" if message.stopped else "Start"
        self.app.push_screen(ConfirmScreen(f"{verb} the run", Content(f"{verb} the run now ({self.control.curriculum})?"),
                                           verb, "Not now"), answered)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self._followed = ""
            self._follow_running()
        self.notify("following the running step" if self.follow else "not following the running step")

    def action_metric(self, key: str) -> None:
        if any(g.key == key for g in self.groups):  # 6, 7: I-frame charts, in runs that train one
            self.query_one("#metric-bar", ChoiceBar).active = key

    def action_swap_chart(self) -> None:
        self.query_one("#plots").toggle_class("-track")

    def action_next_panel(self) -> None:
        self.query_one("#deck-bar", ChoiceBar).cycle()

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        else:
            panels = [self.query_one("#eval-table"), self.query_one("#checkpoint-table"), self.query_one("#log-pane")]
            focused = self.focused if self.focused in panels else None
            shown = next((p for p in panels if p.display and p.parent is not None and p.parent.display
                          and (p.id != "checkpoint-table" or self.query_one(CheckpointPanel).display)), panels[0])
            target = focused or shown
            self.maximize(self.query_one(CheckpointPanel) if target.id == "checkpoint-table" else target,
                          container=False)
        self.call_after_refresh(refit, self)
