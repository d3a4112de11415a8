"""`dcvc-bench bench train --kind iframe`: the real I-frame step timed on synthetic clips;
figures printed, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from train_helpers import TINY_RVQ

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true"}


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "bench", "train", *args], env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_it_prints_images_per_second_and_peak_memory():
    res = _bench("--kind", "iframe", "--type", "rvq", "--config", str(TINY_RVQ), "--crop", "32", "--batch", "2",
                 "--iters", "1", "--device", "cpu")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("I-frame rvq (tiny_rvq_f2.json") and "PatchGAN" in lines[0]
    assert " images/s " in lines[1] and lines[2].startswith("peak process RSS: ")


@pytest.mark.parametrize("args, needle", [
    (["--kind", "bframe"], "--kind"),
    (["--kind", "iframe", "--type", "jpeg"], "--type"),
    (["--kind", "iframe", "--type", "compressai", "--config", str(TINY_RVQ)], "--config"),
])
def test_bad_options_are_one_line(args, needle):
    res = _bench(*args, "--iters", "1", "--device", "cpu")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
