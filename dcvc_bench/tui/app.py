"""`dcvc-bench tui`: the Textual workbench of a curriculum run.

The app only reads the run folder (events, ledger, checkpoint sidecars, logs) and starts
or signals `dcvc-bench run` as a separate process, so it can open a finished run, follow
one that another terminal started, or start one itself. No torch, ever: the first paint
must come in well under a second.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from dcvc_bench.tui.control import RunControl
from dcvc_bench.tui.model import Clock, RunModel
from dcvc_bench.tui.screens.help import HelpScreen
from dcvc_bench.tui.screens.picker import PickerScreen
from dcvc_bench.tui.screens.quit import STOP, QuitScreen
from dcvc_bench.tui.screens.run import POLL_S, RunScreen


class BenchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "dcvc-bench"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [Binding("q", "quit", "Quit", tooltip="Asks first when the run this TUI started is still going"),
                Binding("question_mark", "help", "Keys", key_display="?", tooltip="This list")]

    def __init__(self, model: RunModel | None = None, *, root: Path = Path("."), clock: Clock = time.time,
                 run_command: list[str] | None = None, poll_s: float = POLL_S):
        super().__init__()
        self.model = model
        self.root = root
        self.clock = clock
        self.run_command = run_command
        self.poll_s = poll_s

    def on_mount(self) -> None:
        if self.model is not None:
            self.push_screen(self._run_screen(self.model))
        else:
            self.push_screen(PickerScreen(self.root))
        self.call_after_refresh(_after_first_paint)

    def open_target(self, target: Path) -> None:
        """Open a run folder or curriculum chosen in the picker (UserError when neither)."""
        self.model = RunModel.open(target, self.clock)
        self.switch_screen(self._run_screen(self.model))

    def _run_screen(self, model: RunModel) -> RunScreen:
        return RunScreen(model, RunControl(model.run_dir, model.source, self.run_command), self.poll_s)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen([*self.BINDINGS, *self.screen.BINDINGS]))  # type: ignore[list-item]

    async def action_quit(self) -> None:
        run = next((s for s in self.screen_stack if isinstance(s, RunScreen)), None)
        if run is None or not run.control.owns_live_run():
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice is None:
                return
            if choice == STOP:
                run.control.stop(run.model.owner)
            self.exit()

        self.push_screen(QuitScreen(), answered)


def _after_first_paint() -> None:
    """Startup objects live as long as the app: keep them out of every later collection
    (less work per collection, so less idle CPU), and collect again (the CLI turned
    collection off while importing, which made the first paint ~15% faster)."""
    gc.freeze()
    gc.enable()


def run_tui(target: Path | None) -> int:
    """Open ``target`` (a curriculum .toml or a run folder; None: pick one). A target that
    is neither fails here, before the app starts, with one line."""
    model = RunModel.open(target) if target is not None else None
    BenchApp(model).run()
    return 0
