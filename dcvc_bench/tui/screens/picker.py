"""What to open when `dcvc-bench tui` is given nothing: the curricula and run folders
of the current directory (and the embedded smoke curriculum)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from dcvc_bench.curriculum import DEFAULT_CURRICULUM
from dcvc_bench.errors import UserError
from dcvc_bench.runner.status import is_run_folder


def find_targets(root: Path) -> list[tuple[str, Path]]:
    """(what, path) of ``runs/*`` run folders and ``curricula/*.toml`` under ``root``, and
    of the embedded smoke curriculum (what `dcvc-bench run` runs without an argument)."""
    runs_dir = root / "runs"
    runs = sorted(d for d in runs_dir.iterdir() if d.is_dir() and is_run_folder(d)) if runs_dir.is_dir() else []
    curricula = sorted((root / "curricula").glob("*.toml"))
    found = [("run", d.relative_to(root)) for d in runs] + [("curriculum", c.relative_to(root)) for c in curricula]
    if not any(c.resolve() == DEFAULT_CURRICULUM.resolve() for c in curricula):
        found.append(("embedded", DEFAULT_CURRICULUM))
    return found


def _label(what: str, path: Path) -> str:
    return "smoke.toml (what `dcvc-bench run` runs by default)" if what == "embedded" else str(path)


class PickerScreen(Screen[None]):
    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        yield Static(Content(f"Open a run folder or a curriculum ({self.root / 'runs'}, {self.root / 'curricula'}, "
                             "or the embedded smoke curriculum)"), id="picker-title")
        options = [Option(Content(f"{what:<11}{_label(what, path)}"), id=str(path))
                   for what, path in find_targets(self.root)]
        yield OptionList(*options, id="picker")
        yield Footer()

    @on(OptionList.OptionSelected, "#picker")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        try:
            self.app.open_target(self.root / str(event.option.id))  # type: ignore[attr-defined]
        except UserError as exc:
            self.notify(str(exc), severity="error", timeout=15)
