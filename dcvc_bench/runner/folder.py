"""Setting up a run folder before any step runs: the frozen copy of the curriculum (the
previous one kept after an edit) and the synthetic clips a curriculum asks for, written
by `dcvc-bench data synth` in a child process and renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoints import atomic_write_bytes, atomic_write_json, fsync_dir
from dcvc_bench.curriculum import Curriculum, RunPaths
from dcvc_bench.errors import UserError
from dcvc_bench.runner.display import Display

PREVIOUS_CURRICULUM = "curriculum.prev.toml"
#: Written next to generated clips: a changed recipe regenerates them.
SYNTH_RECIPE = "synthetic.json"


def freeze_curriculum(run_dir: Path, text: str) -> bool:
    """Keep the TOML as loaded in ``curriculum.toml``; an edited one replaces it and the
    previous copy moves to ``curriculum.prev.toml``. Returns whether it changed."""
    frozen = run_dir / "curriculum.toml"
    try:
        previous = frozen.read_text(encoding="utf-8")
    except FileNotFoundError:
        previous = None
    if previous == text:
        return False
    if previous is not None:
        atomic_write_bytes(run_dir / PREVIOUS_CURRICULUM, previous.encode())
    atomic_write_bytes(frozen, text.encode())
    return previous is not None


def prepare_synthetic_data(cur: Curriculum, paths: RunPaths, display: Display) -> None:
    """Write the curriculum's synthetic clips into ``data/{train,val}`` when a folder has no
    clips yet, or was generated from another recipe. Written to a temporary folder and
    renamed into place, so a crash never leaves half a dataset under the real name."""
    synth = cur.data.synthetic
    if synth is None:
        return
    train_dir, val_dir = paths.data_dirs
    for folder, recipe in (
        (train_dir, {"videos": synth.videos, "frames": synth.frames, "width": synth.width,
                     "height": synth.height, "seed": synth.seed}),
        (val_dir, {"videos": synth.val_videos, "frames": synth.val_frames, "width": synth.val_width,
                   "height": synth.val_height, "seed": synth.val_seed}),
    ):
        if any(folder.glob("*.mp4")):
            written = _read_json(folder / SYNTH_RECIPE)
            if written is None or written == recipe:  # clips put there by hand are kept
                continue
        display.message(f"writing {recipe['videos']} synthetic clips ({recipe['width']}x{recipe['height']}, "
                        f"{recipe['frames']} frames) to {folder}")
        _write_clips_atomically(folder, recipe)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _synthesize(folder: Path, recipe: dict[str, int]) -> None:
    """Write the clips with `dcvc-bench data synth` in a child process: the data layer
    (numpy, OpenCV) is compute plane, and the runner only launches it, as it launches the
    trainer. Its one-line error becomes ours."""
    argv = [sys.executable, "-m", "dcvc_bench.cli", "data", "synth", str(folder),
            "--videos", str(recipe["videos"]), "--frames", str(recipe["frames"]),
            "--size", f"{recipe['width']}x{recipe['height']}", "--seed", str(recipe["seed"])]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise UserError(f"writing synthetic clips to {folder} failed: {last.removeprefix('error: ')}")


def _write_clips_atomically(folder: Path, recipe: dict[str, int]) -> None:
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{folder.name}.tmp-"
    for leftover in parent.glob(prefix + "*"):  # from a generation that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    old = parent / f"{prefix}old"
    try:
        _synthesize(tmp, recipe)
        atomic_write_json(tmp / SYNTH_RECIPE, recipe)
        if folder.exists():
            os.rename(folder, old)
        os.rename(tmp, folder)
        fsync_dir(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
