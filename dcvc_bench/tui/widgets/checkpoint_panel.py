"""The checkpoints the highlighted step wrote that are still on disk (the stage files it
wrote last, its archived final) and which file the next step of its track starts from."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from dcvc_bench.tui.format import age, cell, num, size
from dcvc_bench.tui.titles import fit_again
from dcvc_bench.tui.views import CheckpointRow
from dcvc_bench.tui.widgets.sized_table import FitTable

COLUMNS = ("", "file", "GOP", "epoch", "loss", "size", "age")
#: Which columns go first when the panel is too narrow.
DROP_ORDER = (5, 6, 2, 3, 4)  # size, age, GOP, epoch, loss
NEXT = "▶"
LABELS = [cell(c, c not in ("", "file")) for c in COLUMNS]  # no cell padding: each cell starts with a space


class CheckpointPanel(Vertical):
    """A line naming the next start, and the files as a table (names without the prefix
    that all of them share, which the panel's title shows once)."""

    ALLOW_MAXIMIZE = True  # z

    def compose(self) -> ComposeResult:
        yield Static(id="next-start")
        yield FitTable(id="checkpoint-table", cell_padding=0)

    def on_resize(self) -> None:
        fit_again(self)

    def on_mount(self) -> None:
        table = self.query_one(FitTable)
        table.note_on = self
        table.show(LABELS, [])

    def show(self, rows: list[CheckpointRow], next_start: str, empty: str = "") -> None:
        text = next_start if rows or not empty else f"{empty} · {next_start}"
        self.query_one("#next-start", Static).update(Text(text))
        self.query_one(FitTable).show(LABELS, [_cells(row) for row in rows], drop_order=DROP_ORDER)


def _cells(row: CheckpointRow) -> list[Text]:
    mark = cell(NEXT if row.next_start else " ", False, "bold")
    name = cell(row.name, False, "bold" if row.next_start else "")
    if row.problem:
        name.append(f" ({row.problem})", style="italic")
    return [mark, name, cell(str(row.gop) if row.gop is not None else "-"), cell(row.epoch),
            cell(num(row.loss, ".4g")), cell(size(row.size)), cell(age(row.age_s))]
