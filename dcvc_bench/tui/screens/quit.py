"""Asked when quitting while this TUI's own run is going: stop it, or leave it running
in the background (it does not need the TUI; reopen the TUI later to follow it)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

STOP, KEEP = "stop", "keep"


class QuitScreen(ModalScreen[str | None]):
    """Dismissed with STOP, KEEP, or None (stay)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Stay"), Binding("s", "dismiss('stop')", "Stop it"),
                Binding("k", "dismiss('keep')", "Keep it running")]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static("The run this TUI started is still going.")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop it and quit (s)", id=STOP, variant="warning")
                yield Button("Keep it running (k)", id=KEEP, variant="primary")
                yield Button("Stay (esc)", id="stay")

    def on_mount(self) -> None:
        self.query_one("#quit-dialog").border_title = "Quit"

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (STOP, KEEP) else None)
