"""What `dcvc-bench eval` and `eval-iframe` evaluate: the request, the checkpoints it
names (or the latest run's), each track's chosen checkpoint, the clips and their frames.

``--checkpoint PATH`` (repeatable): a checkpoint file, a track folder
(``runs/<run>/checkpoints/<track>``) or a run folder (all its tracks). Without it, the
most recent run under ``./runs`` (newest ledger, else newest folder). In a track, the
highest stage that has a ``final`` checkpoint, else its ``best``. Clips: ``--videos
DIR|FILE``, else the run's validation clips; the first ``--frames`` frames of each (all
of them when a clip is shorter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from dcvc_bench.checkpoints import parse_checkpoint_name, parse_iframe_checkpoint_name
from dcvc_bench.errors import UserError

FROZEN_CURRICULUM = "curriculum.toml"


@dataclass
class EvalOptions:
    """What `dcvc-bench eval` and `eval-iframe` share: clips, outputs, baselines."""

    checkpoints: list[Path] = field(default_factory=list)
    videos: Optional[Path] = None
    frames: int = 96
    real: bool = False
    device: str = "auto"
    json_out: Optional[Path] = None
    csv_out: Optional[Path] = None
    plot_out: Optional[Path] = None
    baselines: Optional[str] = None
    preset: str = "medium"
    qp: Optional[str] = None
    crf: Optional[str] = None
    anchor: Optional[str] = None
    ffmpeg: Optional[str] = None
    runs_dir: Path = Path("runs")
    write_run: bool = True
    fid: Optional[bool] = None         # None: when possible; True (--fid): required; False (--no-fid): off
    fid_weights: Optional[Path] = None
    fid_dims: int = 2048
    linear_bpp: bool = False           # the RD PNG's BPP axis: linear instead of logarithmic


@dataclass
class EvalRequest(EvalOptions):
    """Everything `dcvc-bench eval` was asked (CLI options, already typed). ``frames`` /
    ``intra_period`` None: not given (the preset's, the dataset config's or the defaults
    apply, :mod:`dcvc_bench.eval.conditions`)."""

    frames: Optional[int] = 96         # type: ignore[assignment]
    intra_period: Optional[int] = 32
    ema: bool = False
    baselines_only: bool = False
    rvq_layers: Optional[str] = None   # "2,4,6,8": one RD point per (track, RVQ depth)
    conditions: Optional[str] = None   # --preset: dcvc-ctc | dcvc-allframes
    dataset_config: Optional[Path] = None
    color: str = "rgb"                 # rgb | yuv420
    anchor_json: Optional[Path] = None
    anchor_name: Optional[str] = None
    anchor_metric: str = "psnr"
    bd_method: Optional[str] = None    # None: akima, or pchip with --anchor-json


@dataclass
class Target:
    """One learned-codec checkpoint to evaluate and where it came from."""

    path: Path
    run_dir: Optional[Path]
    track: str


@dataclass
class Clip:
    """A clip to evaluate. ``frames`` / ``all_frames`` / ``intra_period`` set: this clip's
    own test condition (a dataset config or preset), else the request's; ``dataset``:
    its class in a dataset config (results in DCVC's format are grouped by it)."""

    name: str
    path: Path
    dataset: Optional[str] = None
    frames: Optional[int] = None
    all_frames: bool = False
    intra_period: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; UserError otherwise."""
    text = (device or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise UserError(f"--device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    return dev


def check_counts(frames: int, intra_period: int) -> None:
    if frames < 1:
        raise UserError(f"--frames {frames}: must be at least 1")
    if intra_period != -1 and intra_period < 1:
        raise UserError(f"--intra-period {intra_period}: must be at least 1, or -1 for a single I-frame")


def parse_depths(text: Optional[str]) -> list[int]:
    """``--rvq-layers 2,4,6,8`` -> [2, 4, 6, 8] (sorted, once each); None -> []."""
    if text is None:
        return []
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"--rvq-layers {text!r}: expected whole numbers separated by commas, e.g. 2,4,6,8") from None
    if not values or values[0] < 1:
        raise UserError(f"--rvq-layers {text!r}: give depths of at least 1, e.g. 2,4,6,8")
    return values


def latest_run(runs_dir: Path) -> Path:
    """The most recently active run folder under ``runs_dir`` (ledger mtime, else folder mtime)."""
    hint = "pass --checkpoint PATH (a checkpoint or run folder), or train one with `dcvc-bench run`"
    if not runs_dir.is_dir():
        raise UserError(f"no run folder to evaluate: {runs_dir}/ does not exist; {hint}")
    candidates = []
    for entry in runs_dir.iterdir():
        if entry.is_dir() and ((entry / FROZEN_CURRICULUM).is_file() or (entry / "checkpoints").is_dir()):
            ledger = entry / "ledger.json"
            stamp = (ledger if ledger.is_file() else entry).stat().st_mtime
            candidates.append((stamp, entry.name, entry))
    if not candidates:
        raise UserError(f"no run folder under {runs_dir}/; {hint}")
    return max(candidates)[2]


def _parse_name(path: Path) -> Optional[tuple[int, str]]:
    parsed = parse_checkpoint_name(path.name)
    return (parsed.stage, parsed.kind) if parsed else None


def pick_track_checkpoint(track_dir: Path) -> Optional[Path]:
    """The track's most-trained finished weights: the highest stage with a ``final``
    checkpoint or, failing that, a ``best`` one (stages compared first)."""
    best: Optional[tuple[int, int, Path]] = None
    for pth in track_dir.glob("*.pth"):
        parsed = _parse_name(pth)
        if parsed is None or parsed[1] not in ("final", "best"):
            continue
        key = (parsed[0], 1 if parsed[1] == "final" else 0, pth)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def _run_of(path: Path) -> Optional[Path]:
    """The run folder holding a checkpoint (``checkpoints/<track>/x.pth`` or
    ``steps/<id>/final.pth``), if any."""
    candidate = path.resolve().parent.parent.parent
    if path.resolve().parent.parent.name in ("checkpoints", "steps") and (candidate / FROZEN_CURRICULUM).is_file():
        return candidate
    return None


def resolve_targets(paths: Sequence[Path], runs_dir: Path) -> tuple[list[Target], list[str]]:
    """Checkpoint files from ``--checkpoint`` values (or the latest run); also notes
    about tracks that have nothing to evaluate yet."""
    notes: list[str] = []
    targets: list[Target] = []
    for given in (paths or [latest_run(runs_dir)]):
        path = Path(given)
        if path.is_file():
            run = _run_of(path)
            # checkpoints/<track>/x.pth -> the track; steps/<id>/final.pth -> the step id
            track = path.parent.name if run is not None else path.stem
            targets.append(Target(path, run, track))
            continue
        if not path.is_dir():
            raise UserError(f"--checkpoint {path}: no such file or folder")
        if (path / "checkpoints").is_dir():
            run, tracks = path, sorted(p for p in (path / "checkpoints").iterdir() if p.is_dir())
        elif any(path.glob("*.pth")):
            run, tracks = _run_of(next(path.glob("*.pth"))), [path]
        else:
            raise UserError(f"--checkpoint {path}: not a run folder (no checkpoints/) and holds no .pth files")
        found = 0
        for track_dir in _by_lambda(tracks):
            if _iframe_codec_folder(track_dir):
                notes.append(f"{track_dir}: the run's trained I-frame codec (its P-frame tracks use it); "
                             "`dcvc-bench eval-iframe` evaluates it alone")
                continue
            chosen = pick_track_checkpoint(track_dir)
            if chosen is None:
                notes.append(f"track {track_dir.name}: no final or best checkpoint yet, skipped")
                continue
            targets.append(Target(chosen, run, track_dir.name))
            found += 1
        if not found:
            raise UserError(f"{path}: no final or best checkpoint in any track yet; "
                            "train first (`dcvc-bench run`) or pass a checkpoint file")
    return targets, notes


def _iframe_codec_folder(folder: Path) -> bool:
    """Whether a run's checkpoint folder holds an I-frame training step's files, not a track's."""
    names = [p.name for p in folder.glob("*.pth")]
    return bool(names) and all(parse_iframe_checkpoint_name(n) is not None for n in names)


def _by_lambda(tracks: list[Path]) -> list[Path]:
    """Track folders in order of λ (from their checkpoint names), then by name."""

    def key(track: Path) -> tuple[float, str]:
        for pth in track.glob("*.pth"):
            parsed = parse_checkpoint_name(pth.name)
            if parsed:
                return parsed.lambda_value, track.name
        return math.inf, track.name

    return sorted(tracks, key=key)


def validation_dir(run_dir: Path) -> Path:
    """The validation clips of a run, from its frozen curriculum (synthetic clips live in
    ``<run>/data/val``)."""
    from dcvc_bench.curriculum import load_curriculum, run_paths

    cur = load_curriculum(run_dir / FROZEN_CURRICULUM)
    cur = cur.model_copy(update={"output_dir": str(run_dir.parent), "name": run_dir.name})
    return run_paths(cur).data_dirs[1]


def resolve_clips(videos: Optional[Path], run_dir: Optional[Path]) -> list[Clip]:
    from dcvc_bench.data.sources import source_name
    from dcvc_bench.data.video import list_videos

    if videos is None:
        if run_dir is None:
            raise UserError("no clips to evaluate on: pass --videos DIR|FILE (no run folder is involved "
                            "whose validation clips could be used)")
        folder = validation_dir(run_dir)
        if not folder.is_dir():
            raise UserError(f"the validation clips of {run_dir} ({folder}) are missing; pass --videos DIR|FILE")
        paths = list_videos(folder, what=f"validation clips of {run_dir.name}", split="test")
    elif videos.is_file():
        paths = [videos]
    elif videos.is_dir():
        paths = list_videos(videos, what="--videos", split="test")
    else:
        raise UserError(f"--videos {videos}: no such file or folder")
    names: dict[str, int] = {}
    clips = []
    for p in paths:
        name = source_name(p)
        names[name] = names.get(name, 0) + 1
        clips.append(Clip(name if names[name] == 1 else f"{name}#{names[name]}", p))
    return clips


def frames_available(clips: Sequence[Clip], frames: int) -> int:
    """How many frames an evaluation of ``frames`` per clip really gets from ``clips``
    (each clip decoded once to count them)."""
    from dcvc_bench.data.sources import open_source

    return sum(open_source(clip.path).frames_up_to(frames) for clip in clips)


@dataclass
class LoadedClip:
    """A clip's frames as the codecs see them (T×3×H×W uint8 RGB) and, for YUV 4:2:0
    scoring, its source planes (Y T×H×W, U/V T×H/2×W/2) at ``bit_depth``."""

    frames_u8: torch.Tensor
    planes: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None
    bit_depth: int = 8


def _own(clip: Clip, frames: Optional[int]) -> Optional[int]:
    """The frames asked of ``clip``: its own condition first (None: all)."""
    if clip.frames is not None or clip.all_frames:
        return None if clip.all_frames else clip.frames
    return frames


def clip_frame_count(clip: Clip, frames: Optional[int]) -> int:
    """How many frames :func:`load_source` gives of ``clip`` (``frames`` None: all)."""
    from dcvc_bench.data.sources import open_source

    src = open_source(clip.path, width=clip.width, height=clip.height)
    frames = _own(clip, frames)
    return src.num_frames if frames is None else src.frames_up_to(frames)


def load_source(clip: Clip, frames: Optional[int], color: str = "rgb") -> LoadedClip:
    """The first ``frames`` frames of a clip (all with ``frames`` None or the clip's own
    condition; fewer when it is shorter) through :func:`dcvc_bench.data.sources.open_source`
    (BT.709 full range, the documented colour conversion) as 8-bit RGB, and with
    ``color`` "yuv420" its source planes too."""
    from dcvc_bench.data.sources import open_source

    src = open_source(clip.path, width=clip.width, height=clip.height)
    frames = _own(clip, frames)
    rgb = src.read_first_rgb8(src.num_frames if frames is None else frames)
    if len(rgb) == 0:
        raise UserError(f"cannot evaluate {clip.path}: no frame decodes")
    frames_u8 = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))
    if color != "yuv420":
        return LoadedClip(frames_u8)
    yuv = [src.read_yuv(i) for i in range(len(rgb))]
    planes = tuple(np.stack([f[k] for f in yuv]) for k in range(3))
    return LoadedClip(frames_u8, planes, int(src.bit_depth) if src.kind == "yuv" else 8)  # type: ignore[arg-type]


def load_clip(clip: Clip, frames: int) -> torch.Tensor:
    """The first ``frames`` frames (fewer if the clip is shorter) as T×3×H×W uint8 RGB."""
    from dcvc_bench.data.sources import open_source

    array = open_source(clip.path).read_first_rgb8(frames)
    if len(array) == 0:
        raise UserError(f"cannot evaluate {clip.path}: no frame decodes")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))

