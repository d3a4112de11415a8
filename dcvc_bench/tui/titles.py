"""Border titles that fit: a widget is given its title in a few wordings, longest first,
and shows the longest one its border has room for (never a title cut by "…"). Screens
call :func:`refit` after a resize or after showing a panel that was hidden."""

from __future__ import annotations

from rich.cells import cell_len
from textual.dom import DOMNode
from textual.widget import Widget

#: Border cells a title cannot use: a corner and a line with a space on each side.
FRAME = 6


def fit_title(widget: Widget, *wordings: str) -> None:
    """Give ``widget`` its title in ``wordings`` (longest first) and show the one that fits."""
    widget._title_wordings = wordings  # type: ignore[attr-defined]
    _fit(widget)


def fit_again(widget: Widget) -> None:
    """Choose ``widget``'s wording again (from its ``on_resize``)."""
    if getattr(widget, "_title_wordings", None):
        _fit(widget)


def refit(root: DOMNode) -> None:
    """Choose the wording again for every titled widget under ``root`` (after a resize)."""
    for widget in root.query("*"):
        if getattr(widget, "_title_wordings", None):
            _fit(widget)


def _fit(widget: Widget) -> None:
    wordings = widget._title_wordings  # type: ignore[attr-defined]
    room = widget.outer_size.width - FRAME
    if room <= 0:  # not laid out yet (or hidden): refit will choose
        widget.border_title = wordings[0]
        return
    widget.border_title = next((w for w in wordings if cell_len(w) <= room), wordings[-1])
