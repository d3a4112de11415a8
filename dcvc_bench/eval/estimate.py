"""Estimation-mode evaluation: bits from the entropy models' likelihoods, every frame
decoded with the real reconstruction rule (rounded latents, clamped pixels, the decoded
frame as the next reference). Used by training's periodic evaluation and `dcvc-bench eval`.

Conventions (DCVC): PSNR in RGB on [0,1], per frame; a clip's PSNR is the mean of its
frames' PSNR; the overall figure is the mean over clips. BPP = bits over the original
pixel count (padding is never counted as pixels).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch

from dcvc_bench.codec.gop import CodedFrame, code_frames
from dcvc_bench.eval.metrics import ms_ssim, psnr
from dcvc_bench.models.iframe import IFrameCodec
from dcvc_bench.models.stages import reconstruction, stage_loss


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@torch.no_grad()
def iter_estimated_frames(net: torch.nn.Module, iframe: IFrameCodec, frames_u8: torch.Tensor,
                          stage: int, intra_period: int | None,
                          device: torch.device) -> Iterator[CodedFrame]:
    """Estimation-mode coding of one clip (T×3×H×W uint8), frame by frame through the
    shared GOP loop. Frames stay uint8 until each is coded (a 96-frame 1080p clip in
    float would take 2.4 GB); each yielded frame's ``x`` is the float original."""

    def as_float(x_u8: torch.Tensor) -> torch.Tensor:
        return x_u8.to(device).float().div_(255.0)

    def iframe_fn(x_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = iframe.estimate(as_float(x_u8))
        return result.x_hat.to(device), result.bits.to(device)

    for coded in code_frames(frames_u8.unsqueeze(0), iframe_fn, lambda ref, x: net(ref, as_float(x)),
                             lambda out: reconstruction(out, stage), intra_period):
        coded.x = as_float(coded.x)
        yield coded


@torch.no_grad()
def evaluate_clip(net: torch.nn.Module, iframe: IFrameCodec, frames_u8: torch.Tensor,
                  stage: int, lmbda: float, intra_period: int | None,
                  device: torch.device) -> dict[str, Any]:
    """Code one clip (T×3×H×W uint8) and return its per-frame and summary metrics."""
    pixels = frames_u8.shape[-2] * frames_u8.shape[-1]
    per_frame = []
    for coded in iter_estimated_frames(net, iframe, frames_u8, stage, intra_period, device):
        record = {
            "index": coded.index, "kind": coded.kind,
            "psnr": float(psnr(coded.decoded, coded.x)[0]),
            "ms_ssim": float(ms_ssim(coded.decoded, coded.x)[0]),
            "bpp": float(coded.bits[0]) / pixels,
            "mse": float(torch.mean((coded.decoded - coded.x) ** 2)),
        }
        if coded.output is not None:
            loss, _ = stage_loss(coded.output, coded.x, stage, lmbda)
            record["loss"] = float(loss)
        per_frame.append(record)
    return summarize(per_frame, lmbda)


def summarize(per_frame: list[dict[str, Any]], lmbda: float) -> dict[str, Any]:
    intra = [f for f in per_frame if f["kind"] == "I"]
    inter = [f for f in per_frame if f["kind"] == "P"]
    mse = _mean([f["mse"] for f in per_frame]) or 0.0
    bpp = _mean([f["bpp"] for f in per_frame]) or 0.0
    return {
        "frames": len(per_frame),
        "psnr": _mean([f["psnr"] for f in per_frame]),
        "bpp": bpp,
        "ms_ssim": _mean([f["ms_ssim"] for f in per_frame]),
        "rd_loss": lmbda * mse + bpp,
        "loss": _mean([f["loss"] for f in inter]),
        "i_frame": {"psnr": _mean([f["psnr"] for f in intra]), "bpp": _mean([f["bpp"] for f in intra])},
        "p_frame": {"psnr": _mean([f["psnr"] for f in inter]), "bpp": _mean([f["bpp"] for f in inter])},
        "p_first3": [{"psnr": f["psnr"], "bpp": f["bpp"]} for f in inter[:3]],
        "per_frame": per_frame,
    }


def evaluate_clips(net: torch.nn.Module, iframe: IFrameCodec,
                   clips: Iterable[tuple[str, torch.Tensor]], stage: int, lmbda: float,
                   intra_period: int | None, device: torch.device) -> dict[str, Any]:
    """Evaluate every clip; overall numbers are means over clips (DCVC convention)."""
    was_training = net.training
    net.eval()
    try:
        per_clip = {name: evaluate_clip(net, iframe, frames, stage, lmbda, intra_period, device)
                    for name, frames in clips}
    finally:
        net.train(was_training)
    if not per_clip:
        raise ValueError("no validation clips to evaluate")
    results = list(per_clip.values())

    def overall(key: str, sub: str | None = None) -> float | None:
        vals = [(r[key][sub] if sub else r[key]) for r in results]
        vals = [v for v in vals if v is not None]
        return _mean(vals)

    firsts = []
    for k in range(3):
        vals = [r["p_first3"][k] for r in results if len(r["p_first3"]) > k]
        if vals:
            firsts.append({"psnr": _mean([v["psnr"] for v in vals]), "bpp": _mean([v["bpp"] for v in vals])})
    return {
        "psnr": overall("psnr"), "bpp": overall("bpp"), "ms_ssim": overall("ms_ssim"),
        "rd_loss": overall("rd_loss"), "loss": overall("loss"),
        "i_frame": {"psnr": overall("i_frame", "psnr"), "bpp": overall("i_frame", "bpp")},
        "p_frame": {"psnr": overall("p_frame", "psnr"), "bpp": overall("p_frame", "bpp")},
        "p_first3": firsts,
        "clips": {name: {k: v for k, v in r.items() if k != "per_frame"} for name, r in per_clip.items()},
    }
