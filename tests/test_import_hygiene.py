"""The plane rules of shared/DESIGN.md.

The layers are import-linter contracts in pyproject.toml (grimp sees every import, lazy
ones inside functions too); this suite runs them, and shows that they can fail. What
import-linter cannot see is what a start-up really loads: the CLI's entry module is
allowed to reach the compute plane lazily, inside commands. So one fresh interpreter
imports every control-plane entry point and must not end up with torch, numpy or OpenCV.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ENTRY_POINTS = ["dcvc_bench.cli", "dcvc_bench.curriculum", "dcvc_bench.runner.commands",
                "dcvc_bench.runner.run", "dcvc_bench.runner.status", "dcvc_bench.tui.app",
                "dcvc_bench.events", "dcvc_bench.checkpoints"]


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""})


def test_import_contracts_hold():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" not in done.stdout.lower().replace("0 broken", "")


def test_an_upward_import_breaks_the_contracts(tmp_path):
    shutil.copytree(REPO / "dcvc_bench", tmp_path / "dcvc_bench")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    estimate = tmp_path / "dcvc_bench" / "eval" / "estimate.py"
    estimate.write_text(estimate.read_text() + "\nfrom dcvc_bench.train import loop  # noqa\n")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "dcvc_bench.eval.estimate -> dcvc_bench.train.loop" in done.stdout


def test_control_plane_start_up_loads_no_compute_libraries():
    code = ("import importlib, sys\n"
            f"for m in {ENTRY_POINTS!r}: importlib.import_module(m)\n"
            "print(' '.join(sorted(m for m in ('torch', 'numpy', 'cv2', 'compressai') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"control-plane start-up imports {out.stdout.strip()}"


def test_test_module_names_are_unique():
    """pytest imports test modules by basename (no packages under tests/): two files of one
    name stop the whole run at collection."""
    from collections import Counter
    from pathlib import Path

    names = Counter(p.name for p in Path(__file__).parent.rglob("*.py") if p.name != "conftest.py")
    assert [n for n, c in names.items() if c > 1] == []
