"""`bench train` / `bench infer`: median and min over runs, threads, load, a --json record and
the --compare-to ratio (real tiny DCVC; figures printed, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true"}


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "bench", *args], env=ENV,
                          capture_output=True, text=True, timeout=600)


def test_infer_record_and_ratio(tmp_path):
    a, b = tmp_path / "plain.json", tmp_path / "fast.json"
    res = _bench("infer", "--preset", "tiny", "--size", "64x64", "--runs", "2", "--threads", "1", "--plain",
                 "--json", str(a))
    assert res.returncode == 0, res.stderr[-2000:]
    rec = json.loads(a.read_text())
    assert rec["format"] == "dcvc-bench-bench" and rec["bench"] == "infer" and rec["path"] == "plain"
    assert len(rec["runs"]) == 2 and rec["min"] == min(rec["runs"]) and rec["threads"] == 1
    assert rec["config"] == {"preset": "tiny", "width": 64, "height": 64, "frames": 1}
    assert "torch threads 1" in res.stdout and "load average" in res.stdout
    res = _bench("infer", "--preset", "tiny", "--size", "64x64", "--runs", "1", "--threads", "1",
                 "--json", str(b), "--compare-to", str(a))
    assert res.returncode == 0, res.stderr[-2000:]
    fast = json.loads(b.read_text())
    assert fast["path"] == "channels_last+fused" and fast["fused"] is True and rec["fused"] is False
    assert fast["compared_to"]["ratio"] == round(rec["median"] / fast["median"], 4)
    assert f"vs {a} (plain path" in res.stdout


def test_train_record_compares_to_its_own_kind_only(tmp_path):
    a = tmp_path / "train.json"
    res = _bench("train", "--preset", "tiny", "--crop", "64", "--batch", "1", "--gop", "2", "--iters", "1",
                 "--runs", "2", "--threads", "1", "--device", "cpu", "--json", str(a))
    assert res.returncode == 0, res.stderr[-2000:]
    rec = json.loads(a.read_text())
    assert rec["bench"] == "train" and rec["unit"] == "ms/iteration" and len(rec["runs"]) == 2
    assert rec["path"] == "plain" and rec["memory_format"] == "contiguous"   # the trainer's default
    res = _bench("infer", "--preset", "tiny", "--size", "64x64", "--runs", "1", "--compare-to", str(a))
    assert res.returncode == 2 and res.stderr.startswith("error: --compare-to ") and "Traceback" not in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = _bench("train", "--compare-to", str(bad))
    assert res.returncode == 2 and "not a dcvc-bench bench record" in res.stderr
