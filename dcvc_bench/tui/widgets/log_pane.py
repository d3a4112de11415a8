"""The selected step's ``stdout.log``: its tail, then lines as they are written."""

from __future__ import annotations

from textual.widgets import Log

from dcvc_bench.tui.model import LOG_LINES


class LogPane(Log):
    def __init__(self, *, id: str | None = None):
        super().__init__(max_lines=LOG_LINES, auto_scroll=True, id=id)

    def show(self, reset: bool, lines: list[str]) -> None:
        if reset:
            self.clear()
        if lines:
            self.write_lines(lines)
