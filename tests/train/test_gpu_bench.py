"""`dcvc-bench bench gpu` (the GPU visit's script) and `bench data`: the same script run on
CPU at tiny sizes with --allow-cpu; figures printed and recorded, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from dcvc_bench.models.video_net import DCVC
from dcvc_bench.train.gpu_bench import CEILING_256, _Rows, ceiling

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "bench", *args], env=ENV,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusal is for machines without CUDA")
def test_it_refuses_without_cuda_in_one_line():
    res = _cli("gpu")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--allow-cpu" in lines[0], lines


def test_allow_cpu_runs_every_part_and_writes_the_record(tmp_path):
    out = tmp_path / "gpu.json"
    res = _cli("gpu", "--allow-cpu", "--no-compile", "--no-bf16", "--infer-size", "64x64", "--json", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["format"] == "dcvc-bench-bench-gpu" and record["version"] == 1
    assert record["errors"] == [] and record["skipped"] == []
    assert record["device"].startswith("cpu") and "load" in record["load"]
    assert record["options"]["preset"] == "tiny" and record["options"]["compile"] is False
    assert record["ceiling"]["p_frames_per_s"] is None  # no ceiling for the tiny preset
    train = record["train"]
    assert [(r["gop"], r["gop_opt"], r["batch"]) for r in train] == [(2, False, 2), (5, True, 2)]
    for row in train:
        assert row["p_frames_per_s"] > 0 and row["frames_per_s"] > row["p_frames_per_s"]
        assert "peak_mib" in row and "ceiling_pct" in row and row["compiled"] is False
    [infer] = record["infer"]
    assert infer["bf16"] is False and infer["ms"] > 0 and infer["bits_dtype"] == "float32"
    [codec] = record["codec"]
    assert codec["encode_s"] > 0 and codec["decode_s"] > 0 and codec["decoded_equal"] is True
    data, cached = record["data"]
    assert data["workers"] == 1 and data["frames_per_s"] > 0 and data["frame_cache"] is False
    assert cached["name"] == "workers 1, frame cache" and cached["frame_cache"] is True and cached["frames_per_s"] > 0
    assert data["trainer_frames_per_s"] == train[0]["frames_per_s"]
    assert data["rss_mib_max"] >= data["rss_mib_start"] > 0
    assert "P-frames/s" in res.stdout and "part " in res.stdout  # the table


def test_a_spent_budget_skips_rows_and_says_so(tmp_path):
    out = tmp_path / "gpu.json"
    res = _cli("gpu", "--allow-cpu", "--budget", "0", "--json", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["train"] == [] and record["data"] == []
    assert "train: b2 GOP 2" in record["skipped"] and "data: workers 1, frame cache" in record["skipped"]
    assert "skipped (--budget spent)" in res.stdout


def test_ceiling_arithmetic():
    assert CEILING_256 == pytest.approx(790e12 / 444e9)
    assert 1750 < ceiling("dcvc", 256) < 1800
    assert ceiling("dcvc", 128) == pytest.approx(4 * ceiling("dcvc", 256))
    assert ceiling("tiny", 256) is None


def test_bench_data_rows_per_worker_count(tmp_path):
    out = tmp_path / "data.json"
    res = _cli("data", "--workers", "0,1", "--size", "320x180", "--clips", "2", "--frames", "8", "--gop", "2",
               "--crop", "64", "--batch", "2", "--batches", "4", "--consumption", "10", "--frame-cache", "--json", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads(out.read_text())
    assert [(r["workers"], r["frame_cache"]) for r in record["rows"]] == [(0, False), (1, False), (0, True), (1, True)]
    for row in record["rows"]:
        assert row["batches"] == 4 and row["frames_per_s"] > 0 and row["rss_mib_end"] > 0
    assert "x the trainer's 10.0 frames/s" in res.stdout and "load " in res.stdout


def test_a_failed_row_is_one_recorded_line_and_the_next_row_runs():
    record = {"infer": [], "errors": [], "skipped": []}
    lines: list[str] = []
    rows = _Rows(record, budget=60, echo=lines.append)
    assert rows.run("infer", "bad preset", lambda: {"net": DCVC("nosuch"), "summary": ""}) is None
    row = rows.run("infer", "good", lambda: {"ms": 1.0, "summary": "1 ms"})
    assert record["errors"] == [record["errors"][0]] and record["errors"][0].startswith(
        "infer: bad preset: failed: UserError: unknown model preset 'nosuch'")
    assert record["infer"] == [row] and row["name"] == "good" and "peak_mib" in row
    assert any("failed:" in line for line in lines) and lines[-1].startswith("  good: 1 ms")


def test_bad_options_are_one_line():
    res = _cli("gpu", "--allow-cpu", "--preset", "huge")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: --preset: one of dcvc, tiny, got huge"], res.stderr
    res = _cli("gpu", "--allow-cpu", "--only", "train,gpu")
    assert res.returncode == 2 and "--only" in res.stderr and len(res.stderr.strip().splitlines()) == 1
