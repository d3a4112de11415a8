"""The run's evaluation history (every `dcvc-bench eval`, newest first: date, mode,
checkpoints, codecs) to pick one from; the eval and RD views open it. Enter picks,
escape goes back."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import DataTable

from dcvc_bench.evaldoc.views import EvalEntry
from dcvc_bench.tui.format import cell
from dcvc_bench.tui.titles import fit_title
from dcvc_bench.tui.widgets.sized_table import FitTable

COLUMNS = ("", "date", "mode", "checkpoints", "codecs", "file")
DROP_ORDER = (5, 4)  # the file name, then the codecs
#: Marks the evaluation shown now.
SHOWN = "▶"


class HistoryScreen(ModalScreen["EvalEntry | None"]):
    BINDINGS = [Binding("escape", "dismiss", "Back")]

    def __init__(self, entries: tuple[EvalEntry, ...], shown: str | None, purpose: str):
        super().__init__()
        self.entries = entries
        self.shown = shown          # the file of the evaluation on screen (None: eval/latest.json)
        self.purpose = purpose      # what enter does, for the title

    def compose(self) -> ComposeResult:
        yield FitTable(id="history", cell_padding=0, more_key="")

    def on_mount(self) -> None:
        table = self.query_one(FitTable)
        fit_title(table, f"Evaluations of this run · newest first · enter {self.purpose}",
                  f"Evaluations · enter {self.purpose}", "Evaluations")
        shown = self.shown if self.shown is not None else (self.entries[0].file if self.entries else None)
        rows = [[cell(SHOWN if e.file == shown else " ", False, "bold"), cell(e.when, False), cell(e.mode, False),
                 cell(", ".join(e.checkpoints) or "-", False), cell(", ".join(e.codecs) or "-", False),
                 cell(e.file, False, "dim")] for e in self.entries]
        table.show([cell(c, False) for c in COLUMNS], rows, keys=[e.file for e in self.entries], drop_order=DROP_ORDER)
        table.focus()
        if not self.entries:
            table.border_subtitle = "no evaluation yet: dcvc-bench eval --checkpoint RUN_DIR"

    @on(DataTable.RowSelected, "#history")
    def _picked(self, event: DataTable.RowSelected) -> None:
        self.dismiss(next((e for e in self.entries if e.file == event.row_key.value), None))
