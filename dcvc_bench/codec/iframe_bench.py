"""``dcvc-bench bench iframe``: an I-frame codec's estimate, encode and decode times per
frame (median over frames × repeats, after one warm-up frame) — printed figures, never a
timed assertion.

The frames are synthetic (:func:`dcvc_bench.data.synth.clip_frames`), so any size works
without data. The codec is built from its spec (``--type`` with ``--config``,
``--checkpoint``, ``--layers``) by the registry; a type that needs a checkpoint and was
given none is built untrained by its family (:data:`dcvc_bench.models.iframe.UNTRAINED`:
random weights, initialised codebooks), which runs the same arithmetic — the output says
that its rates and quality mean nothing.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from dcvc_bench.errors import UserError

__all__ = ["run_iframe_benchmark"]


def _build(type_: str, config: Optional[Path], checkpoint: Optional[Path], layers: Optional[int],
           device: str) -> tuple[object, str]:
    """The codec and a description of its weights."""
    from dcvc_bench.curriculum.iframe_spec import I_FRAME_TYPES, SPECS, spec_from_options
    from dcvc_bench.models.iframe import UNTRAINED, build_iframe_codec

    family = SPECS.get(type_)
    if family is None:
        raise UserError(f"--type {type_!r}: unknown I-frame type; use one of {', '.join(I_FRAME_TYPES)}")
    fields = family.model_fields
    for option, name, value in (("--config", "config", config), ("--layers", "layers", layers),
                                ("--checkpoint", "checkpoint", checkpoint)):
        if value is not None and name not in fields:
            raise UserError(f"{option} does not apply to --type {type_} (it has no {name} setting)")
    if checkpoint is None and "checkpoint" in fields and fields["checkpoint"].is_required():
        untrained = UNTRAINED.get(type_)
        if untrained is None:
            raise UserError(f"--type {type_} needs --checkpoint (its family has no untrained network to time)")
        if config is None:
            raise UserError(f"--type {type_} without --checkpoint needs --config: the architecture to time")
        codec = untrained(str(config), layers=layers, device=device)
        return codec, "UNTRAINED network (random weights, initialised codebooks): timings only, rates and quality mean nothing"
    settings = {k: str(v) for k, v in (("config", config), ("checkpoint", checkpoint), ("layers", layers))
                if v is not None}
    codec = build_iframe_codec(spec_from_options(type_, {}, settings), device=device)
    if codec.random_weights:
        return codec, "random weights: timings only, rates and quality mean nothing"
    return codec, f"checkpoint {checkpoint}" if checkpoint else "no weights needed"


def run_iframe_benchmark(*, type_: str, size: tuple[int, int], config: Optional[Path], checkpoint: Optional[Path],
                         layers: Optional[int], frames: int, repeats: int, device: str,
                         echo: Callable[[str], None]) -> dict:
    """Time ``estimate``, ``encode`` and ``decode`` on ``frames`` synthetic frames of
    ``size`` (W, H), each ``repeats`` times; print and return the medians (ms) and rates."""
    from dcvc_bench.data.synth import clip_frames

    if frames < 1 or repeats < 1:
        raise UserError("--frames and --repeats must be >= 1")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    width, height = size
    torch.manual_seed(0)
    codec, weights = _build(type_, config, checkpoint, layers, str(dev))
    clip = np.stack(list(clip_frames(frames + 1, (width, height), np.random.default_rng(0))))
    xs = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2))).float().div_(255.0).to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(fn: Callable[[], object]) -> tuple[object, float]:
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return out, (time.perf_counter() - start) * 1000.0

    times: dict[str, list[float]] = {"estimate": [], "encode": [], "decode": []}
    bits, est_bits, other, exact = [], [], {}, True
    with torch.no_grad():
        for i in range(frames + 1):  # frame 0: warm-up, not counted
            x = xs[i:i + 1]
            for _ in range(repeats if i else 1):
                est, t_est = timed(lambda: codec.estimate(x))
                data, t_enc = timed(lambda: codec.encode(x))
                x_hat, t_dec = timed(lambda: codec.decode(data, (height, width)))
                if i:
                    for key, t in (("estimate", t_est), ("encode", t_enc), ("decode", t_dec)):
                        times[key].append(t)
            if i:
                bits.append(8.0 * len(data))
                est_bits.append(float(est.bits[0]))
                exact &= bool(torch.equal(x_hat.cpu(), est.x_hat.cpu()))
                for key, value in codec.rates(x).items():
                    other.setdefault(key, []).append(float(value[0]))
    pixels = width * height
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {"codec": codec.name, "weights": weights, "size": [width, height], "frames": frames, "repeats": repeats,
              "device": str(dev), "threads": torch.get_num_threads(), "ms": medians,
              "bpp": {"real": sum(bits) / (frames * pixels), "estimate": sum(est_bits) / (frames * pixels),
                      **{k: sum(v) / (frames * pixels) for k, v in other.items()}},
              "decode_equals_estimate": exact}
    echo(f"I-frame benchmark: {codec.name} ({weights})")
    echo(f"  {width}x{height}, {frames} frames x {repeats} runs after 1 warm-up frame, device {dev}, "
         f"{result['threads']} threads")
    echo(f"  per frame (median): estimate {medians['estimate']:.1f} ms, encode {medians['encode']:.1f} ms, "
         f"decode {medians['decode']:.1f} ms")
    rates = ", ".join(f"{k} {v:.4f}" for k, v in result["bpp"].items())
    echo(f"  BPP: {rates}; decoded frame equals the estimate's reconstruction: {'yes' if exact else 'no'}")
    return result
