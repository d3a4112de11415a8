"""`dcvc-bench run` refuses missing inputs before it creates the run folder or launches
`accelerate` (which takes ~12 s to start): one line naming the curriculum key, exit 2."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[2] / "dcvc_bench" / "curricula" / "smoke.toml"
SYNTHETIC = SMOKE.read_text(encoding="utf-8").split("[data.synthetic]")[1].split("[model]")[0]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcvc_bench.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture
def curriculum(tmp_path: Path) -> Path:
    """The smoke curriculum reading clips from data/train and data/val, which do not exist."""
    text = SMOKE.read_text(encoding="utf-8").replace(
        "[data.synthetic]" + SYNTHETIC, '[data]\ntrain_dir = "data/train"\nval_dir = "data/val"\n\n')
    assert "train_dir" in text and "[data.synthetic]" not in text
    path = tmp_path / "x.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_run_with_a_missing_data_folder_fails_at_once_naming_the_key(curriculum, tmp_path):
    started = time.monotonic()
    done = cli("run", curriculum.name, cwd=tmp_path)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: x.toml: [data].train_dir: folder data/train does not exist; point it at a folder of .mp4 clips, "
        "or use [data.synthetic] (+1 more)"]
    assert not (tmp_path / "runs").exists()  # no run folder, no steps, no stdout.log: nothing was launched
    assert seconds < 10, seconds  # generous bound; accelerate alone takes ~12 s to get as far


def test_run_names_the_empty_val_folder(curriculum, tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "train" / "a.mp4").write_bytes(b"")
    (tmp_path / "data" / "val").mkdir()
    done = cli("run", curriculum.name, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: x.toml: [data].val_dir: folder data/val has no .mp4 clips (nor .yuv files or sub-folders of PNG/JPEG frames); "
        "point it at a folder of .mp4 clips, or use [data.synthetic]"]
    assert not (tmp_path / "runs").exists()


def test_plan_only_warns(curriculum, tmp_path):
    done = cli("plan", curriculum.name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "warning: x.toml: [data].train_dir: folder data/train does not exist; point it at a folder of .mp4 clips, "
        "or use [data.synthetic]",
        "warning: x.toml: [data].val_dir: folder data/val does not exist; point it at a folder of .mp4 clips, "
        "or use [data.synthetic]"]
    assert done.stdout.startswith("smoke: 9 steps = 1 track x (4 stages: 8 GOP steps + GOP optimisation)")
    assert not (tmp_path / "runs").exists()
