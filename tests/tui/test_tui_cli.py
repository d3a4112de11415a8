"""`dcvc-bench tui` as a command, and the rule that the TUI never imports torch."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from dcvc_bench.cli import app


def test_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["tui", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a run folder" in lines[0]


def test_a_missing_target_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["tui", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such curriculum file or run folder; "
        "give one such as curricula/smoke.toml or runs/smoke"]


def test_the_tui_never_imports_torch_even_after_reading_a_run(run_dir):
    """In a fresh interpreter: import the app, open the run, read every file, run headless."""
    code = """
import sys
from dcvc_bench.tui.app import BenchApp
from dcvc_bench.tui.model import RunModel

app = BenchApp(RunModel.open("runs/smoke"))

async def look(pilot):
    await pilot.pause(0.5)
    await pilot.press("e", "escape", "3")
    app.exit()

app.run(headless=True, size=(80, 24), auto_pilot=look)
heavy = sorted(m for m in ("torch", "numpy", "cv2", "compressai") if m in sys.modules)
print("heavy:", heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "heavy: []" in out.stdout, out.stdout + out.stderr
