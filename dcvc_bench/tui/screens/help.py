"""Every key of the screen it was opened from, what it does and why one is disabled,
and what the step state glyphs mean. Built from the bindings, so it cannot go stale."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from dcvc_bench.curriculum.start_words import legend
from dcvc_bench.tui.format import STATE_GLYPHS

TREE_KEYS = (("↑ ↓ ← →", "Move", "In the curriculum tree: the panels show the highlighted step"),
             ("tab", "Focus", "Move between the tree, the tables and the log"))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, bindings: Iterable[Binding]):
        super().__init__()
        self.bindings = list(bindings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(self._keys())
            yield Static(_states())
            yield Static(_starts())

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Keys"
        self.query_one("#help").border_subtitle = "escape closes"

    def _keys(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for row in TREE_KEYS:
            table.add_row(*row)
        for binding in self.bindings:
            keys = ", ".join(self.app.get_key_display(Binding(k, binding.action)) for k in binding.key.split(","))
            table.add_row(keys, binding.description, binding.tooltip)
        return table


def _states() -> Content:
    parts = [Content.from_markup(f"[{'$' + colour if colour else 'dim'}]$glyph[/] $state", glyph=glyph, state=state)
             for state, (glyph, colour) in STATE_GLYPHS.items()]
    return Content.from_markup("\n[b]Step states[/]\n").append(Content("  ").join(parts))


def _starts() -> Content:
    """The tree's short start words (:mod:`dcvc_bench.curriculum.start_words`)."""
    parts = [Content.from_markup("[b]$short[/] $words", short=short, words=words) for short, words in legend()]
    return Content.from_markup("\n[b]How a step starts[/] (the tree's last word)\n").append(Content("\n").join(parts))
