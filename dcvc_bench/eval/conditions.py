"""Test conditions of `dcvc-bench eval`: the presets of microsoft/DCVC's suggested test
conditions (DCVC-family/test_conditions.md) and dataset configs in DCVC's format.

Presets (``--preset``)
    ``dcvc-ctc``: 96 frames per sequence, an I-frame every 32 frames.
    ``dcvc-allframes``: every frame of each sequence, one I-frame (intra period -1): the
    condition of DCVC's headline tables and of the published VTM-17.0 anchor.
    Both pad, never crop: every evaluation codes frames at their full size; the learned
    codec pads to a multiple of 64 by replicating the last row and column (as DCVC does)
    and is scored on the original area only, and x265/x264 code the original size.

Dataset config (``--dataset-config FILE``), DCVC's JSON (``dataset_config_example_yuv420.json``)
    ``{"root_path": DIR, "test_classes": {CLASS: {"test": 1, "base_path": DIR,
    "src_type": "yuv420" | "png", "sequences": {NAME: {"width": W, "height": H,
    "frames": N, "intra_period": P}}}}}``; the older form without ``root_path`` /
    ``test_classes`` (``{CLASS: {"base_path": DIR, "sequences": {NAME: {"frames": N,
    "gop": P}}}}``) too. ``gop`` and ``intra_period`` mean the same; classes with
    ``"test": 0`` are skipped; relative paths are relative to the config file's folder.
    A sequence is ``root_path/base_path/NAME`` (a ``.yuv`` file or a folder of frames),
    evaluated and reported under its CLASS and NAME, so results line up with DCVC's.

Which value wins, per sequence: ``--frames`` / ``--intra-period`` when given, else the
preset's, else the config's, else 96 frames and intra period 32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from dcvc_bench.errors import UserError

DEFAULT_FRAMES, DEFAULT_INTRA_PERIOD = 96, 32


@dataclass(frozen=True)
class Condition:
    name: str
    frames: Optional[int]      # None: all frames
    intra_period: int
    description: str


PRESETS: dict[str, Condition] = {
    "dcvc-ctc": Condition("dcvc-ctc", 96, 32, "96 frames, intra period 32, pad never crop (DCVC's suggested test "
                          "conditions)"),
    "dcvc-allframes": Condition("dcvc-allframes", None, -1, "all frames, intra period -1 (one I-frame), pad never "
                                "crop (DCVC's headline tables, the VTM-17.0 anchor)"),
}


@dataclass(frozen=True)
class ConfigSequence:
    """One sequence of a dataset config."""

    dataset: str               # the config's class name (UVG, HEVC_B, ...)
    name: str                  # the config's sequence key, e.g. Beauty_1920x1080_120fps_420_8bit_YUV.yuv
    path: Path
    frames: Optional[int]
    intra_period: Optional[int]
    width: Optional[int]
    height: Optional[int]


def check_preset(preset: Optional[str]) -> Optional[Condition]:
    """The named preset, or a one-line UserError (pointing x265 preset names to
    ``--baseline-preset``)."""
    if preset is None:
        return None
    if preset in PRESETS:
        return PRESETS[preset]
    from dcvc_bench.eval.baselines import PRESETS as ENCODER_PRESETS

    if preset in ENCODER_PRESETS:
        raise UserError(f"--preset {preset}: --preset names a test condition ({', '.join(PRESETS)}); the x265/x264 "
                        f"preset is --baseline-preset {preset}")
    raise UserError(f"--preset {preset!r}: use one of {', '.join(PRESETS)}")


def _bad(path: Path, key: str, what: str) -> UserError:
    return UserError(f"--dataset-config {path}: {key}: {what}")


def _whole(path: Path, key: str, value: Any, least: int, allow_minus_one: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (value < least and not (allow_minus_one and value == -1)):
        extra = " (or -1)" if allow_minus_one else ""
        raise _bad(path, key, f"expected a whole number >= {least}{extra}, got {json.dumps(value)}")
    return value


def load_dataset_config(path: Path) -> list[ConfigSequence]:
    """The sequences of a DCVC-format dataset config, in the file's order; a bad file is
    one line naming the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--dataset-config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--dataset-config {path}: cannot read it ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--dataset-config {path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise _bad(path, "(top level)", "expected an object of classes, or {\"root_path\", \"test_classes\"}")
    here = path.resolve().parent
    root, prefix = here, ""
    if "test_classes" in data:
        classes, prefix = data["test_classes"], "test_classes."
        if "root_path" in data:
            if not isinstance(data["root_path"], str):
                raise _bad(path, "root_path", "expected a folder path (a string)")
            root = here / data["root_path"]
        if not isinstance(classes, dict):
            raise _bad(path, "test_classes", "expected an object of classes")
    else:
        classes = data
    out: list[ConfigSequence] = []
    for cls, spec in classes.items():
        key = f"{prefix}{cls}"
        if not isinstance(spec, dict):
            raise _bad(path, key, "expected an object with base_path and sequences")
        if spec.get("test", 1) == 0:
            continue
        if not isinstance(spec.get("base_path"), str):
            raise _bad(path, f"{key}.base_path", "missing; the folder of this class's sequences")
        if spec.get("src_type", "yuv420") not in ("yuv420", "png"):
            raise _bad(path, f"{key}.src_type", f"{json.dumps(spec['src_type'])}: use yuv420 or png")
        base = root / spec["base_path"]
        seqs = spec.get("sequences")
        if not isinstance(seqs, dict) or not seqs:
            raise _bad(path, f"{key}.sequences", "missing or empty; an object of sequence names")
        for name, seq in seqs.items():
            skey = f"{key}.sequences.{name}"
            if not isinstance(seq, dict):
                raise _bad(path, skey, "expected an object with frames (and gop or intra_period)")
            unknown = set(seq) - {"frames", "gop", "intra_period", "width", "height"}
            if unknown:
                raise _bad(path, f"{skey}.{sorted(unknown)[0]}", "unknown key; use frames, gop or intra_period, "
                           "width, height")
            frames = _whole(path, f"{skey}.frames", seq["frames"], 1) if "frames" in seq else None
            if "gop" in seq and "intra_period" in seq and seq["gop"] != seq["intra_period"]:
                raise _bad(path, f"{skey}.gop", "gop and intra_period disagree; give one of them")
            ip_key = "intra_period" if "intra_period" in seq else "gop"
            ip = _whole(path, f"{skey}.{ip_key}", seq[ip_key], 1, allow_minus_one=True) if ip_key in seq else None
            width = _whole(path, f"{skey}.width", seq["width"], 2) if "width" in seq else None
            height = _whole(path, f"{skey}.height", seq["height"], 2) if "height" in seq else None
            seq_path = base / name
            if not seq_path.exists():
                raise _bad(path, skey, f"{seq_path} does not exist (root_path/base_path/name); fix the paths "
                           "or remove the sequence")
            out.append(ConfigSequence(str(cls), str(name), seq_path, frames, ip, width, height))
    if not out:
        raise _bad(path, "test_classes" if prefix else "(top level)", "no class to test (all have \"test\": 0?)")
    return out


def choose(given: Optional[int], preset: Optional[Condition], config: Optional[int], what: str) -> Optional[int]:
    """The value that wins for one sequence: given flag > preset > config > default
    (``what``: "frames" or "intra_period"; frames None = all frames)."""
    if given is not None:
        return given
    if preset is not None:
        return preset.frames if what == "frames" else preset.intra_period
    if config is not None:
        return config
    return DEFAULT_FRAMES if what == "frames" else DEFAULT_INTRA_PERIOD


__all__ = ["DEFAULT_FRAMES", "DEFAULT_INTRA_PERIOD", "PRESETS", "Condition", "ConfigSequence", "check_preset", "choose",
           "load_dataset_config"]
