"""`dcvc-bench eval-iframe`: an I-frame codec alone, every frame coded as an I-frame (the
seed's ``test_iframe``), scored by the same metric code as everything else.

Codecs: ``--type T`` with its options (``--model``, ``--quality Q[,Q...]`` — one RD point
per value —, ``--pretrained``, ``--weights``, ``--set FIELD=VALUE``; each I-frame family
maps them to its spec, see :func:`dcvc_bench.curriculum.iframe_spec.spec_from_options`),
and/or the I-frame codec recorded in each ``--checkpoint`` (built alone, from the spec in
its record); with neither, the I-frame codecs of the most recent run's checkpoints. Bits:
``estimate`` (likelihoods, float reconstruction; default) or ``--real`` (``encode`` then
``decode``, 8·len(bytes), scored on the 8-bit decoded picture). A codec whose estimate *is*
a real encode (OpenCV's JPEG/WebP) has its bits labelled real in both modes.
``--baselines`` runs x265/x264 all-intra (intra period 1) on the same frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch

from dcvc_bench.curriculum.iframe_spec import I_FRAME_TYPES, IFrameSpec
from dcvc_bench.errors import UserError
from dcvc_bench.eval.run_eval import (
    CONVENTIONS,
    EvalOptions,
    Evaluator,
    Scorer,
    Target,
    baseline_evaluator,
    build_iframe_from_checkpoint,
    check_anchor,
    check_plottable,
    default_anchor,
    evaluate,
    iframe_notes,
    ms_ssim_label,
    rd_section,
    resolve_clips,
    resolve_device,
    resolve_targets,
    write_outputs,
)

if TYPE_CHECKING:
    from dcvc_bench.models.iframe import IFrameCodec

@dataclass
class IFrameEvalRequest(EvalOptions):
    """Everything `dcvc-bench eval-iframe` was asked: the shared options plus the codec
    (``type`` and its options; ``settings`` are ``FIELD=VALUE`` texts for any spec field)."""

    type: Optional[str] = None
    model: Optional[str] = None
    quality: Optional[str] = None
    pretrained: bool = False
    weights: Optional[Path] = None
    settings: list[str] = field(default_factory=list)


def _qualities(text: Optional[str]) -> list[Optional[int]]:
    if text is None:
        return [None]  # the family's default
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--quality {text!r}: expected whole numbers separated by commas, e.g. 50,70,90") from None
    if not values:
        raise UserError("--quality: give at least one value")
    return sorted(set(values))


def _settings(items: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set codec=webp")
        settings[key.strip()] = value.strip()
    return settings


def requested_specs(req: IFrameEvalRequest) -> list[IFrameSpec]:
    """The specs ``--type`` and its options describe: one per ``--quality`` value."""
    from dcvc_bench.curriculum.iframe_spec import spec_from_options

    assert req.type is not None
    settings = _settings(req.settings)
    return [spec_from_options(req.type, {"model": req.model, "quality": q, "pretrained": req.pretrained,
                                         "weights": str(req.weights) if req.weights else None}, settings)
            for q in _qualities(req.quality)]


def iframe_evaluator(codec: IFrameCodec, point: str, curve: str, source: dict[str, Any], real: bool,
                     device: torch.device) -> Evaluator:
    """Every frame through ``codec`` alone: its estimate, or a real encode + decode."""

    @torch.no_grad()
    def run(name: str, frames_u8: torch.Tensor, scorer: Scorer):
        h, w = frames_u8.shape[-2:]
        records = []
        for t in range(frames_u8.shape[0]):
            x = frames_u8[t:t + 1].to(device).float().div_(255.0)
            record: dict[str, Any] = {"index": t, "kind": "I"}
            if real:
                start = time.perf_counter()
                data = codec.encode(x)
                middle = time.perf_counter()
                try:
                    x_hat = codec.decode(data, (h, w)).to(device)
                except ValueError as exc:
                    raise RuntimeError(f"clip {name} frame {t}: {codec.name} cannot decode its own stream: {exc}") from exc
                end = time.perf_counter()
                record.update(bits=8.0 * len(data), enc_ms=(middle - start) * 1000.0, dec_ms=(end - middle) * 1000.0)
                x_hat = (x_hat.clamp(0.0, 1.0) * 255.0).round() / 255.0  # the 8-bit picture a decoder outputs
            else:
                result = codec.estimate(x)
                x_hat = result.x_hat.to(device)
                record["bits"] = float(result.bits[0])
            record["bpp"] = record["bits"] / (h * w)
            record.update(scorer.frame(x, x_hat.clamp(0.0, 1.0)))
            records.append(record)
        return records, 0.0, {}

    bits = "real" if real or codec.exact_estimate else "estimated"
    return Evaluator(point, curve, "iframe", bits, {**source, "identity": codec.identity()}, run,
                     iframe_notes(point, codec))


def iframe_evaluators(req: IFrameEvalRequest, device: torch.device) -> tuple[list[Evaluator], Optional[Path], list[str]]:
    """The codecs to evaluate, the run folder they came from (if any) and notes."""
    from dcvc_bench.models.iframe import build_iframe_codec

    evaluators: list[Evaluator] = []
    run_dir: Optional[Path] = None
    notes: list[str] = []
    if req.type is not None:
        for spec in requested_specs(req):
            codec = build_iframe_codec(spec, device=str(device))
            evaluators.append(iframe_evaluator(codec, codec.name, spec.curve, {"i_frame": spec.to_record()},
                                               req.real, device))
    elif req.model or req.quality or req.pretrained or req.weights or req.settings:
        raise UserError("--model/--quality/--pretrained/--weights/--set describe a codec: add --type "
                        f"({' | '.join(I_FRAME_TYPES)})")
    targets: list[Target] = []
    if req.checkpoints or req.type is None:
        targets, notes = resolve_targets(req.checkpoints, req.runs_dir)
    seen = {ev.source["identity"] for ev in evaluators}
    for target in targets:
        codec = build_iframe_from_checkpoint(target.path, device)
        run_dir = run_dir or target.run_dir
        if codec.identity() in seen:
            continue
        seen.add(codec.identity())
        source = {"checkpoint": str(target.path), "track": target.track, "i_frame": codec.spec.to_record()}
        evaluators.append(iframe_evaluator(codec, codec.name, codec.name, source, req.real, device))
    return evaluators, run_dir, notes


def run_iframe_eval(req: IFrameEvalRequest, echo: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    from dcvc_bench.eval import baselines as bl
    from dcvc_bench.eval.run_eval import check_counts

    check_counts(req.frames, 1)
    points, ffmpeg = [], None
    if req.baselines:
        points = bl.parse_points(req.baselines, req.preset, req.qp, req.crf)
        ffmpeg = bl.find_ffmpeg(req.ffmpeg)
        bl.check_encoders(ffmpeg, sorted({p.codec for p in points}))
    elif req.qp or req.crf:
        raise UserError("--qp/--crf set the baselines' rate points: add --baselines x265,x264")
    device = resolve_device(req.device)
    evaluators, run_dir, notes = iframe_evaluators(req, device)
    clips = resolve_clips(req.videos, run_dir)
    evaluators += [baseline_evaluator(ffmpeg, p, 1) for p in points]
    check_anchor(req.anchor, [ev.curve for ev in evaluators])
    check_plottable(req.plot_out, evaluators)
    scorer = Scorer.create(device)
    clip_info, results = evaluate(evaluators, clips, req.frames, scorer, ffmpeg, echo)
    anchor = default_anchor(results, req.anchor)
    mode = "iframe-real" if req.real else "iframe-estimate"
    rd = rd_section(results, anchor, require_anchor=req.anchor is not None)
    if rd is not None:
        rd["ms_ssim_label"] = ms_ssim_label(clip_info)
    return {
        "format": "dcvc-bench-eval", "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "created_unix": time.time(), "mode": mode,
        "run": str(run_dir.resolve()) if run_dir else None,
        "settings": {"frames": req.frames, "intra_period": 1, "real": req.real, "ema": False,
                     "device": str(device), "videos": str(req.videos) if req.videos else None},
        "conventions": CONVENTIONS,
        "lpips": {"available": scorer.lpips is not None, "reason": scorer.lpips_reason, "net": "alex"},
        "baselines": bl.describe_settings(1) if points else None,
        "clips": clip_info, "results": results,
        "rd": rd, "notes": notes + [n for ev in evaluators for n in ev.notes],
    }


def eval_iframe_command(req: IFrameEvalRequest) -> int:
    """The body of `dcvc-bench eval-iframe`."""
    from dcvc_bench.eval import report

    console = report.console()
    doc = run_iframe_eval(req, echo=lambda line: console.print(f"[dim]{line}[/dim]", highlight=False))
    written = write_outputs(doc, req.json_out, req.csv_out, req.plot_out, req.write_run)
    report.print_document(doc, console)
    for path in written.values():
        console.print(f"wrote {path}", highlight=False)
    return 0
