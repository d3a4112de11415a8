"""Evaluation's estimate: the bits the real coder would write, without writing them.

One function serves `dcvc-bench eval`, `dcvc-bench encode`/`eval --real` and training's
periodic evaluation: :meth:`~dcvc_bench.codec.pframe.PFrameCoder.analyse` computes the
symbols and CDF indexes that real coding writes, along the real decoded chain (the
autoregressive latents' context sees ``y_hat = round(y − μ) + μ`` as the decoder does,
scales go through the scale table), and
:meth:`~dcvc_bench.codec.ar.RansTables.code_length` prices each symbol as CompressAI's
rANS coder does (16-bit quantised CDF, bypass words for symbols outside a table). Each
decoded frame is the 8-bit picture a decoder shows, and it is the next reference. Real
bits exceed the estimate only by container framing and the rANS final-state flush.
I-frames: the I-frame codec's own ``estimate`` (exact for OpenCV JPEG/WebP).

The network's likelihoods (``DCVC.forward``) stay the *training* rate: differentiable,
with uniform noise in place of rounding, the context fed ``round(y)``, the Gaussian's
continuous tail charged where the coder's tables stop at 2⁻¹⁶. Training's evaluation
measures that proxy on the same P-frames and reports its bias (``train_proxy``).

Figures (per clip and overall, with the rule for a missing one) come from the summariser
of every evaluation, :mod:`dcvc_bench.eval.scoring`; training adds its losses, the
training rate's bias and latent health (:func:`training_figures`, :func:`latent_stats`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch

from dcvc_bench.codec.ar import coding_settings
from dcvc_bench.codec.gop import code_frames, decoded_picture
from dcvc_bench.codec.pframe import STREAM_ORDER, PFrameAnalysis
from dcvc_bench.codec.video import Codec
from dcvc_bench.eval.metrics import ms_ssim, psnr, ssim
from dcvc_bench.eval.scoring import mean, summarize_clip, summarize_overall
from dcvc_bench.models.iframe import IFrameCodec
from dcvc_bench.models.stages import RATE_TERMS

#: What eval events and documents call this estimate.
ESTIMATE = "coded-symbols"
#: What train events' bpp fields are.
TRAIN_RATE = "likelihood-proxy"


@dataclass
class EstimatedFrame:
    index: int
    kind: str                        # "I" or "P"
    x: torch.Tensor                  # original, 1×3×H×W float in [0, 1]
    decoded: torch.Tensor            # the 8-bit picture a decoder shows, as float; the next reference
    bits: float                      # estimated bits of the frame
    latent_bits: dict[str, float] | None = None    # P-frames: per coded tensor (STREAM_ORDER)
    analysis: PFrameAnalysis | None = None
    proxy_bits: float | None = None  # P-frames, when asked: training's likelihood rate of the same frame


def eval_codec(net: torch.nn.Module, iframe: IFrameCodec, device: torch.device) -> Codec:
    """A coder for ``net`` as it is now, without touching it: a frozen copy in eval mode
    with its CDF tables built (training keeps training the original)."""
    return Codec(copy.deepcopy(net), iframe, device=device)


@torch.no_grad()
def iter_estimated_frames(codec: Codec, frames_u8: torch.Tensor, intra_period: int | None,
                          proxy_net: torch.nn.Module | None = None) -> Iterator[EstimatedFrame]:
    """Estimate one clip (T×3×H×W uint8) frame by frame through the shared GOP loop,
    under real coding's numerics (:func:`~dcvc_bench.codec.ar.coding_settings`), so the
    figures are those `encode` prints. Frames stay uint8 until each is coded.

    ``proxy_net`` (a model in any mode, left in it): also price each P-frame with the
    training rate, i.e. its forward pass in training mode (uniform noise; the RNG state
    is restored afterwards)."""
    device = codec.device

    def as_float(x_u8: torch.Tensor) -> torch.Tensor:
        return x_u8.to(device).float().div_(255.0)

    def iframe_fn(x_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = codec.iframe.estimate(as_float(x_u8))
        return decoded_picture(result.x_hat.to(device)), result.bits.to(device)

    def pframe_fn(ref: torch.Tensor, x_u8: torch.Tensor) -> dict[str, Any]:
        x = as_float(x_u8)
        analysis = codec.pframe.analyse(ref, x)
        bits = analysis.bits()
        out: dict[str, Any] = {"x_hat": decoded_picture(analysis.x_hat), "analysis": analysis,
                               "bits": {k: torch.tensor([v], dtype=torch.float64) for k, v in bits.items()},
                               "latent_bits": bits}
        if proxy_net is not None:
            out["proxy_bits"] = _proxy_bits(proxy_net, ref, x)
        return out

    with coding_settings(codec.threads):
        for coded in code_frames(frames_u8.unsqueeze(0), iframe_fn, pframe_fn, lambda out: out["x_hat"],
                                 intra_period):
            out = coded.output or {}
            yield EstimatedFrame(coded.index, coded.kind, as_float(coded.x), coded.decoded,
                                 float(coded.bits[0]), out.get("latent_bits"), out.get("analysis"),
                                 out.get("proxy_bits"))


def _proxy_bits(net: torch.nn.Module, ref: torch.Tensor, x: torch.Tensor) -> float:
    """Training's rate of one P-frame: the likelihoods of a training-mode forward pass."""
    was_training = net.training
    devices = [ref.device] if ref.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        net.train()
        try:
            out = net(ref, x)
        finally:
            net.train(was_training)
    return float(sum(b[0] for b in out["bits"].values()))


def latent_counts(analysis: PFrameAnalysis) -> dict[str, dict[str, float]]:
    """Per coded tensor of one P-frame: non-zero symbols, symbols, Σ|latent|, elements, bits."""
    bits = analysis.bits()
    return {name: {"nonzero": int(c.symbols.count_nonzero()), "symbols": c.symbols.numel(),
                   "abs_sum": float(c.latent.abs().sum()), "elements": c.latent.numel(), "bits": bits[name]}
            for name, c in analysis.coded.items()}


def latent_stats(counts: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]] | None:
    """Per coded tensor over P-frames (:func:`latent_counts` of each): the fraction of
    non-zero symbols, the mean |latent| before quantisation, and its share of the bits."""
    if not counts:
        return None
    total = sum(c[name]["bits"] for c in counts for name in STREAM_ORDER)
    out = {}
    for name in STREAM_ORDER:
        part = [c[name] for c in counts]
        out[name] = {
            "nonzero": sum(p["nonzero"] for p in part) / max(sum(p["symbols"] for p in part), 1),
            "mean_abs": sum(p["abs_sum"] for p in part) / max(sum(p["elements"] for p in part), 1),
            "rate_share": sum(p["bits"] for p in part) / total if total > 0 else 0.0,
        }
    return out


@torch.no_grad()
def evaluate_clip(codec: Codec, frames_u8: torch.Tensor, stage: int, lmbda: float,
                  intra_period: int | None, proxy_net: torch.nn.Module | None = None) -> dict[str, Any]:
    """Estimate one clip (T×3×H×W uint8) and return its per-frame and summary metrics:
    the figures of :func:`~dcvc_bench.eval.scoring.summarize_clip` (the summariser of
    every evaluation) plus training's own (:func:`training_figures`)."""
    pixels = frames_u8.shape[-2] * frames_u8.shape[-1]
    per_frame, counts = [], []
    for coded in iter_estimated_frames(codec, frames_u8, intra_period, proxy_net):
        mse = float(torch.mean((coded.decoded - coded.x) ** 2))
        record = {
            "index": coded.index, "kind": coded.kind,
            "psnr": float(psnr(coded.decoded, coded.x)[0]),
            "ssim": float(ssim(coded.decoded, coded.x)[0]),
            "ms_ssim": float(ms_ssim(coded.decoded, coded.x)[0]),
            "bits": coded.bits, "bpp": coded.bits / pixels, "mse": mse,
        }
        if coded.analysis is not None:
            record["latent_bits"] = coded.latent_bits
            record["loss"] = selection_loss(mse, coded.latent_bits, pixels, stage, lmbda)
            counts.append(latent_counts(coded.analysis))
        if coded.proxy_bits is not None:
            record["proxy_bits"] = coded.proxy_bits
        per_frame.append(record)
    summary = summarize_clip(per_frame, pixels)
    summary.update(training_figures(per_frame, summary["bpp"], lmbda, pixels))
    summary["latents"] = latent_stats(counts)
    summary["per_frame"] = per_frame
    return summary


def selection_loss(mse: float, latent_bits: dict[str, float], pixels: int, stage: int, lmbda: float) -> float:
    """What ``best`` is chosen on, per P-frame, on the codec a decoder implements: λ·MSE of
    the decoded frame x̂ (in every stage, stage 1 included: a decoder never shows the
    warped prediction) plus the bits per pixel of the rate terms the stage trains."""
    return lmbda * mse + sum(latent_bits[term[len("bpp_"):]] for term in RATE_TERMS[stage]) / pixels


def training_figures(per_frame: list[dict[str, Any]], bpp: float, lmbda: float, pixels: int) -> dict[str, Any]:
    """What training's evaluation adds to a clip's figures: ``rd_loss`` (λ·MSE + BPP, all
    frames), ``loss`` (the mean selection loss of its P-frames; None without one) and
    ``train_proxy`` (the training rate's BPP and bias on the same P-frames, when measured)."""
    inter = [f for f in per_frame if f["kind"] == "P"]
    proxy = None
    if inter and all("proxy_bits" in f for f in inter):
        coded_bits = sum(f["bits"] for f in inter)
        proxy_bits = sum(f["proxy_bits"] for f in inter)
        proxy = {"bpp": proxy_bits / (len(inter) * pixels),
                 "bias_percent": (proxy_bits / coded_bits - 1) * 100 if coded_bits > 0 else None}
    mse = mean(f["mse"] for f in per_frame)
    return {
        "rate_estimate": ESTIMATE,
        "rd_loss": lmbda * mse + bpp if mse is not None else None,
        "loss": mean(f["loss"] for f in inter),
        "train_proxy": proxy,
    }


def evaluate_clips(net: torch.nn.Module, iframe: IFrameCodec,
                   clips: Iterable[tuple[str, torch.Tensor]], stage: int, lmbda: float,
                   intra_period: int | None, device: torch.device,
                   measure_proxy: bool = True) -> dict[str, Any]:
    """Training's evaluation: every clip through :func:`evaluate_clip` with a frozen copy
    of ``net``; overall numbers are means over clips (DCVC convention). With
    ``measure_proxy``, the training rate is measured on the same P-frames (its bias)."""
    codec = eval_codec(net, iframe, device)
    per_clip = {name: evaluate_clip(codec, frames, stage, lmbda, intra_period,
                                    codec.net if measure_proxy else None)
                for name, frames in clips}
    if not per_clip:
        raise ValueError("no validation clips to evaluate")
    results = list(per_clip.values())
    out = summarize_overall(results)
    out.pop("clips")  # the count; "clips" below are the per-clip figures

    def overall(key: str, sub: str | None = None) -> float | None:
        return mean((r[key] or {}).get(sub) if sub else r[key] for r in results)

    latents = None
    if all(r["latents"] is not None for r in results):
        latents = {name: {stat: mean(r["latents"][name][stat] for r in results)
                          for stat in ("nonzero", "mean_abs", "rate_share")} for name in STREAM_ORDER}
    proxy = None
    if all(r["train_proxy"] is not None for r in results):
        proxy = {"bpp": overall("train_proxy", "bpp"), "bias_percent": overall("train_proxy", "bias_percent")}
    out.update({
        "rate_estimate": ESTIMATE, "rd_loss": overall("rd_loss"), "loss": overall("loss"),
        "latents": latents, "train_proxy": proxy,
        "clips": {name: {k: v for k, v in r.items() if k != "per_frame"} for name, r in per_clip.items()},
    })
    return out
