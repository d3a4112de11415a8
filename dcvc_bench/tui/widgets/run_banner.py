"""One line about the whole run: where it is, how far it got, who is running it, and
how long the rest of the curriculum should take."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.widgets import Static

from dcvc_bench.tui.format import duration
from dcvc_bench.tui.views import StepRow


class RunBanner(Static):
    def show(self, name: str, run_dir: Path, rows: list[StepRow], runner: str, eta: float | None) -> None:
        done = sum(r.state == "done" for r in rows)
        skipped = sum(r.state == "skipped" for r in rows)
        if eta == 0:
            when = "curriculum done"
        elif eta is None:
            when = "ETA after the first epoch"
        else:
            when = f"ETA ≈ {duration(eta)}"
        self.update(Content.from_markup(
            "[b]$name[/] [dim]$dir[/] · $done/$total steps done$skipped · $when · $runner",
            name=name, dir=str(run_dir), done=done, total=len(rows), when=when, runner=runner,
            skipped=f", {skipped} skipped" if skipped else ""))
