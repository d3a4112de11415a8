"""Helpers of the TUI tests: the recorded smoke run (tests/tui/fixtures/smoke-run, made
by record_fixture.py from a real `dcvc-bench run`), a fixed clock, and driving the real
app headlessly. (A unique module name: tests/train has a ``helpers`` module.)

The recorded checkpoints are placeholders, so the loader makes every sidecar describe
its placeholder again (size) and gives each file the modification time recorded in its
sidecar: the run folder then reads exactly as the real one did, ages included.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Awaitable, Callable

from dcvc_bench.tui.app import BenchApp
from dcvc_bench.tui.model import RunModel

FIXTURE = Path(__file__).parent / "fixtures" / "smoke-run"
#: Ten minutes after the recorded run ended: every age and duration on screen is fixed.
NOW = json.loads((FIXTURE / "ledger.json").read_text())["updated"] + 600.0
#: Terminal sizes of the tests: a roomy one, the smallest supported, a large one.
WIDE, SMALL, LARGE = (120, 36), (80, 24), (200, 50)


def copy_run(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    for sidecar in dest.rglob("*.pth.json"):
        pth = sidecar.with_suffix("")
        meta = json.loads(sidecar.read_text())
        os.utime(pth, ns=(meta["file_mtime_ns"], meta["file_mtime_ns"]))
        meta["file_size"] = pth.stat().st_size
        sidecar.write_text(json.dumps(meta))
    return dest


def set_status(run_dir: Path, **states: str) -> None:
    """Rewrite ledger records, ``l2048_s4g3="interrupted"``: an unfinished step is
    recorded as started at NOW, after its checkpoints, so that it is not taken for a
    finished step whose end the runner did not record."""
    ledger = json.loads((run_dir / "ledger.json").read_text())
    for record in ledger["steps"]:
        status = states.get(record["id"].replace("-", "_"))
        if status is not None:
            record.update(status=status, epochs_done=0, started_at=NOW if status != "pending" else None)
    (run_dir / "ledger.json").write_text(json.dumps(ledger))


def make_app(target: Path, **kwargs: object) -> BenchApp:
    model = RunModel.open(target, clock=lambda: NOW)
    _count_quiet_polls(model)
    return BenchApp(model, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def _count_quiet_polls(model: RunModel) -> None:
    """Count the watcher's polls that found nothing new (``model.quiet_polls``): once there
    is one, the watcher has read the whole folder and posted everything it found."""
    poll = model.poll
    model.quiet_polls = 0  # type: ignore[attr-defined]

    def counting() -> bool:
        changed = poll()
        if not changed:
            model.quiet_polls += 1  # type: ignore[attr-defined]
        return changed

    model.poll = counting  # type: ignore[method-assign]


def drive(app: BenchApp, steps: Callable[..., Awaitable[None]], size: tuple[int, int] = WIDE) -> None:
    """Run the app headlessly and call ``steps(pilot)`` once it has read the run folder."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until_loaded(pilot)
            await steps(pilot)

    asyncio.run(main())


async def until(pilot, condition: Callable[[], bool], timeout: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    """Wait (bounded) until ``condition()``; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true after {timeout}s: {condition}")
        await pilot.pause(0.02)
    return time.monotonic() - start


async def until_loaded(pilot) -> None:  # type: ignore[no-untyped-def]
    """The watcher's first read is shown: evaluations listed, log filled, tables settled."""
    from textual.widgets import DataTable

    from dcvc_bench.tui.widgets.log_pane import LogPane

    screen = pilot.app.screen
    model = getattr(pilot.app, "model", None)
    if model is not None and hasattr(model, "quiet_polls"):
        await until(pilot, lambda: model.quiet_polls >= 1, timeout=20.0)
    if screen.query("#eval-table"):
        await until(pilot, lambda: screen.query_one("#eval-table", DataTable).row_count > 0)
        await until(pilot, lambda: len(screen.query_one("#log-pane", LogPane).texts) > 0)
    await settled(pilot)


async def settled(pilot) -> None:  # type: ignore[no-untyped-def]
    """Every table of every screen in the stack has sized its columns (DataTable does it
    when idle; a screenshot taken before would crop them). A modal on top still shows the
    screen behind it, so that screen's tables count too."""
    from textual.widgets import DataTable

    def state() -> tuple:
        tables = [t for screen in pilot.app.screen_stack for t in screen.query(DataTable)]
        return tuple((id(t), t.row_count, t._require_update_dimensions or bool(t._new_rows),
                      tuple(c.content_width for c in t.columns.values())) for t in tables)

    # Stable over a few polls of the run-folder watcher: under load its first read can
    # come in parts, and each part redraws a table (which sizes its columns when idle).
    deadline = time.monotonic() + 10.0
    last, stable = None, 0
    while stable < 3:
        if time.monotonic() > deadline:
            raise AssertionError("the tables on screen did not settle within 10 s")
        await pilot.pause(0.1)
        now = state()
        busy = any(flag for _, _, flag, _ in now)
        stable = stable + 1 if now == last and not busy else 0
        last = now
    await pilot.pause()
