"""Which files of a folder are clips: the one rule, shared by the trainer's datasets,
`eval` and `run`'s check before it launches anything. Pure Python (no OpenCV, no torch),
so the control plane can use it.

Every ``*.mp4`` (any case: ``.MP4`` too) directly inside the folder, sorted by name;
sub-folders are not searched and hidden files (``.name.mp4``, e.g. macOS ``._clip.mp4``
resource forks or a half-written temp file) are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

from dcvc_bench.errors import UserError

DEFAULT_HINT = "point it at a folder of .mp4 clips (or run `dcvc-bench data synth DIR`)"


def list_videos(folder: str | os.PathLike[str], what: str = "--train_video_dir", hint: str = DEFAULT_HINT) -> list[Path]:
    """The MP4 clips directly inside ``folder``, sorted by name. ``what`` names the
    option the folder came from and ``hint`` says what to do, for the error message: a
    missing folder, a file, an unreadable folder or one without clips is a UserError."""
    path = Path(folder)
    try:
        if not path.exists():
            raise UserError(f"{what}: folder {path} does not exist; {hint}")
        if not path.is_dir():
            raise UserError(f"{what}: {path} is not a folder; {hint}")
        clips = sorted(
            entry
            for entry in path.iterdir()
            if entry.suffix.lower() == ".mp4" and not entry.name.startswith(".") and entry.is_file()
        )
    except OSError as exc:
        raise UserError(f"{what}: cannot read folder {path}: {exc.strerror or exc}") from None
    if not clips:
        raise UserError(f"{what}: folder {path} has no .mp4 clips (sub-folders are not searched); {hint}")
    return clips
