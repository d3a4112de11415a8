"""The real `dcvc-bench tui RUN_DIR` in a real terminal (tmux) at 80x24, 120x36 and 200x50
on the recorded smoke run: nothing on screen is cut with "…" (panel titles, tree labels,
the step panel, table cells), and no scrollbar is drawn inside a table or the log.

The three sizes run at once, each on its own private tmux server (its own socket: one
server's sessions share a default size), which the test stops at the end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SIZES = ((80, 24), (120, 36), (200, 50))
#: Textual's scrollbar thumbs end in these partial blocks (vertical ▁..▇, horizontal ▏..▉).
SCROLLBAR_GLYPHS = set("▁▂▃▄▅▆▇▉▊▋▌▍▎▏")

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux); the real-terminal check needs it")


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout


def _capture(socket: str) -> list[str]:
    return _tmux(socket, "capture-pane", "-p", "-t", "tui").splitlines()


def _command(run_dir: Path) -> list[str]:
    """The installed `dcvc-bench` beside this interpreter, else the same entry point (under
    `env -u COLUMNS -u LINES`: Textual would take those over the terminal's own size)."""
    script = Path(sys.executable).parent / "dcvc-bench"
    if script.is_file():
        return [str(script), "tui", str(run_dir)]
    return [sys.executable, "-c", "from dcvc_bench.cli import main; main()", "tui", str(run_dir)]


def _loaded(text: str) -> bool:
    """The watcher's first read is on screen: the tree's states and the step's evaluations."""
    return "9/9 steps done" in text and "★" in text and "✓ s4g3-opt" in text


def test_every_title_label_and_line_is_whole_and_no_scrollbar_sits_in_a_panel(run_dir: Path, tmp_path: Path):
    names = {size: f"dcvc-bench-test-{tmp_path.name}-{size[0]}x{size[1]}" for size in SIZES}
    screens: dict[tuple[int, int], list[str]] = {}
    try:
        for (width, height), name in names.items():
            _tmux(name, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", str(width), "-y", str(height),
                  "-c", str(Path.cwd()), "env", "-u", "COLUMNS", "-u", "LINES", *_command(run_dir))
        deadline = time.monotonic() + 60
        while len(screens) < len(SIZES):
            assert time.monotonic() < deadline, f"the TUI did not show the run within 60 s (shown: {list(screens)})"
            time.sleep(0.5)
            for size, name in names.items():
                if size not in screens:
                    first = _capture(name)
                    if _loaded("\n".join(first)):
                        same = True
                        for _ in range(2):  # settled: the same for a second
                            time.sleep(0.5)
                            same = same and _capture(name) == first
                        if same:
                            screens[size] = first
    finally:
        for name in names.values():
            subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, timeout=30)

    for size, lines in screens.items():
        shown = "\n".join(lines)
        assert len(lines) == size[1], shown
        assert "…" not in shown, f"cut at {size}:\n{shown}"
        content = lines[:-1]  # the last line is the footer (its key list ends in Textual's ▏ separator)
        glyphs = sorted({(row, ch) for row, line in enumerate(content) for ch in line if ch in SCROLLBAR_GLYPHS})
        assert not glyphs, f"scrollbar glyphs at {size} (row, glyph): {glyphs}\n{shown}"
        # whole words where the issue found them cut ("LR re", "prev ", "stage 4 latest + LR r…")
        assert "✓ s1g3     1/1 final" in shown and "✓ s2g2     1/1 best" in shown, shown
        assert "from previous step's final + LR reset to 1e-4" in shown, shown
        assert "★ lowest RD loss" in shown, shown
