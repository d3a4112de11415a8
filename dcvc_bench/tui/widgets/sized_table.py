"""Fill a DataTable with columns sized from the rows being shown.

DataTable measures new rows when the app is next idle, so a paint in between (a busy
machine, a screenshot) shows every column at its label's width and cuts the cells.
Giving each column its width up front makes the first paint the final one."""

from __future__ import annotations

from typing import Sequence, Union

from rich.text import Text
from textual.widgets import DataTable

Label = Union[str, Text]


def _width(value: Label) -> int:
    return value.cell_len if isinstance(value, Text) else Text(value).cell_len


def fill(table: DataTable, labels: Sequence[Label], rows: Sequence[Sequence[Text]],
         keys: Sequence[str] | None = None) -> None:
    """Replace the table's columns and rows (with ``keys`` if given); the cursor stays on
    its row where it can."""
    cursor = table.cursor_row
    table.clear(columns=True)
    for i, label in enumerate(labels):
        width = max([_width(label), *(_width(row[i]) for row in rows)])
        table.add_column(label, width=width)
    for i, row in enumerate(rows):
        table.add_row(*row, key=None if keys is None else keys[i])
    if rows:
        table.move_cursor(row=min(max(cursor, 0), len(rows) - 1), scroll=False)
