"""`dcvc-bench bench codec`: median and min of its runs, threads and load on screen, a
``--json`` record that ``--compare-to`` reads back (ratios printed), a bad record refused
in one line. Figures only: nothing here asserts a speed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dcvc_bench.cli import app

runner = CliRunner()


def test_bench_codec_records_and_compares(tmp_path):
    record_path = tmp_path / "codec.json"
    args = ["bench", "codec", "--preset", "tiny", "--size", "64x64", "--frames", "2", "--repeats", "2",
            "--threads", "1"]
    first = runner.invoke(app, [*args, "--json", str(record_path)])
    assert first.exit_code == 0, first.output
    assert "coding threads: 1" in first.output and "load average" in first.output
    assert first.output.count("(min ") >= 8 and first.output.count("same bytes: yes") == 2
    record = json.loads(record_path.read_text())
    assert record["format"] == "dcvc-bench-bench-codec" and record["threads"] == 1 and record["repeats"] == 2
    latent = record["latents"]["y"]
    assert latent["shape"][1:] == [4, 4] and latent["reference_same_bytes"] and latent["decoded_exactly"]
    for key in ("wavefront", "reference", "one_row"):
        for op in ("encode", "decode"):
            stats = latent[key][op]
            assert len(stats["runs"]) == 2 and stats["min"] == min(stats["runs"]) <= stats["median"]
    assert latent["reference"]["ratio"]["encode"] > 0

    second = runner.invoke(app, [*args, "--compare-to", str(record_path)])
    assert second.exit_code == 0, second.output
    assert f"against {record_path}" in second.output
    assert second.output.count("×\n") >= 14  # 2 P-frame figures + 2 latents × 3 coders × 2 ops


def test_bench_codec_refuses_a_bad_record_before_coding(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    for path, words in ((bad, "is not a `bench codec --json` record"), (tmp_path / "missing.json", "does not exist")):
        result = runner.invoke(app, ["bench", "codec", "--preset", "tiny", "--size", "64x64", "--compare-to", str(path)])
        assert result.exit_code == 2 and words in result.output and "codec benchmark" not in result.output
        assert result.output.count("\n") == 1
