"""`dcvc-bench doctor`: one line per check, what to do for each missing piece, exit 0/1."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.curriculum import DEFAULT_CURRICULUM

runner = CliRunner()


def _line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[1:2] == [name])


def _doctor(*args: str, env: dict | None = None):
    return runner.invoke(app, ["doctor", *args], env=env)


def test_ready_machine_exits_0_with_one_line_per_check(tmp_path):
    result = _doctor(str(tmp_path / "runs"), "--min-free-gb", "0")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("torch", "OpenCV", "accelerate", "disk", "ffmpeg", "libx265", "libx264"):
        assert _line(result.output, name).split()[0] in ("ok", "missing")
    assert _line(result.output, "torch").startswith("ok")
    assert "CPU" in _line(result.output, "torch") or "CUDA" in _line(result.output, "torch") \
        or "MPS" in _line(result.output, "torch")
    assert lines[-1].startswith("ready for a run")


def test_without_ffmpeg_on_path_the_ffmpeg_line_says_missing_and_how_to_install(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _doctor(str(tmp_path), "--min-free-gb", "0", env={"PATH": str(empty)})
    line = _line(result.output, "ffmpeg")
    assert line.startswith("missing") and "no ffmpeg on PATH" in line and "apt-get install -y ffmpeg" in line, line
    assert result.exit_code == 0, result.output  # baselines are optional for a run


def test_an_ffmpeg_without_libx265_is_named(tmp_path):
    # A stand-in executable at the OS boundary: an ffmpeg whose encoder list lacks libx265.
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' V....D libx264              libx264 H.264'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = _doctor(str(tmp_path), "--min-free-gb", "0", "--ffmpeg", str(fake))
    assert _line(result.output, "libx264").startswith("ok")
    line = _line(result.output, "libx265")
    assert line.startswith("missing") and "no libx265 encoder" in line and "install" in line, line


def test_a_missing_spynet_file_named_by_the_curriculum_fails_the_check_and_exits_1(tmp_path):
    text = Path(DEFAULT_CURRICULUM).read_text().replace(
        '[model]\npreset = "tiny"', '[model]\npreset = "tiny"\nspynet_checkpoint = "nowhere/spynet.pth"')
    assert "nowhere/spynet.pth" in text
    cur = tmp_path / "c.toml"
    cur.write_text(text)
    result = _doctor(str(tmp_path), "--curriculum", str(cur), "--min-free-gb", "0")
    assert result.exit_code == 1, result.output
    line = _line(result.output, "SpyNet")
    assert line.startswith("missing") and "nowhere/spynet.pth" in line and "[model].spynet_checkpoint" in line
    assert result.output.splitlines()[-1].startswith("not ready: SpyNet weights")


def test_too_little_free_disk_exits_1(tmp_path):
    result = _doctor(str(tmp_path / "new" / "runs"), "--min-free-gb", "1e9")
    assert result.exit_code == 1, result.output
    line = _line(result.output, "disk")
    assert line.startswith("missing") and "GiB free" in line and "at least 1e+09 GiB" in line, line


def test_a_bad_curriculum_is_one_line_exit_2(tmp_path):
    result = _doctor(str(tmp_path), "--curriculum", str(tmp_path / "none.toml"))
    assert result.exit_code == 2 and result.output.startswith("error:") and result.output.count("\n") == 1


def test_doctor_help_says_the_exit_codes():
    out = " ".join(runner.invoke(app, ["doctor", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "Exit code 0 when everything a training run needs is there, 1 otherwise" in out
