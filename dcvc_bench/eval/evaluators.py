"""Evaluators: one RD point each, run on every clip. A learned checkpoint estimated
(:func:`learned_estimator`, the estimate of training's evaluation and of `encode`) or
really coded (:func:`learned_real`: encode, decode the stream again, require the
decoder to show the encoder's frames), or an x265/x264 rate point
(:func:`baseline_evaluator`). Each returns per-frame records for
:func:`dcvc_bench.eval.scoring.summarize_clip`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np
import torch

from dcvc_bench.checkpoints import parse_checkpoint_name
from dcvc_bench.errors import UserError
from dcvc_bench.eval.scoring import Scorer
from dcvc_bench.eval.targets import Target

if TYPE_CHECKING:
    from dcvc_bench.models.iframe import IFrameCodec


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


def iframe_estimate_notes(who: str, iframe: IFrameCodec) -> list[str]:
    """Video evaluation's estimate is exact for P-frames (the coded symbols' cost); say so
    where the I-frame codec's estimate is not its coded size."""
    if iframe.exact_estimate:
        return []
    return [f"{who}: the I-frames' estimated bits are {iframe.name}'s entropy-model information content, "
            "not its coded size (only the P-frames' estimate is exact); --real gives both"]


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
    parsed = parse_checkpoint_name(target.path.name)
    return {"checkpoint": str(target.path.resolve()), "run": str(target.run_dir) if target.run_dir else None,
            "track": target.track, "stage": meta.get("stage"),
            "checkpoint_kind": parsed.kind if parsed else meta.get("kind"),
            "lambda": meta.get("lambda_value"), "quality_index": meta.get("quality_index"),
            "step_id": meta.get("step_id"), "model_preset": codec.preset,
            "i_frame": codec.iframe.identity(), "model_identity": codec.identity(), "ema": ema}


@torch.no_grad()
def iframe_rate_bits(iframe: IFrameCodec, x: torch.Tensor) -> Optional[dict[str, float]]:
    """The I-frame codec's other rates of one frame (1×3×H×W in [0, 1]) in bits, e.g. a
    VQ codec's uniform, entropy and real_equivalent (:meth:`IFrameCodec.rates`); None
    when the codec has none."""
    return {k: float(v[0]) for k, v in iframe.rates(x).items()} or None


@torch.no_grad()
def estimate_frames(codec: Any, frames_u8: torch.Tensor, intra_period: int, scorer: Scorer) -> list[dict[str, Any]]:
    """Per-frame bits and metrics of evaluation's estimate (the one training's evaluation
    and `encode` use: :func:`dcvc_bench.eval.estimate.iter_estimated_frames`); I-frames
    also carry the I-frame codec's other rates (``rate_bits``) where it has them."""
    from dcvc_bench.eval.estimate import iter_estimated_frames

    pixels = frames_u8.shape[-2] * frames_u8.shape[-1]
    records = []
    for coded in iter_estimated_frames(codec, frames_u8, intra_period):
        record = {"index": coded.index, "kind": coded.kind, "bits": coded.bits}
        record["bpp"] = record["bits"] / pixels
        if coded.kind == "I" and (rates := iframe_rate_bits(codec.iframe, coded.x)) is not None:
            record["rate_bits"] = rates
        record.update(scorer.frame(coded.x, coded.decoded, coded.index))
        records.append(record)
    return records


def learned_evaluators(target: Target, ema: bool, intra_period: int, device: torch.device, *, real: bool,
                       curve: str, depths: Sequence[int] = ()) -> list[Evaluator]:
    """The RD points of one checkpoint: one, or with ``depths`` one per RVQ depth (the
    same P-frame weights with the I-frame codec at that depth: ``id`` "<track> L<depth>",
    curve "<curve> L<depth>", ``source["rvq_layers"]``). Refused in one line, before
    anything is evaluated: depths on a checkpoint whose I-frame codec has no layers, or a
    depth above the trained one."""
    from dcvc_bench.codec.video import Codec, load_codec

    make = learned_real if real else learned_estimator
    codec = load_codec(target.path, ema=ema, device=str(device))
    if not depths:
        ev = make(target, ema, intra_period, device, codec)
        ev.curve = curve
        return [ev]
    if codec.iframe.rate_knob != "layers":
        raise UserError(f"--rvq-layers: {target.path} was trained with the I-frame codec {codec.iframe.name}, which "
                        "has no RVQ depth; use it on a run whose I-frame codec is an RVQ-VQGAN, or drop --rvq-layers")
    out = []
    for depth in depths:
        try:
            iframe = codec.iframe.with_rate(depth)
        except UserError as exc:
            why = re.sub(r"^--rvq_layers \S+ is ", "", str(exc))
            raise UserError(f"--rvq-layers {depth}: {target.path}: {why}") from None
        ev = make(target, ema, intra_period, device, Codec(codec.net, iframe, ema=ema, device=device))
        ev.id, ev.curve = f"{ev.id} L{depth}", f"{curve} L{depth}"
        ev.source["rvq_layers"] = depth
        out.append(ev)
    return out


def learned_estimator(target: Target, ema: bool, intra_period: int, device: torch.device,
                      codec: Any = None) -> Evaluator:
    """Estimation (:func:`estimate_frames`) of the checkpoint's codec (or ``codec``, one
    built from it)."""
    from dcvc_bench.codec.video import load_codec

    codec = codec if codec is not None else load_codec(target.path, ema=ema, device=str(device))
    meta = checkpoint_meta(target.path)

    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer, intra_period: int = intra_period):
        return estimate_frames(codec, frames_u8, intra_period, scorer), 0.0, {}

    return Evaluator(target.track, "", "learned", "estimated", _learned_source(target, meta, codec, ema), run,
                     iframe_notes(target.track, codec.iframe) + iframe_estimate_notes(target.track, codec.iframe))


def learned_real(target: Target, ema: bool, intra_period: int, device: torch.device, codec: Any = None) -> Evaluator:
    """Real coding: encode, decode the stream on its own, require the decoder to show
    exactly the encoder's frames, score the decoded frames; keep the estimate and the
    payload (bits without the frame's framing) per frame, and the I-frame codec's other
    rates (``rate_bits``) per I-frame where it has them."""
    from dcvc_bench.codec import video
    from dcvc_bench.codec.ar import coding_settings

    codec = codec if codec is not None else video.load_codec(target.path, ema=ema, device=str(device))
    meta = checkpoint_meta(target.path)

    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer, intra_period: int = intra_period):
        pixels = frames_u8.shape[-2] * frames_u8.shape[-1]
        try:
            encoded = video.encode_video(codec, frames_u8, intra_period, name=name)
            decoded = video.decode_video(codec, encoded.stream, name=name, max_pixels=None)  # its own stream: no size limit
        except UserError:
            raise
        except Exception as exc:
            raise RuntimeError(f"real coding of clip {name} with {target.path} failed: {exc}") from exc
        shown = torch.as_tensor(decoded.frames).cpu()
        if shown.shape != frames_u8.shape or not torch.equal(shown, torch.as_tensor(encoded.decoded).cpu()):
            bad = _first_mismatch(shown, torch.as_tensor(encoded.decoded).cpu())
            raise RuntimeError(f"clip {name}: the decoder does not reproduce the encoder's frames "
                               f"(first differing frame: {bad}) with {target.path}")
        records = []
        for stats, metrics, dec_s in zip(encoded.frames, scorer.clip(frames_u8, shown), decoded.dec_seconds):
            record = {"index": stats.index, "kind": stats.kind, "bits": float(stats.bits),
                      "bpp": float(stats.bits) / pixels, "est_bits": float(stats.est_bits),
                      # bits minus the frame's framing (and, I-frames, the I-frame codec's own)
                      "payload_bits": float(stats.payload_bits)
                      - (8.0 * codec.iframe.framing_bytes if stats.kind == "I" else 0.0),
                      "enc_ms": float(stats.enc_seconds) * 1000.0, "dec_ms": float(dec_s) * 1000.0}
            if stats.kind == "I":
                x = frames_u8[stats.index:stats.index + 1].to(codec.device).float() / 255.0  # as encode_video reads it
                with coding_settings(codec.threads):
                    rates = iframe_rate_bits(codec.iframe, x)
                if rates is not None:
                    record["rate_bits"] = rates
            record.update(metrics)
            records.append(record)
        return records, float(encoded.header_bits), {"stream_bytes": len(encoded.stream)}

    return Evaluator(target.track, "", "learned", "real", _learned_source(target, meta, codec, ema), run,
                     iframe_notes(target.track, codec.iframe) + iframe_estimate_notes(target.track, codec.iframe))


def _first_mismatch(a: torch.Tensor, b: torch.Tensor) -> Optional[int]:
    if a.shape != b.shape:
        return None
    for t in range(a.shape[0]):
        if not torch.equal(a[t], b[t]):
            return t
    return None


def baseline_evaluator(ffmpeg: str, point: Any, intra_period: int, workdir: Optional[Path] = None) -> Evaluator:
    """One x265/x264 rate point. A scorer with source planes (YUV 4:2:0 mode) makes it
    code those planes directly (:func:`~dcvc_bench.eval.baselines_yuv.run_baseline_yuv`),
    else the RGB frames (:func:`~dcvc_bench.eval.baselines.run_baseline`)."""
    from dcvc_bench.eval import baselines as bl
    from dcvc_bench.eval import baselines_yuv as yuv

    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer, intra_period: int = intra_period):
        t, _, h, w = frames_u8.shape
        try:
            if scorer.planes is not None:
                result: Any = yuv.run_baseline_yuv(ffmpeg, point, scorer.planes, scorer.bit_depth, intra_period, workdir)
                scored = scorer.planes_clip(result.decoded)
                what = (f"the clip's first {t} frames as raw {yuv.YUV_PIX_FMT} {w}x{h} "
                        f"(source planes << {yuv.YUV_INTERNAL_BIT_DEPTH - scorer.bit_depth})")
            else:
                result = bl.run_baseline(ffmpeg, point, frames_u8.permute(0, 2, 3, 1).numpy(), intra_period, workdir)
                decoded = torch.from_numpy(np.ascontiguousarray(result.decoded.transpose(0, 3, 1, 2)))
                scored = scorer.clip(frames_u8, decoded)
                what = f"the clip's first {t} frames as raw rgb24 {w}x{h}"
        except RuntimeError as exc:
            raise RuntimeError(f"clip {name}: {exc}") from exc
        records = []
        for i, (unit, metrics) in enumerate(zip(result.units, scored)):
            record = {"index": i, "kind": "I" if unit.kind == "I" else "P", "bits": 8.0 * unit.size,
                      "bpp": 8.0 * unit.size / (h * w), "picture_type": unit.kind,
                      "enc_ms": result.enc_seconds * 1000.0 / t, "dec_ms": result.dec_seconds * 1000.0 / t}
            record.update(metrics)
            records.append(record)
        extra = {"stream_bytes": result.stream_bytes, "sha256": result.sha256,
                 "command": result.encode_argv, "command_display": bl.shell_display(result.encode_argv),
                 "decode_command": result.decode_argv, "command_input": f"stdin: {what}"}
        return records, 0.0, extra

    source = {"codec": point.codec, "encoder": bl.CODECS[point.codec].encoder, "preset": point.preset,
              "rate_control": point.rate_control, "value": point.value}
    return Evaluator(point.label, point.codec, "baseline", "real", source, run)
