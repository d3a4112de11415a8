"""Fixtures of the TUI tests (helpers in tui_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_helpers import copy_run


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the recorded smoke run as ``runs/smoke``, relative to the current
    directory (its parent), so that paths on screen do not depend on the temp folder."""
    copy_run(tmp_path / "runs" / "smoke")
    monkeypatch.chdir(tmp_path)
    return Path("runs/smoke")
