"""The checkpoints of a track on disk (latest/best/best_ema/global_best/final per stage,
and each finished step's archived final) and which one the next step starts from."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from dcvc_bench.tui.format import age, num, size
from dcvc_bench.tui.views import CheckpointRow
from dcvc_bench.tui.widgets.sized_table import fill

COLUMNS = ("", "file", "by", "GOP", "epoch", "loss", "size", "age")
NEXT = "▶"


class CheckpointPanel(Vertical):
    """A line naming the next start, and the files as a table (names without the prefix
    that all of them share, which the panel's title shows once)."""

    def compose(self) -> ComposeResult:
        yield Static(id="next-start")
        yield DataTable(id="checkpoint-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        fill(self.query_one(DataTable), COLUMNS, [])

    def show(self, rows: list[CheckpointRow], next_start: str) -> None:
        self.query_one("#next-start", Static).update(Text(next_start))
        fill(self.query_one(DataTable), COLUMNS, [_cells(row) for row in rows])


def _cells(row: CheckpointRow) -> list[Text]:
    mark = Text(NEXT, style="bold") if row.next_start else Text(" ")
    by = Text(row.problem, style="italic") if row.problem else Text(row.step)
    return [mark, Text(row.name, style="bold" if row.next_start else ""), by,
            Text(str(row.gop) if row.gop is not None else "-", justify="right"),
            Text(row.epoch, justify="right"), Text(num(row.loss, ".4g"), justify="right"),
            Text(size(row.size), justify="right"), Text(age(row.age_s), justify="right")]
