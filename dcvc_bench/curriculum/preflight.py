"""What must be on disk before a curriculum's first step can start. Pure Python.

`run` calls :func:`check_run_inputs` before it creates the run folder or launches
anything: a missing data folder is then one line naming the curriculum key, in well under
a second, instead of a trainer that refuses it after `accelerate launch` has spent ~12 s
starting. `plan` prints the same problems as warnings (it only shows what would run).

Checked, relative to the current directory (the runner launches steps from it):

- ``[data].train_dir`` and ``[data].val_dir``: folders with at least one clip, by the
  trainer's own rule (:func:`dcvc_bench.clips.list_videos`). Whether each clip
  decodes and is long enough for the GOP is the trainer's check: it needs OpenCV and
  decoding every file. ``[data.synthetic]`` clips are written by `run` itself.
- Files the steps read: ``[model].spynet_checkpoint`` and the I-frame spec's files
  (its ``FILES``: a checkpoint, a VQ architecture config, which may also name a config
  shipped with dcvc-bench), except the checkpoint of a codec ``[iframe_training]``
  trains (the runner passes its archive). What `plan` and `run` check about I-frame
  training itself is :mod:`~dcvc_bench.curriculum.iframe_checks`.
- ``[logging].trackers``: each tracker's package is installed (looked up, not imported).

Not checked here: CompressAI zoo weights in the torch hub cache (finding the cache needs
torch; the trainer names the missing file), and each step's ``--resume`` /
``--load_pretrained`` source (the runner decides those per step and reports a missing one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from dcvc_bench.curriculum.iframe_training import TRAINED, vq_config_path
from dcvc_bench.curriculum.schema import Curriculum
from dcvc_bench.clips import list_videos, yuv_name_info
from dcvc_bench.errors import UserError
from dcvc_bench.tracking import missing_message, missing_packages

_DATA_HINT = "point it at a folder of .mp4 clips, or use [data.synthetic]"


def run_input_problems(cur: Curriculum) -> list[str]:
    """One line per missing input, each starting with the curriculum file and key; empty when all are there."""
    problems: list[str] = []
    data = cur.data
    if data.synthetic is None:
        for key, folder in (("train_dir", data.train_dir), ("val_dir", data.val_dir)):
            if folder is None:
                continue
            try:
                found = list_videos(folder, what=f"{cur.source}: [data].{key}", hint=_hint(folder, _DATA_HINT),
                                    split="train" if key == "train_dir" else "test")
            except UserError as exc:
                problems.append(str(exc))
                continue
            unsized = [clip for clip in found if clip.suffix.lower() == ".yuv" and "width" not in yuv_name_info(clip)]
            if unsized:
                more = f" (and {len(unsized) - 1} more)" if len(unsized) > 1 else ""
                problems.append(f"{cur.source}: [data].{key}: {unsized[0]}{more} has no frame size in its name; "
                                "rename or symlink it to a name that says it, like NAME_1920x1080_30fps_420_8bit.yuv")
    files: list[tuple[str, Optional[str]]] = [("[model].spynet_checkpoint", cur.model.spynet_checkpoint)]
    for name in () if cur.trains_i_frame else cur.i_frame.FILES:  # a trained codec's: iframe_checks
        value = getattr(cur.i_frame, name)
        if value is not None and value != TRAINED:
            files.append((f"[i_frame].{name}", str(vq_config_path(value)) if name == "config" else value))
    for key, value in files:
        problem = _file_problem(value)
        if problem is not None:
            problems.append(f"{cur.source}: {key}: {problem}")
    for tracker, pip_name in missing_packages(cur.logging.trackers):
        problems.append(f"{cur.source}: [logging].trackers: {missing_message(tracker, pip_name)}")
    return problems


def check_run_inputs(cur: Curriculum) -> None:
    """Raise :class:`UserError` with the first problem (and how many more there are)."""
    problems = run_input_problems(cur)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)


def _file_problem(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    path = Path(value)
    try:
        if path.is_file():
            return None
        if path.is_dir():
            return f"{path} is a folder; give the file"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return _hint(value, f"file {path} does not exist; check the path")


def _hint(value: str, text: str) -> str:
    """``~`` is not expanded anywhere (not by the runner, not by the trainer): say so."""
    return text + ("; `~` is not expanded here, write the full path" if value.startswith("~") else "")
