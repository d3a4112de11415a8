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

#: Terminals with fewer rows get the one-line-per-key list.
SHORT_ROWS = 32
TREE_KEYS = (("↑ ↓ ← →", "Move", "In the curriculum tree: the panels show the highlighted step"),
             ("tab", "Focus", "Move between the tree, the tables and the log"))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, bindings: Iterable[Binding]):
        super().__init__()
        self.bindings = list(bindings)

    def compose(self) -> ComposeResult:
        short = self.app.size.height < SHORT_ROWS  # one line per key: the whole list fits 80x24
        with VerticalScroll(id="help"):
            yield Static(self._keys(short))
            yield Static(_states(short))
            yield Static(_starts(short))

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "Keys"
        short = self.app.size.height < SHORT_ROWS
        self.query_one("#help").border_subtitle = "escape closes" + (" · a taller terminal says more" if short else "")

    def _keys(self, short: bool) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        if not short:
            table.add_column(ratio=1)
        for row in TREE_KEYS:
            table.add_row(*row[:2 if short else 3])
        charts = [b for b in self.bindings if b.action.startswith("metric(")]
        for binding in self.bindings:
            if binding in charts[1:]:
                continue
            keys = ", ".join(self.app.get_key_display(Binding(k, binding.action)) for k in binding.key.split(","))
            description, tooltip = binding.description, binding.tooltip
            if binding is charts[0] if charts else False:  # the chart keys: one row
                keys = f"{charts[0].key}–{charts[-1].key}" if len(charts) > 1 else keys
                names = [b.description.removeprefix("Chart ") for b in charts]
                description, tooltip = "Chart", " · ".join(names)
                if short:
                    description = f"Chart {' · '.join(names)}"
            table.add_row(*(keys, description) if short else (keys, description, tooltip))
        return table


def _states(short: bool) -> Content:
    parts = [Content.from_markup(f"[{'$' + colour if colour else 'dim'}]$glyph[/] $state", glyph=glyph, state=state)
             for state, (glyph, colour) in STATE_GLYPHS.items()]
    return Content.from_markup("[b]Step states[/]: " if short else "\n[b]Step states[/]\n").append(
        Content("  ").join(parts))


def _starts(short: bool) -> Content:
    """The tree's short start words (:mod:`dcvc_bench.curriculum.start_words`)."""
    parts = [Content.from_markup("[b]$word[/] $words", word=word, words=words) for word, words in legend()]
    if short:
        return Content.from_markup("[b]Start words[/] (tree): ").append(Content(" · ").join(parts))
    return Content.from_markup("\n[b]How a step starts[/] (the tree's last word)\n").append(Content("\n").join(parts))
