"""The evaluation view: every training-time evaluation of the run (all tracks, best row
marked) and, below, the latest `dcvc-bench eval` results (``eval/latest.json``)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from dcvc_bench.evaldoc import EvalResults
from dcvc_bench.evaldoc.views import EvalEntry
from dcvc_bench.tui.format import num
from dcvc_bench.tui.screens.history import HistoryScreen
from dcvc_bench.tui.titles import fit_title, refit
from dcvc_bench.tui.model import RunModel
from dcvc_bench.tui.views import EvalRow
from dcvc_bench.tui.widgets.bench_eval import BenchEvalPanel
from dcvc_bench.tui.widgets.eval_table import EvalTable

#: Seconds between two checks for new evaluations while this view is open.
REFRESH_S = 0.25


class EvalScreen(Screen[None]):
    BINDINGS = [Binding("escape,e", "app.pop_screen", "Back"),
                Binding("d", "rd", "RD curves", tooltip="RD curves and BD-rates of the latest `dcvc-bench eval`"),
                Binding("h", "history", "History", tooltip="Every `dcvc-bench eval` of the run, newest first: "
                                                           "pick the one shown below")]

    class Loaded(Message):
        """An evaluation of the history was read (in a worker thread)."""

        def __init__(self, entry: EvalEntry, results: EvalResults):
            super().__init__()
            self.entry = entry
            self.results = results

    def __init__(self, model: RunModel):
        super().__init__()
        self.model = model
        self._count = -1
        self._version = -1
        self.picked: EvalEntry | None = None  # None: eval/latest.json

    def compose(self) -> ComposeResult:
        yield Static(id="eval-summary")
        yield EvalTable(one_step=False, more_key="", id="all-evals")
        yield BenchEvalPanel(self.model.eval_hint(), id="bench-eval")
        yield Footer()

    def on_mount(self) -> None:
        fit_title(self.query_one("#all-evals"), f"Training evaluations · {self.model.name} · ★ lowest RD loss",
                  "Training evaluations · ★ lowest RD loss")
        self._title()
        self._refresh()
        self.set_interval(REFRESH_S, self._refresh)

    def on_resize(self) -> None:
        self.call_after_refresh(refit, self)

    def _refresh(self) -> None:
        count = self.model.eval_count
        if count != self._count:
            self._count = count
            rows = self.model.eval_rows()
            self.query_one(EvalTable).show_rows(rows)
            self.query_one("#eval-summary", Static).update(_summary(rows))
        version = self.model.eval_version
        if version != self._version:
            self._version = version
            if self.picked is None:
                self.query_one(BenchEvalPanel).show(self.model.eval_results())
            self._title()

    def _title(self) -> None:
        shown = f"eval/{self.picked.file}" if self.picked is not None else "eval/latest.json"
        count = len(self.model.eval_history())
        more = f" · h: {count} in the history" if count > 1 else ""
        fit_title(self.query_one("#bench-eval"), f"dcvc-bench eval · {self.model.run_dir}/{shown}{more}",
                  f"dcvc-bench eval · {shown}{more}", f"dcvc-bench eval · {shown}")

    def action_history(self) -> None:
        def picked(entry: EvalEntry | None) -> None:
            if entry is not None:
                self._load(entry)

        shown = self.picked.file if self.picked is not None else None
        self.app.push_screen(HistoryScreen(self.model.eval_history(), shown, "shows it"), picked)

    @work(thread=True, exclusive=True, group="eval-doc", exit_on_error=False, name="read an evaluation")
    def _load(self, entry: EvalEntry) -> None:
        results, _ = self.model.read_eval(entry)
        self.post_message(self.Loaded(entry, results))

    def on_eval_screen_loaded(self, message: Loaded) -> None:
        self.picked = message.entry
        self.query_one(BenchEvalPanel).show(message.results)
        self._title()

    def action_rd(self) -> None:
        from dcvc_bench.tui.screens.rd import RDScreen

        self.app.push_screen(RDScreen(self.model))


def _summary(rows: list[EvalRow]) -> Content:
    best = next((r for r in rows if r.best), None)
    if best is None:
        return Content("no evaluation during training yet")
    return Content(f"{len(rows)} training evaluations · best (lowest RD loss): {best.step_id} epoch {best.epoch} "
                   f"{best.model}: PSNR {num(best.psnr, '.2f')} dB, BPP {num(best.bpp, '.4f')}, "
                   f"MS-SSIM {num(best.ms_ssim, '.4f')}, RD loss {num(best.rd_loss, '.3f')}")
