"""The selected step's ``stdout.log``: its tail, then lines as they are written. Long
lines (a launch command) wrap, so nothing is cut and nothing scrolls sideways."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from dcvc_bench.tui.model import LOG_LINES
from dcvc_bench.tui.titles import fit_again


class LogPane(RichLog):
    def __init__(self, *, id: str | None = None):
        super().__init__(max_lines=LOG_LINES, auto_scroll=True, wrap=True, markup=False, highlight=False, id=id)
        self.texts: list[str] = []  # the lines shown, unwrapped

    def on_resize(self) -> None:
        fit_again(self)

    def show(self, reset: bool, lines: list[str]) -> None:
        if reset:
            self.clear()
            self.texts = []
        for line in lines:
            self.write(Text(line))
        self.texts = (self.texts + lines)[-LOG_LINES:]
