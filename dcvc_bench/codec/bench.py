"""``dcvc-bench bench codec``: real-coding throughput, wavefront vs per-position
autoregressive coding, and the real-vs-estimated rate gap — printed figures, never a
timed assertion.

Two per-position baselines: the bit-identical reference (the wavefront's arithmetic, one
position per step: what the tests compare bytes with) and one-row matmuls, the fastest
sequential arithmetic on a CPU BLAS (small-M kernels round differently, so its bytes are
not comparable). The first is what the wavefront replaces; the second says how much of
the gain is batching, not padding.

The clip is synthetic (:func:`dcvc_bench.data.synth.clip_frames`), so any size works
without data. Without ``--checkpoint`` the model has random weights: timings are
representative (the same arithmetic runs), rates are not. The per-position reference is
timed on the whole latent when it has at most ``max_ref_positions`` positions; otherwise
on a full-width crop of the top rows, and its time for the whole latent is extrapolated
linearly in positions (its cost per position does not depend on where it is) and printed
as such.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch

from dcvc_bench.codec.ar import (
    ContextCoder,
    coding_settings,
    latent_from_bytes,
    latent_to_bytes,
    raster_schedule,
    wave_schedule,
)
from dcvc_bench.codec.video import Codec, decode_video, encode_video, load_codec
from dcvc_bench.errors import UserError

__all__ = ["run_codec_benchmark"]


def _timed(fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    """``fn()`` and its fastest time over ``repeats`` runs: the least disturbed by other
    work on the machine."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def _ar_comparison(name: str, coder: ContextCoder, one_row: ContextCoder, y: torch.Tensor, hyper: torch.Tensor,
                   max_ref_positions: int, repeats: int, echo: Callable[[str], None]) -> None:
    """Time one latent's wavefront coding against per-position coding, both with the same
    arithmetic (same bytes, checked) and with one-row matmuls (the fastest sequential
    arithmetic, whose rounding, hence bytes, may differ)."""
    channels, height, width = y.shape[1:]
    waves = wave_schedule(height, width, coder.slope)
    (data, _), wave_enc = _timed(lambda: latent_to_bytes(coder, y, hyper, waves), repeats)
    _, wave_dec = _timed(lambda: latent_from_bytes(coder, data, hyper, (height, width), waves), repeats)

    rows = height if height * width <= max_ref_positions else max(1, max_ref_positions // width)
    y_ref, hyper_ref = y[:, :, :rows], hyper[:, :, :rows]
    crop_waves = wave_schedule(rows, width, coder.slope)
    singles = [p.view(1) for p in torch.cat(crop_waves)]
    scale = height / rows
    how = "measured" if rows == height else f"extrapolated ×{scale:.2f} from a {rows}×{width} crop"

    echo(f"  latent {name}: {channels}×{height}×{width} ({height * width} positions, {len(waves)} waves), "
         f"{len(data)} bytes")
    echo(f"    wavefront ({coder.row_block}-row matmul blocks)   encode {wave_enc:8.3f} s   decode {wave_dec:8.3f} s")
    for label, per_position in (("per-position, same arithmetic", coder), ("per-position, one-row matmuls", one_row)):
        (ref_data, _), ref_enc = _timed(lambda: latent_to_bytes(per_position, y_ref, hyper_ref,
                                                                raster_schedule(rows, width)), repeats)
        _, ref_dec = _timed(lambda: latent_from_bytes(per_position, ref_data, hyper_ref, (rows, width), singles),
                            repeats)
        if per_position is coder:
            same = ref_data == (data if rows == height else latent_to_bytes(coder, y_ref, hyper_ref, crop_waves)[0])
            bytes_note = f"same bytes: {'yes' if same else 'NO'}"
        else:
            bytes_note = "bytes not comparable (other rounding)"
        echo(f"    {label:33s} encode {ref_enc * scale:8.3f} s   decode {ref_dec * scale:8.3f} s   "
             f"({how}); wavefront is {ref_enc * scale / wave_enc:.1f}× / {ref_dec * scale / wave_dec:.1f}× "
             f"faster; {bytes_note}")


def run_codec_benchmark(*, preset: str | None, size: tuple[int, int], frames: int,
                        checkpoint: str | None, max_ref_positions: int, repeats: int,
                        echo: Callable[[str], None]) -> None:
    """Encode and decode ``frames`` synthetic frames of ``size`` (W, H) with one I-frame,
    then compare the autoregressive coders on the first P-frame's latents."""
    from dcvc_bench.data.synth import clip_frames
    from dcvc_bench.curriculum.iframe_spec import weightless_spec
    from dcvc_bench.models.iframe import build_iframe_codec
    from dcvc_bench.models.video_net import DCVC

    width, height = size
    if frames < 2:
        raise UserError("--frames must be >= 2 (one I-frame, then P-frames)")
    if max_ref_positions < 1 or repeats < 1:
        raise UserError("--max-ref-positions and --repeats must be >= 1")
    if checkpoint:
        codec = load_codec(checkpoint)
        weights = f"checkpoint {checkpoint}"
        if preset and preset != codec.preset:
            raise UserError(f"--preset {preset}: the checkpoint is a '{codec.preset}' model; drop --preset")
    else:
        torch.manual_seed(0)
        iframe = build_iframe_codec(weightless_spec())
        codec = Codec(DCVC(preset or "tiny"), iframe)
        weights = f"random weights, {iframe.name} I-frames: timings only, rates are not meaningful"
    clip = np.stack(list(clip_frames(frames, (width, height), np.random.default_rng(0))))
    clip = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))

    echo(f"codec benchmark: preset {codec.preset} ({weights})")
    echo(f"  {width}x{height}, {frames} frames (1 I + {frames - 1} P), {codec.threads} coding threads, "
         f"device {codec.device}")
    enc = encode_video(codec, clip, -1, name="synthetic")
    dec = decode_video(codec, enc.stream, name="synthetic")
    exact = torch.equal(dec.frames, enc.decoded)

    p_frames = [f for f in enc.frames if f.kind == "P"]
    p_enc = statistics.median(f.enc_seconds for f in p_frames)
    p_dec = statistics.median(dec.dec_seconds[1:])
    echo(f"  encode: P-frame {p_enc:.3f} s ({1 / p_enc:.2f} frames/s, median), "
         f"I-frame {enc.frames[0].enc_seconds:.3f} s")
    echo(f"  decode: P-frame {p_dec:.3f} s ({1 / p_dec:.2f} frames/s, median), I-frame {dec.dec_seconds[0]:.3f} s; "
         f"output identical to the encoder's reconstruction: {'yes' if exact else 'NO'}")
    pixels = width * height
    real = sum(f.bits for f in p_frames) / len(p_frames)
    payload = sum(f.payload_bits for f in p_frames) / len(p_frames)
    est = sum(f.est_bits for f in p_frames) / len(p_frames)
    echo(f"  rate, P-frames: real {real / pixels:.5f} bpp, estimate {est / pixels:.5f} bpp, "
         f"gap {100 * (real / est - 1):+.2f}% ({real - est:+.0f} bits/frame, of which {real - payload:.0f} "
         f"container framing and up to 64 the rANS final state)")

    # The latents of the first P-frame, as the encoder coded them.
    with coding_settings(codec.threads):
        ref = enc.decoded[:1].to(codec.device).float() / 255.0
        latents = codec.pframe.encode(ref, clip[1:2].to(codec.device).float() / 255.0).latents
        echo(f"  autoregressive coding (first P-frame's latents; fastest of {repeats} runs each):")
        net = codec.net
        layers = {"mv_y": (net.auto_regressive_mv, net.entropy_parameters_mv, net.gaussian_conditional_mv),
                  "y": (net.auto_regressive, net.entropy_parameters, net.gaussian_conditional)}
        for name, modules in layers.items():
            y, hyper = latents[name]
            _ar_comparison(name, ContextCoder(*modules), ContextCoder(*modules, row_block=1), y, hyper,
                           max_ref_positions, repeats, echo)
