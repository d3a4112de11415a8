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

Each coder is timed ``repeats`` times, the coders alternating round by round (so a
change in the machine's load hits them alike); every figure is printed as the median
and the minimum of its runs, with the thread count and the load average before and
after. ``json_path`` keeps the record (:data:`RECORD_FORMAT`); ``compare_to`` prints each
figure's ratio against such a record.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dcvc_bench.bench_record import machine_load
from dcvc_bench.checkpoints import atomic_write_bytes
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

__all__ = ["RECORD_FORMAT", "run_codec_benchmark"]

#: The ``format`` field of a ``--json`` record (version 1).
RECORD_FORMAT = "dcvc-bench-bench-codec"


def _stats(samples: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "runs": samples}


def _fmt(stats: dict[str, Any]) -> str:
    return f"{stats['median']:8.3f} s (min {stats['min']:7.3f})"


def _load_text(load: list[float] | None) -> str:
    return "unknown" if load is None else "/".join(f"{x:.2f}" for x in load) + " (1/5/15 min)"


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _ar_comparison(name: str, coder: ContextCoder, one_row: ContextCoder, y: torch.Tensor, hyper: torch.Tensor,
                   max_ref_positions: int, repeats: int, echo: Callable[[str], None]) -> dict[str, Any]:
    """Time one latent's wavefront coding against per-position coding, both with the same
    arithmetic (same bytes, checked) and with one-row matmuls (the fastest sequential
    arithmetic, whose rounding, hence bytes, may differ); the record of it."""
    channels, height, width = y.shape[1:]
    waves = wave_schedule(height, width, coder.slope)
    rows = height if height * width <= max_ref_positions else max(1, max_ref_positions // width)
    y_ref, hyper_ref = y[:, :, :rows], hyper[:, :, :rows]
    crop_waves = wave_schedule(rows, width, coder.slope)
    singles = [p.view(1) for p in torch.cat(crop_waves)]
    scale = height / rows
    how = "measured" if rows == height else f"extrapolated ×{scale:.2f} from a {rows}×{width} crop"
    coders = {"wavefront": (coder, y, hyper, waves, waves, (height, width), 1.0),
              "reference": (coder, y_ref, hyper_ref, raster_schedule(rows, width), singles, (rows, width), scale),
              "one_row": (one_row, y_ref, hyper_ref, raster_schedule(rows, width), singles, (rows, width), scale)}
    times: dict[str, dict[str, list[float]]] = {key: {"encode": [], "decode": []} for key in coders}
    data: dict[str, bytes] = {}
    exact = True
    for _ in range(repeats):  # round by round, the coders alternating
        for key, (c, y_in, hyper_in, enc_schedule, dec_schedule, shape, factor) in coders.items():
            (data[key], y_hat), enc = _timed(lambda: latent_to_bytes(c, y_in, hyper_in, enc_schedule))
            decoded, dec = _timed(lambda: latent_from_bytes(c, data[key], hyper_in, shape, dec_schedule))
            exact = exact and torch.equal(decoded, y_hat)
            times[key]["encode"].append(enc * factor)
            times[key]["decode"].append(dec * factor)
    crop_bytes = data["wavefront"] if rows == height else latent_to_bytes(coder, y_ref, hyper_ref, crop_waves)[0]
    same = data["reference"] == crop_bytes
    record: dict[str, Any] = {
        "shape": [channels, height, width], "positions": height * width, "waves": len(waves),
        "bytes": len(data["wavefront"]), "decoded_exactly": exact, "reference_rows": rows,
        "reference_extrapolation": scale, "reference_same_bytes": same,
        **{key: {op: _stats(samples) for op, samples in ops.items()} for key, ops in times.items()}}
    echo(f"  latent {name}: {channels}×{height}×{width} ({height * width} positions, {len(waves)} waves), "
         f"{len(data['wavefront'])} bytes; decodes exactly: {'yes' if exact else 'NO'}")
    wave = record["wavefront"]
    echo(f"    {'wavefront':33s} encode {_fmt(wave['encode'])}   decode {_fmt(wave['decode'])}")
    for key, label in (("reference", "per-position, same arithmetic"), ("one_row", "per-position, one-row matmuls")):
        ref = record[key]
        ratio = {op: ref[op]["median"] / wave[op]["median"] for op in ("encode", "decode")}
        record[key]["ratio"] = ratio
        note = f"same bytes: {'yes' if same else 'NO'}" if key == "reference" else "bytes not comparable (other rounding)"
        echo(f"    {label:33s} encode {_fmt(ref['encode'])}   decode {_fmt(ref['decode'])}   ({how})")
        echo(f"      wavefront is {ratio['encode']:.1f}× / {ratio['decode']:.1f}× faster (encode / decode, medians; "
             f"mins {ref['encode']['min'] / wave['encode']['min']:.1f}× / "
             f"{ref['decode']['min'] / wave['decode']['min']:.1f}×); {note}")
    return record


def _figures(record: dict[str, Any]) -> dict[str, float]:
    """A record's comparable figures (median seconds), by name."""
    out = {f"P-frame {op}": record["pframe"][op]["median"] for op in ("encode", "decode")}
    for name, latent in record.get("latents", {}).items():
        for key in ("wavefront", "reference", "one_row"):
            for op in ("encode", "decode"):
                out[f"latent {name} {key} {op}"] = latent[key][op]["median"]
    return out


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``--json`` record, or a one-line :class:`UserError` naming the file."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"--compare-to: {path} does not exist; give a file written by `bench codec --json`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--compare-to: {path} is not a JSON record ({type(exc).__name__}); "
                        "give a file written by `bench codec --json`") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise UserError(f"--compare-to: {path} is not a `bench codec --json` record (format is not {RECORD_FORMAT!r})")
    try:
        _figures(record)
    except (KeyError, TypeError) as exc:
        raise UserError(f"--compare-to: {path} lacks the figure {exc}; give a file written by `bench codec --json`") from None
    return record


def _compare(record: dict[str, Any], saved: dict[str, Any], path: str, echo: Callable[[str], None]) -> None:
    echo(f"  against {path} (measured {saved.get('created', '?')}, threads: {saved.get('threads', '?')}, "
         f"load {_load_text(saved.get('load_before'))}): saved median / this median, > 1 is faster now")
    if (saved.get("size"), saved.get("preset")) != (record["size"], record["preset"]):
        echo(f"    note: that record is {saved.get('size')} {saved.get('preset')}, this one {record['size']} "
             f"{record['preset']}")
    now, then = _figures(record), _figures(saved)
    for key, value in now.items():
        if key in then and value > 0:
            echo(f"    {key:36s} {then[key]:8.3f} s -> {value:8.3f} s   {then[key] / value:6.2f}×")


def run_codec_benchmark(*, preset: str | None, size: tuple[int, int], frames: int,
                        checkpoint: str | None, max_ref_positions: int, repeats: int,
                        echo: Callable[[str], None], threads: int | None = None,
                        json_path: str | None = None, compare_to: str | None = None) -> dict[str, Any]:
    """Encode and decode ``frames`` synthetic frames of ``size`` (W, H) with one I-frame,
    then compare the autoregressive coders on the first P-frame's latents; the record."""
    from dcvc_bench.data.synth import clip_frames
    from dcvc_bench.curriculum.iframe_spec import weightless_spec
    from dcvc_bench.models.iframe import build_iframe_codec
    from dcvc_bench.models.video_net import DCVC

    width, height = size
    if frames < 2:
        raise UserError("--frames must be >= 2 (one I-frame, then P-frames)")
    if max_ref_positions < 1 or repeats < 1:
        raise UserError("--max-ref-positions and --repeats must be >= 1")
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: give at least 1")
    saved = read_record(compare_to) if compare_to else None  # a bad file is refused before minutes of work
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
    if threads is not None:
        codec.threads = threads
    clip = np.stack(list(clip_frames(frames, (width, height), np.random.default_rng(0))))
    clip = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))

    load_before, created = machine_load(), datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")
    echo(f"codec benchmark: preset {codec.preset} ({weights})")
    echo(f"  {width}x{height}, {frames} frames (1 I + {frames - 1} P), coding threads: {codec.threads}, "
         f"device {codec.device}, {os.cpu_count()} CPUs, load average {_load_text(load_before)}")
    enc = encode_video(codec, clip, -1, name="synthetic")
    dec = decode_video(codec, enc.stream, name="synthetic", max_pixels=None)  # its own stream: no limit
    exact = torch.equal(dec.frames, enc.decoded)

    p_frames = [f for f in enc.frames if f.kind == "P"]
    p_enc, p_dec = _stats([f.enc_seconds for f in p_frames]), _stats(list(dec.dec_seconds[1:]))
    echo(f"  encode: P-frame {_fmt(p_enc)} over {len(p_frames)} P-frames ({1 / p_enc['median']:.3g} frames/s), "
         f"I-frame {enc.frames[0].enc_seconds:.3f} s")
    echo(f"  decode: P-frame {_fmt(p_dec)} ({1 / p_dec['median']:.3g} frames/s), I-frame {dec.dec_seconds[0]:.3f} s; "
         f"output identical to the encoder's reconstruction: {'yes' if exact else 'NO'}")
    pixels = width * height
    real = sum(f.bits for f in p_frames) / len(p_frames)
    payload = sum(f.payload_bits for f in p_frames) / len(p_frames)
    est = sum(f.est_bits for f in p_frames) / len(p_frames)
    echo(f"  rate, P-frames: real {real / pixels:.5f} bpp, estimate {est / pixels:.5f} bpp, "
         f"gap {100 * (real / est - 1):+.2f}% ({real - est:+.0f} bits/frame, of which {real - payload:.0f} "
         f"container framing and up to 64 the rANS final state)")
    record: dict[str, Any] = {
        "format": RECORD_FORMAT, "version": 1,
        "created": created,
        "preset": codec.preset, "weights": "checkpoint" if checkpoint else "random", "size": f"{width}x{height}",
        "frames": frames, "threads": codec.threads, "cpus": os.cpu_count(), "device": str(codec.device),
        "torch": torch.__version__, "repeats": repeats, "max_ref_positions": max_ref_positions,
        "load_before": load_before, "pframe": {"encode": p_enc, "decode": p_dec, "identical": exact},
        "rate_bpp": {"real": real / pixels, "estimate": est / pixels}, "latents": {}}

    # The latents of the first P-frame, as the encoder coded them.
    with coding_settings(codec.threads):
        ref = enc.decoded[:1].to(codec.device).float() / 255.0
        latents = codec.pframe.encode(ref, clip[1:2].to(codec.device).float() / 255.0).latents
        echo(f"  autoregressive coding (first P-frame's latents; median and min of {repeats} runs each, "
             "the coders alternating):")
        net = codec.net
        layers = {"mv_y": (net.auto_regressive_mv, net.entropy_parameters_mv, net.gaussian_conditional_mv),
                  "y": (net.auto_regressive, net.entropy_parameters, net.gaussian_conditional)}
        for name, modules in layers.items():
            y, hyper = latents[name]
            record["latents"][name] = _ar_comparison(name, ContextCoder(*modules), ContextCoder(*modules, row_block=1),
                                                     y, hyper, max_ref_positions, repeats, echo)
    record["load_after"] = machine_load()
    echo(f"  load average after: {_load_text(record['load_after'])}")
    if saved is not None:
        _compare(record, saved, str(compare_to), echo)
    if json_path:
        atomic_write_bytes(json_path, (json.dumps(record, indent=1) + "\n").encode())
        echo(f"  record written to {json_path}")
    return record
