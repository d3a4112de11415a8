"""`dcvc-bench eval`: learned codecs (estimated or really coded) and x265/x264 baselines
on the same clips, per clip and overall, with RD curves and BD-rates.

What is evaluated
    ``--checkpoint PATH`` (repeatable): a checkpoint file, a track folder
    (``runs/<run>/checkpoints/<track>``) or a run folder (all its tracks). Without it,
    the most recent run under ``./runs`` (newest ledger, else newest folder). In a track,
    the highest stage that has a ``final`` checkpoint, else its ``best``.
    Clips: ``--videos DIR|FILE``, else the run's validation clips; the first
    ``--frames`` frames of each (all of them when a clip is shorter).

How (DCVC conventions, the same code for every codec)
    PSNR in RGB on [0, 1], per frame; a clip's PSNR is the mean of its frames' PSNR;
    overall figures are means over clips. BPP = bits / original pixels (padding never
    counts). MS-SSIM from :mod:`dcvc_bench.eval.metrics` (labelled when a clip is too
    small for 5 scales); LPIPS only when its weights are on this machine.

    - estimation (default): bits from the entropy models' likelihoods, reconstruction by
      the real decoding rule, through the same frames as training's evaluation
      (:func:`dcvc_bench.eval.estimate.iter_estimated_frames`), plus LPIPS.
    - ``--real``: every frame really coded by :mod:`dcvc_bench.codec.video`, the stream
      decoded again and checked to reproduce the encoder's frames; the estimate is
      reported next to the real rate with their gap.
    - baselines: :mod:`dcvc_bench.eval.baselines` on the very same uint8 frames.

Results go to the terminal, to ``--json``/``--csv`` and to the run folder's ``eval/``
(``<timestamp>-<mode>.json`` + ``latest.json``; with RD curves also ``rd.json`` and
``rd.png``) for the TUI. Formats: :mod:`dcvc_bench.eval.report`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch

from dcvc_bench.checkpoints import parse_checkpoint_name
from dcvc_bench.errors import UserError

if TYPE_CHECKING:
    from dcvc_bench.models.iframe import IFrameCodec

FROZEN_CURRICULUM = "curriculum.toml"
#: Frames scored per metric call (bounded memory, batched speed).
METRIC_CHUNK = 8


# --------------------------------------------------------------------------- request


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


@dataclass
class EvalRequest(EvalOptions):
    """Everything `dcvc-bench eval` was asked (CLI options, already typed)."""

    intra_period: int = 32
    ema: bool = False
    baselines_only: bool = False


@dataclass
class Target:
    """One learned-codec checkpoint to evaluate and where it came from."""

    path: Path
    run_dir: Optional[Path]
    track: str


@dataclass
class Clip:
    name: str
    path: Path


# --------------------------------------------------------------------------- resolve


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
    from dcvc_bench.data.video import list_videos

    if videos is None:
        if run_dir is None:
            raise UserError("no clips to evaluate on: pass --videos DIR|FILE (no run folder is involved "
                            "whose validation clips could be used)")
        folder = validation_dir(run_dir)
        if not folder.is_dir():
            raise UserError(f"the validation clips of {run_dir} ({folder}) are missing; pass --videos DIR|FILE")
        paths = list_videos(folder, what=f"validation clips of {run_dir.name}")
    elif videos.is_file():
        paths = [videos]
    elif videos.is_dir():
        paths = list_videos(videos, what="--videos")
    else:
        raise UserError(f"--videos {videos}: no such file or folder")
    names: dict[str, int] = {}
    clips = []
    for p in paths:
        names[p.stem] = names.get(p.stem, 0) + 1
        clips.append(Clip(p.stem if names[p.stem] == 1 else f"{p.stem}#{names[p.stem]}", p))
    return clips


def load_clip(clip: Clip, frames: int) -> torch.Tensor:
    """The first ``frames`` frames (fewer if the clip is shorter) as T×3×H×W uint8 RGB."""
    from dcvc_bench.data.video import ShortClipError, read_frames

    try:
        array = read_frames(clip.path, 0, frames)
    except ShortClipError as exc:
        array = exc.frames
    if len(array) == 0:
        raise UserError(f"cannot evaluate {clip.path}: no frame decodes")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


# --------------------------------------------------------------------------- metrics


@dataclass
class Scorer:
    """The metrics of :mod:`dcvc_bench.eval.metrics` over whole clips, in chunks."""

    device: torch.device
    lpips: Any = None              # LPIPSMetric or None
    lpips_reason: Optional[str] = None

    @classmethod
    def create(cls, device: torch.device) -> "Scorer":
        from dcvc_bench.eval.metrics import LPIPSMetric

        ok, reason = LPIPSMetric.available()
        if not ok:
            return cls(device, None, f"unavailable: {reason}")
        return cls(device, LPIPSMetric(device), None)

    def lpips_for(self, height: int, width: int) -> tuple[Any, Optional[str]]:
        from dcvc_bench.eval.metrics import LPIPS_MIN_SIDE

        if self.lpips is None:
            return None, self.lpips_reason
        if min(height, width) < LPIPS_MIN_SIDE:
            return None, f"unavailable: frames under {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE} px"
        return self.lpips, None

    @torch.no_grad()
    def frame(self, original: torch.Tensor, decoded: torch.Tensor) -> dict[str, Any]:
        """Metrics of one frame pair (1×3×H×W floats in [0, 1])."""
        from dcvc_bench.eval.metrics import frame_metrics

        metric, _ = self.lpips_for(original.shape[-2], original.shape[-1])
        values = frame_metrics(original, decoded, metric)
        return {k: float(v[0]) for k, v in values.items()}

    @torch.no_grad()
    def clip(self, original_u8: torch.Tensor, decoded_u8: torch.Tensor) -> list[dict[str, Any]]:
        """Per-frame metrics of two T×3×H×W uint8 clips."""
        from dcvc_bench.eval.metrics import frame_metrics

        metric, _ = self.lpips_for(original_u8.shape[-2], original_u8.shape[-1])
        out: list[dict[str, Any]] = []
        for start in range(0, original_u8.shape[0], METRIC_CHUNK):
            x = original_u8[start:start + METRIC_CHUNK].to(self.device).float().div_(255.0)
            y = decoded_u8[start:start + METRIC_CHUNK].to(self.device).float().div_(255.0)
            values = frame_metrics(x, y, metric)
            for i in range(x.shape[0]):
                out.append({k: float(v[i]) for k, v in values.items()})
        return out


# --------------------------------------------------------------------------- summaries


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [v for v in values]
    if not vals or any(v is None for v in vals):
        return None
    return sum(vals) / len(vals)  # type: ignore[arg-type]


def summarize_clip(per_frame: list[dict[str, Any]], pixels: int, header_bits: float = 0.0) -> dict[str, Any]:
    """A clip's figures from its frames: BPP over all bits (stream header included) and
    the original pixels; PSNR / MS-SSIM / LPIPS as means of per-frame values; the I- and
    P-frame split; the first three P-frames; timings and the real-vs-estimate gap when
    the frames carry them."""
    n = len(per_frame)
    bits = sum(f["bits"] for f in per_frame) + header_bits
    intra = [f for f in per_frame if f["kind"] == "I"]
    inter = [f for f in per_frame if f["kind"] != "I"]

    def part(frames: list[dict[str, Any]]) -> dict[str, Any]:
        return {"count": len(frames), "bpp": _mean(f["bpp"] for f in frames),
                "psnr": _mean(f["psnr"] for f in frames)}

    out: dict[str, Any] = {
        "frames": n, "bits": bits, "header_bits": header_bits, "bpp": bits / (n * pixels),
        "psnr": _mean(f["psnr"] for f in per_frame),
        "ms_ssim": _mean(f["ms_ssim"] for f in per_frame),
        "lpips": _mean(f.get("lpips") for f in per_frame),
        "i_frame": part(intra), "p_frame": part(inter),
        "p_first3": [{"index": f["index"], "bpp": f["bpp"], "psnr": f["psnr"]} for f in inter[:3]],
        "bpp_estimate": None, "rate_gap_percent": None,
        "enc_ms_per_frame": _mean(f.get("enc_ms") for f in per_frame),
        "dec_ms_per_frame": _mean(f.get("dec_ms") for f in per_frame),
    }
    if all(f.get("est_bits") is not None for f in per_frame):
        out["bpp_estimate"] = sum(f["est_bits"] for f in per_frame) / (n * pixels)
        out["rate_gap_percent"] = _gap(out["bpp"], out["bpp_estimate"])
    return out


def _gap(real: Optional[float], estimate: Optional[float]) -> Optional[float]:
    if real is None or estimate is None or estimate <= 0:
        return None
    return (real - estimate) / estimate * 100.0


def summarize_overall(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over clips (DCVC convention); timings weighted by frames; a metric missing
    for any clip is missing overall (a mean over a subset would mislead)."""

    def avg(key: str, sub: Optional[str] = None) -> Optional[float]:
        vals = [(c[key][sub] if sub else c[key]) for c in clips]
        vals = [v for v in vals if v is not None] if sub else vals
        return _mean(vals) if vals else None

    frames = sum(c["frames"] for c in clips)

    def timing(key: str) -> Optional[float]:
        if any(c[key] is None for c in clips):
            return None
        return sum(c[key] * c["frames"] for c in clips) / frames

    firsts = []
    for k in range(3):
        vals = [c["p_first3"][k] for c in clips if len(c["p_first3"]) > k]
        if vals:
            firsts.append({"index": vals[0]["index"] if len({v["index"] for v in vals}) == 1 else None,
                           "bpp": _mean(v["bpp"] for v in vals), "psnr": _mean(v["psnr"] for v in vals)})
    out = {
        "clips": len(clips), "frames": frames,
        "bpp": avg("bpp"), "psnr": avg("psnr"), "ms_ssim": avg("ms_ssim"), "lpips": avg("lpips"),
        "i_frame": {"count": sum(c["i_frame"]["count"] for c in clips),
                    "bpp": avg("i_frame", "bpp"), "psnr": avg("i_frame", "psnr")},
        "p_frame": {"count": sum(c["p_frame"]["count"] for c in clips),
                    "bpp": avg("p_frame", "bpp"), "psnr": avg("p_frame", "psnr")},
        "p_first3": firsts,
        "bpp_estimate": avg("bpp_estimate"),
        "enc_ms_per_frame": timing("enc_ms_per_frame"), "dec_ms_per_frame": timing("dec_ms_per_frame"),
    }
    out["rate_gap_percent"] = _gap(out["bpp"], out["bpp_estimate"])
    return out


# --------------------------------------------------------------------------- codecs


@dataclass
class Evaluator:
    """One RD point to evaluate on every clip: ``run(clip_name, frames_u8, scorer)``
    returns the per-frame records (and header bits, extras) of that clip."""

    id: str
    curve: str
    kind: str                   # learned | baseline | iframe
    bits: str                   # estimated | real
    source: dict[str, Any]
    run: Callable[[str, torch.Tensor, Scorer], tuple[list[dict[str, Any]], float, dict[str, Any]]]
    notes: list[str] = field(default_factory=list)


def iframe_notes(who: str, iframe: IFrameCodec) -> list[str]:
    """A warning for results that rest on an I-frame codec with random weights."""
    from dcvc_bench.models.iframe import RANDOM_WEIGHTS_WARNING

    if iframe.random_weights:
        return [f"{who}: {RANDOM_WEIGHTS_WARNING}" + (f" ({iframe.name})" if who != iframe.name else "")]
    return []


def build_iframe_from_checkpoint(path: Path, device: torch.device) -> IFrameCodec:
    """The I-frame codec a checkpoint was trained with, and only that: built from the spec
    in its ``i_frame`` record, read from the sidecar when it matches the file (else from
    the checkpoint), without building the P-frame model."""
    from dcvc_bench.checkpoint_io import iframe_spec_of
    from dcvc_bench.models.iframe import build_iframe_codec

    meta = _checkpoint_record(path)
    return build_iframe_codec(iframe_spec_of(meta, path), device=str(device))


def _checkpoint_record(path: Path) -> dict[str, Any]:
    """A checkpoint's metadata: its sidecar when it matches the file, else the checkpoint."""
    from dcvc_bench.checkpoints import read_meta

    meta = read_meta(path)
    if meta is None:
        from dcvc_bench.checkpoint_io import load_checkpoint

        meta = load_checkpoint(path, flag="--checkpoint")
    return meta


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """Stage, λ, quality index, step and preset of a checkpoint: from its sidecar when it
    matches the file, else from the checkpoint itself."""
    meta = _checkpoint_record(path)
    keys = ("stage", "lambda_value", "quality_index", "step_id", "gop_size", "epoch", "kind", "model_preset")
    return {k: meta.get(k) for k in keys}


def _learned_source(target: Target, meta: dict[str, Any], codec: Any, ema: bool) -> dict[str, Any]:
    parsed = _parse_name(target.path)
    return {"checkpoint": str(target.path.resolve()), "run": str(target.run_dir) if target.run_dir else None,
            "track": target.track, "stage": meta.get("stage"),
            "checkpoint_kind": parsed[1] if parsed else meta.get("kind"),
            "lambda": meta.get("lambda_value"), "quality_index": meta.get("quality_index"),
            "step_id": meta.get("step_id"), "model_preset": codec.preset,
            "i_frame": codec.iframe.identity(), "model_identity": codec.identity(), "ema": ema}


@torch.no_grad()
def estimate_frames(net: torch.nn.Module, iframe: Any, frames_u8: torch.Tensor, stage: int,
                    intra_period: int, device: torch.device, scorer: Scorer) -> list[dict[str, Any]]:
    """Per-frame bits and metrics of estimation-mode coding (the same frames as
    training's evaluation: :func:`dcvc_bench.eval.estimate.iter_estimated_frames`)."""
    from dcvc_bench.eval.estimate import iter_estimated_frames

    pixels = frames_u8.shape[-2] * frames_u8.shape[-1]
    records = []
    for coded in iter_estimated_frames(net, iframe, frames_u8, stage, intra_period, device):
        record = {"index": coded.index, "kind": coded.kind, "bits": float(coded.bits[0])}
        record["bpp"] = record["bits"] / pixels
        record.update(scorer.frame(coded.decoded, coded.x))
        records.append(record)
    return records


def learned_estimator(target: Target, ema: bool, intra_period: int, device: torch.device) -> Evaluator:
    from dcvc_bench.codec.video import load_codec

    codec = load_codec(target.path, ema=ema, device=str(device))
    meta = checkpoint_meta(target.path)
    stage = int(meta.get("stage") or 4)

    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer):
        return estimate_frames(codec.net, codec.iframe, frames_u8, stage, intra_period, device, scorer), 0.0, {}

    return Evaluator(target.track, "", "learned", "estimated", _learned_source(target, meta, codec, ema), run,
                     iframe_notes(target.track, codec.iframe))


def _video_api():
    try:
        from dcvc_bench.codec import video
    except ImportError as exc:
        raise UserError(f"--real needs dcvc_bench.codec.video (real entropy coding), which this installation "
                        f"does not have ({exc}); evaluate without --real for estimated bits") from None
    return video


def learned_real(target: Target, ema: bool, intra_period: int, device: torch.device) -> Evaluator:
    """Real coding: encode, decode the stream on its own, require the decoder to show
    exactly the encoder's frames, score the decoded frames; keep the estimate per frame."""
    video = _video_api()
    codec = video.load_codec(target.path, ema=ema, device=str(device))
    meta = checkpoint_meta(target.path)

    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer):
        pixels = frames_u8.shape[-2] * frames_u8.shape[-1]
        try:
            encoded = video.encode_video(codec, frames_u8, intra_period, name=name)
            decoded = video.decode_video(codec, encoded.stream, name=name)
        except UserError:
            raise
        except Exception as exc:
            raise RuntimeError(f"real coding of clip {name} with {target.path} failed: {exc}") from exc
        shown = torch.as_tensor(decoded.frames).cpu()
        if shown.shape != frames_u8.shape or not torch.equal(shown, torch.as_tensor(encoded.decoded).cpu()):
            bad = _first_mismatch(shown, torch.as_tensor(encoded.decoded).cpu())
            raise RuntimeError(f"clip {name}: the decoder does not reproduce the encoder's frames "
                               f"(first differing frame: {bad}) with {target.path}")
        dec_ms = _per_frame_ms(decoded.dec_seconds, len(encoded.frames))
        records = []
        for stats, metrics, dms in zip(encoded.frames, scorer.clip(frames_u8, shown), dec_ms):
            record = {"index": stats.index, "kind": stats.kind, "bits": float(stats.bits),
                      "bpp": float(stats.bits) / pixels, "est_bits": float(stats.est_bits),
                      "payload_bits": float(stats.payload_bits),  # bits minus the frame's framing
                      "enc_ms": float(stats.enc_seconds) * 1000.0, "dec_ms": dms}
            record.update(metrics)
            records.append(record)
        return records, float(encoded.header_bits), {"stream_bytes": len(encoded.stream)}

    return Evaluator(target.track, "", "learned", "real", _learned_source(target, meta, codec, ema), run,
                     iframe_notes(target.track, codec.iframe))


def _first_mismatch(a: torch.Tensor, b: torch.Tensor) -> Optional[int]:
    if a.shape != b.shape:
        return None
    for t in range(a.shape[0]):
        if not torch.equal(a[t], b[t]):
            return t
    return None


def _per_frame_ms(dec_seconds: Any, frames: int) -> list[Optional[float]]:
    """Decode time per frame in ms from a per-frame list or a total."""
    if isinstance(dec_seconds, (list, tuple)):
        return [float(s) * 1000.0 for s in dec_seconds]
    return [float(dec_seconds) * 1000.0 / frames] * frames


def baseline_evaluator(ffmpeg: str, point: Any, intra_period: int, workdir: Optional[Path] = None) -> Evaluator:
    from dcvc_bench.eval import baselines as bl

    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer):
        t, _, h, w = frames_u8.shape
        try:
            result = bl.run_baseline(ffmpeg, point, frames_u8.permute(0, 2, 3, 1).numpy(), intra_period, workdir)
        except RuntimeError as exc:
            raise RuntimeError(f"clip {name}: {exc}") from exc
        decoded = torch.from_numpy(np.ascontiguousarray(result.decoded.transpose(0, 3, 1, 2)))
        records = []
        for i, (unit, metrics) in enumerate(zip(result.units, scorer.clip(frames_u8, decoded))):
            record = {"index": i, "kind": "I" if unit.kind == "I" else "P", "bits": 8.0 * unit.size,
                      "bpp": 8.0 * unit.size / (h * w), "picture_type": unit.kind,
                      "enc_ms": result.enc_seconds * 1000.0 / t, "dec_ms": result.dec_seconds * 1000.0 / t}
            record.update(metrics)
            records.append(record)
        extra = {"stream_bytes": result.stream_bytes, "sha256": result.sha256,
                 "command": result.encode_argv, "command_display": bl.shell_display(result.encode_argv),
                 "decode_command": result.decode_argv,
                 "command_input": f"stdin: the clip's first {t} frames as raw rgb24 {w}x{h}"}
        return records, 0.0, extra

    source = {"codec": point.codec, "encoder": bl.CODECS[point.codec].encoder, "preset": point.preset,
              "rate_control": point.rate_control, "value": point.value}
    return Evaluator(point.label, point.codec, "baseline", "real", source, run)


# --------------------------------------------------------------------------- driver


def evaluate(evaluators: Sequence[Evaluator], clips: Sequence[Clip], frames: int, scorer: Scorer,
             ffmpeg: Optional[str] = None, echo: Callable[[str], None] = lambda s: None) -> tuple[list[dict], list[dict]]:
    """Run every evaluator on every clip (each clip decoded once, then freed).
    Returns (clip descriptions, per-evaluator results with per-clip and overall figures)."""
    from dcvc_bench.eval.metrics import ms_ssim_setting

    clip_info: list[dict[str, Any]] = []
    per_eval: dict[str, dict[str, Any]] = {ev.id: {} for ev in evaluators}
    for clip in clips:
        frames_u8 = load_clip(clip, frames)
        t, _, h, w = frames_u8.shape
        _, lpips_reason = scorer.lpips_for(h, w)
        info = {"name": clip.name, "path": str(clip.path.resolve()), "width": w, "height": h, "frames": t,
                "ms_ssim": ms_ssim_setting(h, w)["label"], "lpips": lpips_reason or "LPIPS (alex)"}
        if ffmpeg is not None:
            from dcvc_bench.eval import baselines as bl

            ceiling = scorer.clip(frames_u8, torch.from_numpy(np.ascontiguousarray(
                bl.colour_roundtrip(ffmpeg, frames_u8.permute(0, 2, 3, 1).numpy()).transpose(0, 3, 1, 2))))
            info["colour_roundtrip_psnr"] = _mean(m["psnr"] for m in ceiling)
        clip_info.append(info)
        for ev in evaluators:
            echo(f"{clip.name} ({w}x{h}, {t} frames): {ev.id}")
            records, header_bits, extra = ev.run(clip.name, frames_u8, scorer)
            summary = summarize_clip(records, h * w, header_bits)
            summary.update(extra)
            summary["per_frame"] = records
            per_eval[ev.id][clip.name] = summary
        del frames_u8
    results = []
    for ev in evaluators:
        clips_out = per_eval[ev.id]
        overall = summarize_overall(list(clips_out.values()))
        results.append({"id": ev.id, "curve": ev.curve, "kind": ev.kind, "bits": ev.bits,
                        "source": ev.source, "overall": overall, "clips": clips_out})
    return clip_info, results


def rd_section(results: list[dict[str, Any]], anchor: Optional[str], *, require_anchor: bool) -> Optional[dict[str, Any]]:
    """RD curves (one per codec, points sorted by rate) and BD figures against the anchor."""
    from dcvc_bench.eval.bdrate import BD_METHOD, rd_deltas

    curves: dict[str, dict[str, Any]] = {}
    for r in results:
        curve = curves.setdefault(r["curve"], {"name": r["curve"], "kind": r["kind"], "bits": r["bits"], "points": []})
        o = r["overall"]
        curve["points"].append({"label": r["id"], "bpp": o["bpp"], "psnr": o["psnr"], "ms_ssim": o["ms_ssim"],
                                "lpips": o["lpips"], "lambda": r["source"].get("lambda"),
                                "qp": r["source"].get("value")})
    for curve in curves.values():
        curve["points"].sort(key=lambda p: p["bpp"])
    listed = list(curves.values())
    if not listed:
        return None
    names = [c["name"] for c in listed]
    if anchor is not None and anchor not in names:
        if require_anchor:
            raise UserError(f"--anchor {anchor!r}: no such curve; curves are {', '.join(names)}")
        anchor = None
    bd = rd_deltas(listed, anchor) if anchor is not None and len(listed) > 1 else []
    return {"anchor": anchor, "bd_method": BD_METHOD, "curves": listed, "bd": bd}


def ms_ssim_label(clips: list[dict[str, Any]]) -> str:
    """The MS-SSIM variant of a set of clips: one label when they share it."""
    labels = sorted({c["ms_ssim"] for c in clips})
    return labels[0] if len(labels) == 1 else "MS-SSIM (scales vary by clip size)"


def check_anchor(anchor: Optional[str], curves: Sequence[str]) -> None:
    """Refuse an ``--anchor`` that names no curve before anything is evaluated."""
    names = list(dict.fromkeys(curves))
    if anchor is not None and anchor not in names:
        raise UserError(f"--anchor {anchor!r}: no such curve; curves are {', '.join(names)}")


def check_plottable(plot_out: Optional[Path], evaluators: Sequence[Evaluator]) -> None:
    """``--plot`` needs at least two RD points: refuse before evaluating anything."""
    if plot_out is not None and len(evaluators) < 2:
        raise UserError("--plot: one RD point makes no curve; evaluate several tracks or add --baselines")


def default_anchor(results: list[dict[str, Any]], requested: Optional[str]) -> Optional[str]:
    """``--anchor`` when given; else x265 when it ran, else the first baseline, else none."""
    if requested:
        return requested
    curves = [r["curve"] for r in results if r["kind"] == "baseline"]
    if "x265" in curves:
        return "x265"
    return curves[0] if curves else None


def _curve_name(targets: Sequence[Target], ema: bool) -> dict[int, str]:
    names = {}
    for i, t in enumerate(targets):
        base = t.run_dir.name if t.run_dir is not None else "learned"
        names[i] = f"{base} (EMA)" if ema else base
    return names


def run_eval(req: EvalRequest, echo: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Evaluate as asked and return the result document (see :mod:`report`); nothing is
    printed or written here."""
    from dcvc_bench.eval import baselines as bl

    check_counts(req.frames, req.intra_period)
    if req.baselines_only and req.checkpoints:
        raise UserError("--baselines-only evaluates no checkpoint: drop --checkpoint or --baselines-only")
    if req.baselines_only and not req.baselines:
        raise UserError("--baselines-only needs --baselines x265,x264")
    if not req.baselines and (req.qp or req.crf):
        raise UserError("--qp/--crf set the baselines' rate points: add --baselines x265,x264")
    points, ffmpeg = [], None
    if req.baselines:
        points = bl.parse_points(req.baselines, req.preset, req.qp, req.crf)
        ffmpeg = bl.find_ffmpeg(req.ffmpeg)
        bl.check_encoders(ffmpeg, sorted({p.codec for p in points}))
    device = resolve_device(req.device)

    targets: list[Target] = []
    notes: list[str] = []
    run_dir: Optional[Path] = None
    if req.baselines_only:
        if req.videos is None:
            run_dir = latest_run(req.runs_dir)
    else:
        targets, notes = resolve_targets(req.checkpoints, req.runs_dir)
        run_dir = next((t.run_dir for t in targets if t.run_dir is not None), None)
    clips = resolve_clips(req.videos, run_dir)

    curve_names = _curve_name(targets, req.ema)
    check_anchor(req.anchor, [*curve_names.values(), *(p.codec for p in points)])
    scorer = Scorer.create(device)
    evaluators: list[Evaluator] = []
    for i, target in enumerate(targets):
        make = learned_real if req.real else learned_estimator
        ev = make(target, req.ema, req.intra_period, device)
        ev.curve = curve_names[i]
        if any(e.id == ev.id for e in evaluators):
            ev.id = f"{ev.id} ({target.path.name})"
        evaluators.append(ev)
    evaluators += [baseline_evaluator(ffmpeg, p, req.intra_period) for p in points]
    check_plottable(req.plot_out, evaluators)

    clip_info, results = evaluate(evaluators, clips, req.frames, scorer, ffmpeg, echo)
    mode = "real" if req.real else ("baselines" if req.baselines_only else "estimate")
    anchor = default_anchor(results, req.anchor)
    rd = rd_section(results, anchor, require_anchor=req.anchor is not None)
    if rd is not None:
        rd["ms_ssim_label"] = ms_ssim_label(clip_info)
    return {
        "format": "dcvc-bench-eval", "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "created_unix": time.time(), "mode": mode,
        "run": str(run_dir.resolve()) if run_dir else None,
        "settings": {"frames": req.frames, "intra_period": req.intra_period, "real": req.real, "ema": req.ema,
                     "device": str(device), "videos": str(req.videos) if req.videos else None},
        "conventions": CONVENTIONS,
        "lpips": {"available": scorer.lpips is not None, "reason": scorer.lpips_reason, "net": "alex"},
        "baselines": bl.describe_settings(req.intra_period) if points else None,
        "clips": clip_info, "results": results, "rd": rd,
        "notes": notes + [n for ev in evaluators for n in ev.notes],
    }


CONVENTIONS = {
    "psnr": "RGB PSNR in dB on [0,1]: per frame, then the mean over frames (DCVC convention); "
            "overall = mean over clips",
    "bpp": "bits / (frames x original pixels); padding never counted; real streams include their header",
    "ms_ssim": "pytorch-msssim MS-SSIM, data range 1; reduced scales for small frames (labelled per clip)",
    "lpips": "LPIPS v0.1 AlexNet, only from local weights",
    "estimated_bits": "sum of -log2 likelihoods of the entropy models (no bitstream written)",
    "scored_frames": "estimation: the float reconstruction clamped to [0,1], as training reports it; "
                     "real coding and baselines: the 8-bit frames the decoder outputs",
    "rate_gap_percent": "(real BPP - estimated BPP) / estimated BPP x 100, real including the stream header",
}


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    path = folder / f"{stem}{suffix}"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def write_outputs(doc: dict[str, Any], req_json: Optional[Path], req_csv: Optional[Path],
                  plot_out: Optional[Path], write_run: bool) -> dict[str, str]:
    """Write the result document where asked and into the run folder's ``eval/``.
    Returns {what: path} of everything written."""
    from dcvc_bench.checkpoints import atomic_write_json, json_safe
    from dcvc_bench.eval import report

    written: dict[str, str] = {}
    run = doc.get("run")
    rd = doc.get("rd")
    plottable = rd is not None and (len(rd["curves"]) > 1 or any(len(c["points"]) > 1 for c in rd["curves"]))
    if write_run and run:
        folder = Path(run) / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{timestamp()}-{doc['mode']}"
        main = _unique(folder, stem, ".json")
        if plottable:
            from dcvc_bench.eval.plots import plot_rd

            png = main.with_name(main.stem + "-rd.png")
            plot_rd(rd, png, title=report.plot_title(doc))
            report.copy_file(png, folder / "rd.png")
            rd["plot"] = png.name
            rd_doc = report.rd_document(doc, source=main.name)
            atomic_write_json(main.with_name(main.stem + "-rd.json"), rd_doc)
            atomic_write_json(folder / "rd.json", rd_doc)
            written["rd"] = str(folder / "rd.json")
            written["plot"] = str(png)
        atomic_write_json(main, json_safe(doc))
        atomic_write_json(folder / "latest.json", json_safe(doc))
        written["run"] = str(main)
        written["latest"] = str(folder / "latest.json")
    if plot_out is not None:
        if not plottable:
            raise UserError("--plot: nothing to plot (needs two RD points or two codecs; add --baselines)")
        from dcvc_bench.eval.plots import plot_rd

        plot_rd(rd, plot_out, title=report.plot_title(doc))
        written["plot_out"] = str(plot_out)
    if req_json is not None:
        atomic_write_json(req_json, json_safe(doc))
        written["json"] = str(req_json)
    if req_csv is not None:
        report.write_csv(doc, req_csv)
        written["csv"] = str(req_csv)
    return written


def eval_command(req: EvalRequest) -> int:
    """The body of `dcvc-bench eval`: evaluate, print the tables, write the files."""
    from dcvc_bench.eval import report

    console = report.console()
    doc = run_eval(req, echo=lambda line: console.print(f"[dim]{line}[/dim]", highlight=False))
    written = write_outputs(doc, req.json_out, req.csv_out, req.plot_out, req.write_run)
    report.print_document(doc, console)
    for what, path in written.items():
        console.print(f"wrote {path}", highlight=False)
    return 0
