"""Fill a DataTable with columns sized from the rows being shown, and (:class:`FitTable`)
drop whole columns that do not fit rather than cut them.

DataTable measures new rows when the app is next idle, so a paint in between (a busy
machine, a screenshot) shows every column at its label's width and cuts the cells.
Giving each column its width up front makes the first paint the final one."""

from __future__ import annotations

from typing import Sequence, Union

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from dcvc_bench.tui.titles import fit_again
from textual.widgets import DataTable

Label = Union[str, Text]


def _width(value: Label) -> int:
    return value.cell_len if isinstance(value, Text) else Text(value).cell_len


def widths(labels: Sequence[Label], rows: Sequence[Sequence[Text]]) -> list[int]:
    """Each column's width: its widest cell or label."""
    return [max([_width(label), *(_width(row[i]) for row in rows)]) for i, label in enumerate(labels)]


def fill(table: DataTable, labels: Sequence[Label], rows: Sequence[Sequence[Text]],
         keys: Sequence[str] | None = None) -> None:
    """Replace the table's columns and rows (with ``keys`` if given); the cursor stays on
    its row where it can."""
    cursor = table.cursor_row
    table.clear(columns=True)
    for label, width in zip(labels, widths(labels, rows)):
        table.add_column(label, width=width)
    for i, row in enumerate(rows):
        table.add_row(*row, key=None if keys is None else keys[i])
    if rows:
        table.move_cursor(row=min(max(cursor, 0), len(rows) - 1), scroll=False)


def fitting(sizes: Sequence[int], room: int, padding: int, drop_order: Sequence[int]) -> list[int]:
    """The indexes of the columns kept when ``room`` cells are available: columns are
    dropped whole, in ``drop_order``, until the rest fits (each takes its width plus
    ``padding`` on both sides)."""
    kept = list(range(len(sizes)))
    for index in drop_order:
        if sum(sizes[i] + 2 * padding for i in kept) <= room:
            break
        if index in kept and len(kept) > 1:
            kept.remove(index)
    return kept


class FitTable(DataTable[Text]):
    """A table that never scrolls sideways: the columns that do not fit its width are left
    out (``drop_order`` says which go first; default: from the right), and its border's
    subtitle says how many and which key shows them (``more_key``). Rows below the fold
    are counted in the subtitle too (the table draws no scrollbar: see app.tcss)."""

    def __init__(self, *, more_key: str = "z", id: str | None = None, classes: str | None = None,
                 cell_padding: int = 1):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True, cell_padding=cell_padding)
        self.more_key = more_key
        self._labels: Sequence[Label] = ()
        self._rows: Sequence[Sequence[Text]] = ()
        self._keys: Sequence[str] | None = None
        self._drop: Sequence[int] | None = None
        self._kept: list[int] | None = None
        self.hidden: list[str] = []   # the labels of the columns left out
        self.note_on: Widget | None = self  # whose border subtitle says what is left out (None: Fitted only)

    class Fitted(Message):
        """The columns left out changed (``hidden``: their labels)."""

        def __init__(self, table: FitTable, hidden: list[str]):
            super().__init__()
            self.table = table
            self.hidden = hidden

        @property
        def control(self) -> FitTable:
            return self.table

    def show(self, labels: Sequence[Label], rows: Sequence[Sequence[Text]], keys: Sequence[str] | None = None,
             drop_order: Sequence[int] | None = None) -> None:
        self._labels, self._rows, self._keys, self._drop = labels, rows, keys, drop_order
        self._kept = None
        self._fit()

    def _fit(self) -> None:
        room = self.size.width
        sizes = widths(self._labels, self._rows)
        drop = self._drop if self._drop is not None else range(len(sizes) - 1, -1, -1)
        kept = fitting(sizes, room, self.cell_padding, drop) if room > 0 else list(range(len(sizes)))
        if kept != self._kept:
            self._kept = kept
            fill(self, [self._labels[i] for i in kept], [[row[i] for i in kept] for row in self._rows], self._keys)
            hidden = [str(self._labels[i]).strip() for i in range(len(sizes)) if i not in kept]
            if hidden != self.hidden:
                self.hidden = hidden
                self.post_message(self.Fitted(self, hidden))
        self._say()

    def _say(self) -> None:
        parts = []
        seen = max(self.size.height - 1, 0)  # one line is the header
        if self.size.height > 0 and self.row_count > seen:
            first = min(round(self.scroll_y) + 1, self.row_count)
            parts.append(f"rows {first}–{min(first + seen - 1, self.row_count)} of {self.row_count} ↕")
        if self.hidden and self.more_key:
            parts.append(f"{len(self.hidden)} more column{'s' * (len(self.hidden) != 1)}: {self.more_key}")
        elif self.hidden:
            parts.append(f"too narrow for {', '.join(self.hidden)}")
        if self.note_on is not None:
            self.note_on.border_subtitle = " · ".join(parts)

    def on_resize(self, _: events.Resize) -> None:
        self._fit()
        fit_again(self)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._say()
