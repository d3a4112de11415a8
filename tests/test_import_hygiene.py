"""The plane rule of shared/DESIGN.md: the control plane never imports torch at module
level (so `--help`, `plan`, `status` and the TUI start fast), the compute plane never
imports Textual. Checked in fresh interpreters, so earlier imports cannot hide a leak."""

import subprocess
import sys

import pytest

CONTROL_PLANE = ["dcvc_bench.cli", "dcvc_bench.events", "dcvc_bench.errors",
                 "dcvc_bench.checkpoints", "dcvc_bench.curriculum", "dcvc_bench.runner",
                 "dcvc_bench.tui", "dcvc_bench.tui.app"]
COMPUTE_PLANE = ["dcvc_bench.train.loop", "dcvc_bench.models.video_net", "dcvc_bench.data.video",
                 "dcvc_bench.eval.estimate", "dcvc_bench.codec.gop", "dcvc_bench.models.iframe"]


def _modules_after_import(module: str) -> set[str]:
    code = f"import importlib, sys; importlib.import_module({module!r}); print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", CONTROL_PLANE)
def test_control_plane_does_not_import_torch(module):
    loaded = _modules_after_import(module)
    assert "torch" not in loaded, f"{module} imports torch at module level"


@pytest.mark.parametrize("module", COMPUTE_PLANE)
def test_compute_plane_does_not_import_textual(module):
    loaded = _modules_after_import(module)
    assert "textual" not in loaded, f"{module} imports textual"
