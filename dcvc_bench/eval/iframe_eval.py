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

Rate-scalable codecs: ``--layers 2,4,6,8`` (a type whose spec has ``layers``, e.g. RVQ) builds
the codec once and evaluates it at each depth (``with_rate``), one RD curve. A codec with
other rate measures (``rates(x)``: a VQ codec's uniform and entropy rates) has them per
frame, clip and point beside the bits; with ``--real`` every point also carries its
estimate (real vs est.). ``--config`` is the architecture JSON of a type that has one; a
``--checkpoint`` that is the type's own weights file (a VQ checkpoint) is its weights.

Metrics: PSNR, SSIM, MS-SSIM, LPIPS per frame (:mod:`dcvc_bench.eval.metrics`) and FID per
point over all its frames (:mod:`dcvc_bench.eval.fid`, when its weights are on this machine
and enough frames are evaluated), summarised and written as `dcvc-bench eval`'s are (the
one summariser, :mod:`dcvc_bench.eval.scoring`; the document, :mod:`dcvc_bench.evaldoc`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch

from dcvc_bench.curriculum.iframe_spec import I_FRAME_TYPES, IFrameSpec
from dcvc_bench.errors import UserError
from dcvc_bench.eval.evaluators import (Evaluator, baseline_evaluator, build_iframe_from_checkpoint, iframe_notes,
                                        iframe_rate_bits)
from dcvc_bench.eval.rd import check_anchor, check_plottable, default_anchor, ms_ssim_label, rd_section
from dcvc_bench.eval.run_eval import evaluate, fid_scorer, write_outputs
from dcvc_bench.eval.scoring import Scorer
from dcvc_bench.eval.targets import EvalOptions, Target, check_counts, resolve_clips, resolve_device, resolve_targets
from dcvc_bench.evaldoc import EvalDocument, eval_document, lpips_doc, settings_doc

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
    config: Optional[Path] = None
    layers: Optional[str] = None


def _numbers(text: Optional[str], option: str = "--quality", example: str = "50,70,90") -> list[Optional[int]]:
    if text is None:
        return [None]  # the family's default
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected whole numbers separated by commas, e.g. {example}") from None
    if not values:
        raise UserError(f"{option}: give at least one value")
    return sorted(set(values))


def _settings(items: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set codec=webp")
        settings[key.strip()] = value.strip()
    return settings


def _fields(type_: str) -> dict[str, Any]:
    from dcvc_bench.curriculum.iframe_spec import SPECS

    family = SPECS.get(type_)
    if family is None:
        raise UserError(f"--type {type_!r}: unknown I-frame type; use one of {', '.join(I_FRAME_TYPES)}")
    return family.model_fields


def check_codec_options(req: IFrameEvalRequest) -> None:
    """``--config`` and ``--layers`` only where the type has those fields; a required
    architecture file asked for by its option name."""
    assert req.type is not None
    fields = _fields(req.type)
    with_layers = [t for t in I_FRAME_TYPES if "layers" in _fields(t)]
    if req.layers is not None:
        if "layers" not in fields:
            raise UserError(f"--layers: --type {req.type} has no layers rate setting (types that have: "
                            f"{', '.join(with_layers) or 'none'}); use --quality for its rate")
        if req.quality is not None:
            raise UserError("--layers and --quality both set the rate here: give one")
    if req.config is not None and "config" not in fields:
        raise UserError(f"--config: --type {req.type} has no architecture file")
    if req.config is None and "config" in fields and fields["config"].is_required() \
            and not any(item.partition("=")[0].strip() == "config" for item in req.settings):
        raise UserError(f"--type {req.type} needs --config JSON: the architecture file its checkpoint was trained with")


def requested_specs(req: IFrameEvalRequest) -> list[IFrameSpec]:
    """The specs ``--type`` and its options describe: one per ``--quality`` value (with
    ``--layers``, one spec at full depth: the depths are taken by ``with_rate``)."""
    from dcvc_bench.curriculum.iframe_spec import spec_from_options

    assert req.type is not None
    check_codec_options(req)
    settings = _settings(req.settings)
    if req.config is not None:
        settings["config"] = str(req.config)
    return [spec_from_options(req.type, {"model": req.model, "quality": q, "pretrained": req.pretrained,
                                         "weights": str(req.weights) if req.weights else None}, settings)
            for q in _numbers(req.quality)]


def _split_weights(req: IFrameEvalRequest) -> IFrameEvalRequest:
    """A ``--checkpoint`` that is an I-frame codec's own weights file (e.g. a VQ checkpoint)
    becomes ``--weights`` of ``--type``; training checkpoints and run folders stay."""
    from dataclasses import replace

    from dcvc_bench.models.iframe import iframe_weights_type

    own = [(p, t) for p in req.checkpoints if Path(p).is_file() for t in [iframe_weights_type(p)] if t]
    if not own:
        return req
    path, found = own[0]
    if req.type is None:
        raise UserError(f"--checkpoint {path} is a {found} I-frame checkpoint, not a training checkpoint: "
                        f"add --type {found} --config JSON (the architecture it was trained with)")
    if found != req.type:
        raise UserError(f"--checkpoint {path} is a {found} I-frame checkpoint: use --type {found}, not {req.type}")
    if len(own) > 1 or req.weights is not None:
        raise UserError(f"--checkpoint {path}: give one weights file for --type {req.type} "
                        "(one --checkpoint or --weights)")
    return replace(req, weights=Path(path), checkpoints=[p for p in req.checkpoints if p != path])


def _rate_points(codec: IFrameCodec, layers: Optional[str]) -> list[IFrameCodec]:
    """The codec at each ``--layers`` depth (out of range: one line), or the codec alone."""
    if layers is None:
        return [codec]
    points = []
    for value in _numbers(layers, "--layers", "2,4,6,8"):
        try:
            points.append(codec.with_rate(value))
        except UserError as exc:  # the family names its trainer flag first ("--rvq_layers 9 is ..."): ours here
            text = str(exc)
            text = text.split(" ", 2)[-1] if text.startswith("--") and f" {value} " in text[:40] else f": {text}"
            raise UserError(f"--layers {value} {text}".replace(" : ", ": ")) from None
    return points


def iframe_evaluator(codec: IFrameCodec, point: str, curve: str, source: dict[str, Any], real: bool,
                     device: torch.device) -> Evaluator:
    """Every frame through ``codec`` alone: its estimate, or a real encode + decode (then
    the estimate too, unless the estimate is itself real). Per frame also the codec's
    other rates (``rate_bits``, summarised as ``rates_bpp``)."""

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
                if not codec.exact_estimate:
                    record["est_bits"] = float(codec.estimate(x).bits[0])
                x_hat = (x_hat.clamp(0.0, 1.0) * 255.0).round() / 255.0  # the 8-bit picture a decoder outputs
            else:
                result = codec.estimate(x)
                x_hat = result.x_hat.to(device)
                record["bits"] = float(result.bits[0])
            rates = iframe_rate_bits(codec, x)
            if rates:
                record["rate_bits"] = rates
            record["bpp"] = record["bits"] / (h * w)
            record.update(scorer.frame(x, x_hat.clamp(0.0, 1.0)))
            records.append(record)
        return records, 0.0, {}

    bits = "real" if real or codec.exact_estimate else "estimated"
    return Evaluator(point, curve, "iframe", bits, {**source, "identity": codec.identity()}, run,
                     iframe_notes(point, codec))


def iframe_evaluators(req: IFrameEvalRequest, device: torch.device,
                      ) -> tuple[list[Evaluator], Optional[Path], list[str]]:
    """The codecs to evaluate, the run folder they came from (if any) and notes."""
    from dcvc_bench.models.iframe import build_iframe_codec

    evaluators: list[Evaluator] = []
    run_dir: Optional[Path] = None
    notes: list[str] = []
    if req.type is not None:
        for spec in requested_specs(req):
            for codec in _rate_points(build_iframe_codec(spec, device=str(device)), req.layers):
                evaluators.append(iframe_evaluator(codec, codec.name, spec.curve,
                                                   {"i_frame": codec.spec.to_record()}, req.real, device))
    elif req.model or req.quality or req.pretrained or req.weights or req.settings or req.config or req.layers:
        raise UserError("--model/--quality/--pretrained/--weights/--set/--config/--layers describe a codec: add "
                        f"--type ({' | '.join(I_FRAME_TYPES)})")
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


def run_iframe_eval(req: IFrameEvalRequest, echo: Callable[[str], None] = lambda s: None) -> EvalDocument:
    """Evaluate as asked and return the result document; nothing is printed or written here."""
    from dcvc_bench.eval import baselines as bl

    check_counts(req.frames, 1)
    points, ffmpeg = [], None
    if req.baselines:
        points = bl.parse_points(req.baselines, req.preset, req.qp, req.crf)
        ffmpeg = bl.find_ffmpeg(req.ffmpeg)
        bl.check_encoders(ffmpeg, sorted({p.codec for p in points}))
    elif req.qp or req.crf:
        raise UserError("--qp/--crf set the baselines' rate points: add --baselines x265,x264")
    device = resolve_device(req.device)
    req = _split_weights(req)
    evaluators, run_dir, notes = iframe_evaluators(req, device)
    clips = resolve_clips(req.videos, run_dir)
    evaluators += [baseline_evaluator(ffmpeg, p, 1) for p in points]
    check_anchor(req.anchor, [ev.curve for ev in evaluators])
    check_plottable(req.plot_out, evaluators)
    fid = fid_scorer(req, device, clips)
    scorer = Scorer.create(device, fid)
    clip_info, results = evaluate(evaluators, clips, req.frames, scorer, ffmpeg, echo)
    anchor = default_anchor(results, req.anchor)
    rd = rd_section(results, anchor, require_anchor=req.anchor is not None)
    if rd is not None:
        rd["ms_ssim_label"] = ms_ssim_label(clip_info)
    layers = _numbers(req.layers, "--layers", "2,4,6,8") if req.layers is not None else None
    return eval_document(
        mode="iframe-real" if req.real else "iframe-estimate", run=str(run_dir.resolve()) if run_dir else None,
        settings=settings_doc(frames=req.frames, intra_period=1, real=req.real, ema=False, device=str(device),
                              videos=str(req.videos) if req.videos else None, layers=layers),  # type: ignore[arg-type]
        lpips=lpips_doc(scorer.lpips is not None, scorer.lpips_reason), fid=fid.describe(),
        baselines=bl.describe_settings(1) if points else None,
        clips=clip_info, results=results, rd=rd, notes=notes + [n for ev in evaluators for n in ev.notes])


def eval_iframe_command(req: IFrameEvalRequest) -> int:
    """The body of `dcvc-bench eval-iframe`."""
    from dcvc_bench.eval import report

    console = report.console()
    doc = run_iframe_eval(req, echo=lambda line: console.print(f"[dim]{line}[/dim]", highlight=False))
    written = write_outputs(doc, req.json_out, req.csv_out, req.plot_out, req.write_run, linear_bpp=req.linear_bpp)
    report.print_document(doc, console)
    for path in written.values():
        console.print(f"wrote {path}", highlight=False)
    return 0
