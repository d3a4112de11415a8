"""Scoring: the metrics of every frame, and THE summariser of evaluation results.

Every evaluation, `dcvc-bench eval`, `eval-iframe` and training's periodic evaluation
(:mod:`dcvc_bench.eval.estimate`), turns per-frame records into a clip's figures with
:func:`summarize_clip` and clips into overall figures with :func:`summarize_overall`,
under one rule for what is missing:

    A figure missing for any frame of a clip is missing for the clip, and a figure
    missing for any clip is missing (None) overall. A mean is never taken over the part
    that has a value: that would describe a subset as the whole. (Example: a one-frame
    clip has no P-frame, so the overall P-frame figures are None; P1..P3 are listed only
    as far as every clip has them.)

Conventions (DCVC): PSNR in RGB on [0,1], per frame; a clip's PSNR is the mean of its
frames' PSNR (SSIM, MS-SSIM and LPIPS likewise); overall figures are means over clips,
timings are weighted by frames. BPP = bits / (frames x original pixels): padding never
counts, a stream header does. An I-frame codec's other rates (``rate_bits`` per frame,
e.g. a VQ codec's uniform and entropy bits) become ``rates_bpp`` the same way, for the
clip (when every frame has them) and for its I-frames (``i_frame.rates_bpp``).

YUV 4:2:0 scoring (``eval --color yuv420``): a scorer given the clip's source planes
(:meth:`Scorer.with_planes`) converts every decoded RGB frame back to YUV 4:2:0 with the
one colour module (:func:`dcvc_bench.data.colour.rgb_to_yuv420`, BT.709 full range, the
conversion the frames were made with) and scores it per plane
(:func:`dcvc_bench.eval.metrics.yuv420_metrics`): ``psnr`` and ``ms_ssim`` are then the
6:1:1 averages, beside ``psnr_y/u/v`` and ``ms_ssim_y/u/v`` (:data:`PLANE_KEYS`, means
like PSNR); x265/x264 decoded planes are scored directly (:meth:`Scorer.planes_clip`).
No SSIM, LPIPS or FID in that mode.

FID is not a mean of anything: one value per RD point over all its decoded frames. The
:class:`Scorer` a point's evaluator is given (:meth:`Scorer.for_point`) hands every frame
it scores to the evaluation's :class:`~dcvc_bench.eval.fid.FIDScorer`, so FID sees
exactly the frames the other metrics see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

import torch

if TYPE_CHECKING:
    from dcvc_bench.eval.fid import FIDScorer

#: Frames scored per metric call (bounded memory, batched speed).
METRIC_CHUNK = 8
#: Per-plane figures of YUV 4:2:0 scoring, summarised like PSNR when every frame has them.
PLANE_KEYS = ("psnr_y", "psnr_u", "psnr_v", "ms_ssim_y", "ms_ssim_u", "ms_ssim_v")


@dataclass
class Scorer:
    """The metrics of :mod:`dcvc_bench.eval.metrics` over whole clips, in chunks; with a
    ``fid`` scorer and a ``point`` (:meth:`for_point`), every decoded frame scored also
    goes to FID as that point's."""

    device: torch.device
    lpips: Any = None              # LPIPSMetric or None
    lpips_reason: Optional[str] = None
    fid: Optional[FIDScorer] = None
    point: Optional[str] = None
    planes: Optional[tuple] = None     # YUV 4:2:0 scoring: the clip's source (Y, U, V) arrays
    bit_depth: int = 8

    @classmethod
    def create(cls, device: torch.device, fid: Optional[FIDScorer] = None) -> "Scorer":
        from dcvc_bench.eval.metrics import LPIPSMetric

        ok, reason = LPIPSMetric.available()
        if not ok:
            return cls(device, None, f"unavailable: {reason}", fid)
        return cls(device, LPIPSMetric(device), None, fid)

    def for_point(self, point: str) -> "Scorer":
        """This scorer for one RD point's evaluator: the frames it scores are ``point``'s for FID."""
        return replace(self, point=point)

    def with_planes(self, planes: Optional[Sequence[Any]], bit_depth: int = 8) -> "Scorer":
        """This scorer for one clip scored in YUV 4:2:0 against its source ``planes``."""
        return replace(self, planes=None if planes is None else tuple(planes), bit_depth=bit_depth)

    def _yuv(self, decoded: torch.Tensor, start: int) -> list[dict[str, Any]]:
        """Decoded RGB frames (B×3×H×W in [0, 1]) from frame ``start`` on, scored per plane."""
        import numpy as np

        from dcvc_bench.data.colour import rgb_to_yuv420
        from dcvc_bench.eval.metrics import yuv420_metrics

        assert self.planes is not None
        rgb = decoded.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        converted = [rgb_to_yuv420(f, bit_depth=self.bit_depth) for f in rgb]
        dec = tuple(np.stack([c[k] for c in converted]) for k in range(3))
        ref = tuple(p[start:start + len(rgb)] for p in self.planes)
        return yuv420_metrics(ref, dec, self.bit_depth)

    def planes_clip(self, decoded: Sequence[Any]) -> list[dict[str, Any]]:
        """Per-frame YUV 4:2:0 metrics of decoded (Y, U, V) planes against the source's."""
        from dcvc_bench.eval.metrics import yuv420_metrics

        assert self.planes is not None
        return yuv420_metrics(self.planes, tuple(decoded), self.bit_depth)

    def originals(self, clip: str, frames_u8: torch.Tensor) -> None:
        """A clip's original frames (T×3×H×W uint8), for FID's reference statistics."""
        if self.fid is not None:
            self.fid.originals(clip, frames_u8)

    def fid_result(self, point: str) -> tuple[Optional[float], Optional[str]]:
        """(FID of ``point``, None) or (None, why not)."""
        if self.fid is None:
            return None, "FID not computed"
        return self.fid.result(point)

    def lpips_for(self, height: int, width: int) -> tuple[Any, Optional[str]]:
        from dcvc_bench.eval.metrics import LPIPS_MIN_SIDE

        if self.lpips is None:
            return None, self.lpips_reason
        if min(height, width) < LPIPS_MIN_SIDE:
            return None, f"unavailable: frames under {LPIPS_MIN_SIDE}x{LPIPS_MIN_SIDE} px"
        return self.lpips, None

    @torch.no_grad()
    def frame(self, original: torch.Tensor, decoded: torch.Tensor, index: Optional[int] = None) -> dict[str, Any]:
        """Metrics of one frame pair (1×3×H×W floats in [0, 1]); ``index``: the frame's
        place in the clip (needed for YUV 4:2:0 scoring)."""
        from dcvc_bench.eval.metrics import frame_metrics

        if self.planes is not None:
            if index is None:
                raise ValueError("YUV 4:2:0 scoring needs the frame's index")
            return self._yuv(decoded, index)[0]

        metric, _ = self.lpips_for(original.shape[-2], original.shape[-1])
        values = frame_metrics(original, decoded, metric)
        if self.fid is not None and self.point is not None:
            self.fid.decoded(self.point, decoded)
        return {k: float(v[0]) for k, v in values.items()}

    @torch.no_grad()
    def clip(self, original_u8: torch.Tensor, decoded_u8: torch.Tensor) -> list[dict[str, Any]]:
        """Per-frame metrics of two T×3×H×W uint8 clips."""
        from dcvc_bench.eval.metrics import frame_metrics

        metric, _ = self.lpips_for(original_u8.shape[-2], original_u8.shape[-1])
        out: list[dict[str, Any]] = []
        if self.planes is not None:
            for start in range(0, original_u8.shape[0], METRIC_CHUNK):
                out += self._yuv(decoded_u8[start:start + METRIC_CHUNK].float().div_(255.0), start)
            return out
        for start in range(0, original_u8.shape[0], METRIC_CHUNK):
            x = original_u8[start:start + METRIC_CHUNK].to(self.device).float().div_(255.0)
            y = decoded_u8[start:start + METRIC_CHUNK].to(self.device).float().div_(255.0)
            values = frame_metrics(x, y, metric)
            if self.fid is not None and self.point is not None:
                self.fid.decoded_u8(self.point, decoded_u8[start:start + METRIC_CHUNK])
            for i in range(x.shape[0]):
                out.append({k: float(v[i]) for k, v in values.items()})
        return out


# --------------------------------------------------------------------------- the summariser


def mean(values: Iterable[Optional[float]]) -> Optional[float]:
    """The mean of evaluation: None when there is no value or any value is None."""
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return None
    return sum(vals) / len(vals)  # type: ignore[arg-type]


def rates_of_clip(per_frame: list[dict[str, Any]], pixels: int) -> Optional[dict[str, Optional[float]]]:
    """A clip's other rates in BPP from its frames' ``rate_bits`` (all bits over frames ×
    original pixels): None unless every frame has them; a rate some frame lacks is None."""
    if not per_frame or any(not isinstance(f.get("rate_bits"), dict) for f in per_frame):
        return None
    names = list(dict.fromkeys(k for f in per_frame for k in f["rate_bits"]))
    n = len(per_frame)
    out: dict[str, Optional[float]] = {}
    for name in names:
        bits = [f["rate_bits"].get(name) for f in per_frame]
        out[name] = None if any(b is None for b in bits) else sum(bits) / (n * pixels)
    return out


def mean_rates(per_clip: Iterable[Optional[dict[str, Optional[float]]]]) -> Optional[dict[str, Optional[float]]]:
    """Clips' other rates (:func:`rates_of_clip`) as one: per rate the mean over clips;
    None unless every clip has them, a rate some clip lacks is None."""
    clips = list(per_clip)
    if not clips or any(c is None for c in clips):
        return None
    names = list(dict.fromkeys(k for c in clips for k in c))  # type: ignore[union-attr]
    return {k: mean(c.get(k) for c in clips) for k in names}  # type: ignore[union-attr]


def summarize_clip(per_frame: list[dict[str, Any]], pixels: int, header_bits: float = 0.0) -> dict[str, Any]:
    """A clip's figures from its frames (records with ``index``, ``kind``, ``bits``,
    ``bpp``, ``psnr``, ``ssim``, ``ms_ssim``, optional ``lpips``, ``enc_ms``, ``dec_ms``,
    ``est_bits``, ``rate_bits``): BPP over all bits (stream header included) and the
    original pixels; PSNR / SSIM / MS-SSIM / LPIPS as means of per-frame values; the
    other rates (:func:`rates_of_clip`); the I- and P-frame split (the I-frames' part
    also with their estimate, payload — ``payload_bits``, bits without the frame's
    framing — and other rates, as BPP); the first three P-frames; timings and the
    real-vs-estimate gap when the frames carry them."""
    if not per_frame:
        raise ValueError("a clip with no frame has no figures")
    n = len(per_frame)
    bits = sum(f["bits"] for f in per_frame) + header_bits
    intra = [f for f in per_frame if f["kind"] == "I"]
    inter = [f for f in per_frame if f["kind"] != "I"]

    def part(frames: list[dict[str, Any]]) -> dict[str, Any]:
        return {"count": len(frames), "bpp": mean(f["bpp"] for f in frames), "psnr": mean(f["psnr"] for f in frames)}

    def per_pixel(frames: list[dict[str, Any]], key: str) -> Optional[float]:
        return mean(None if f.get(key) is None else f[key] / pixels for f in frames)

    out: dict[str, Any] = {
        "frames": n, "bits": bits, "header_bits": header_bits, "bpp": bits / (n * pixels),
        "psnr": mean(f["psnr"] for f in per_frame),
        "ssim": mean(f.get("ssim") for f in per_frame),
        "ms_ssim": mean(f["ms_ssim"] for f in per_frame),
        "lpips": mean(f.get("lpips") for f in per_frame),
        "rates_bpp": rates_of_clip(per_frame, pixels),
        "i_frame": {**part(intra), "bpp_estimate": per_pixel(intra, "est_bits"),
                    "payload_bpp": per_pixel(intra, "payload_bits"), "rates_bpp": rates_of_clip(intra, pixels)},
        "p_frame": part(inter),
        "p_first3": [{"index": f["index"], "bpp": f["bpp"], "psnr": f["psnr"]} for f in inter[:3]],
        "bpp_estimate": None, "rate_gap_percent": None,
        "enc_ms_per_frame": mean(f.get("enc_ms") for f in per_frame),
        "dec_ms_per_frame": mean(f.get("dec_ms") for f in per_frame),
    }
    for key in PLANE_KEYS:
        if all(key in f for f in per_frame):
            out[key] = mean(f[key] for f in per_frame)
    if all(f.get("est_bits") is not None for f in per_frame):
        out["bpp_estimate"] = sum(f["est_bits"] for f in per_frame) / (n * pixels)
        out["rate_gap_percent"] = rate_gap(out["bpp"], out["bpp_estimate"])
    return out


def rate_gap(real: Optional[float], estimate: Optional[float]) -> Optional[float]:
    """(real − estimate) / estimate × 100, or None."""
    if real is None or estimate is None or estimate <= 0:
        return None
    return (real - estimate) / estimate * 100.0


def summarize_overall(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall figures from clip summaries (:func:`summarize_clip`): means over clips,
    timings weighted by frames, counts summed; a figure missing for any clip is missing
    overall (see the module's rule)."""
    if not clips:
        raise ValueError("no clip to summarise")
    frames = sum(c["frames"] for c in clips)

    def avg(key: str, sub: Optional[str] = None) -> Optional[float]:
        return mean((c[key][sub] if sub else c[key]) for c in clips)

    def timing(key: str) -> Optional[float]:
        if any(c[key] is None for c in clips):
            return None
        return sum(c[key] * c["frames"] for c in clips) / frames

    firsts = []
    for k in range(min(len(c["p_first3"]) for c in clips)):
        vals = [c["p_first3"][k] for c in clips]
        indexes = {v.get("index") for v in vals}
        firsts.append({"index": indexes.pop() if len(indexes) == 1 else None,
                       "bpp": mean(v["bpp"] for v in vals), "psnr": mean(v["psnr"] for v in vals)})
    out = {
        "clips": len(clips), "frames": frames,
        "bpp": avg("bpp"), "psnr": avg("psnr"), "ssim": mean(c.get("ssim") for c in clips), "ms_ssim": avg("ms_ssim"),
        "lpips": avg("lpips"), "rates_bpp": mean_rates(c.get("rates_bpp") for c in clips),
        "i_frame": {"count": sum(c["i_frame"]["count"] for c in clips),
                    "bpp": avg("i_frame", "bpp"), "psnr": avg("i_frame", "psnr"),
                    "bpp_estimate": mean(c["i_frame"].get("bpp_estimate") for c in clips),
                    "payload_bpp": mean(c["i_frame"].get("payload_bpp") for c in clips),
                    "rates_bpp": mean_rates(c["i_frame"].get("rates_bpp") for c in clips)},
        "p_frame": {"count": sum(c["p_frame"]["count"] for c in clips),
                    "bpp": avg("p_frame", "bpp"), "psnr": avg("p_frame", "psnr")},
        "p_first3": firsts,
        "bpp_estimate": avg("bpp_estimate"),
        "enc_ms_per_frame": timing("enc_ms_per_frame"), "dec_ms_per_frame": timing("dec_ms_per_frame"),
    }
    out["rate_gap_percent"] = rate_gap(out["bpp"], out["bpp_estimate"])
    for key in PLANE_KEYS:
        if all(key in c for c in clips):
            out[key] = avg(key)
    return out


__all__ = ["METRIC_CHUNK", "PLANE_KEYS", "Scorer", "mean", "mean_rates", "rate_gap", "rates_of_clip", "summarize_clip",
           "summarize_overall"]
