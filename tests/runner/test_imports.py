"""The runner never imports torch (nor numpy/OpenCV, which only synthetic-data
generation needs): `plan` and `status` start in well under a second. Checked in a fresh
interpreter so that earlier imports cannot hide a leak."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["dcvc_bench.runner", "dcvc_bench.runner.commands", "dcvc_bench.runner.run",
           "dcvc_bench.runner.status", "dcvc_bench.runner.display"]


def test_runner_imports_no_torch():
    code = ("import importlib, sys\n"
            f"for m in {MODULES!r}: importlib.import_module(m)\n"
            "print(' '.join(sorted(m for m in ('torch', 'numpy', 'cv2') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
