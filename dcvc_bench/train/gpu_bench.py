"""`dcvc-bench bench gpu`: the one script of a short GPU visit (under 8 minutes on an H200).

What it measures, each part a list of rows, each row in its own ``try`` (a failure prints
one ``failed:`` line, is recorded under ``errors`` and the script goes on), each row with
its peak GPU memory (``torch.cuda.max_memory_allocated`` since the row started):

- ``train``: P-frames/s of the real training step (:class:`~dcvc_bench.train.loop.Trainer`,
  stage 4, its optimizers, EMA off) at crop 256, batch 8 and 16, GOP 2 and GOP-optimisation
  GOP 5; bf16 autocast (``--mixed_precision bf16``: the entropy models and rate terms run in
  fp32, :func:`dcvc_bench.models.video_net._entropy_fp32`), ``channels_last`` weights and the
  compiled network (``--compile``), each switchable; a compiled row that fails is rerun
  eager and says so. Batches are on the device before timing: the loader is measured
  apart. Beside each: % of the bf16 ceiling (below) and the frames/s the loader must give.
- ``infer``: estimation forward of one P-frame at 1080p (ms, median), fp32 and bf16.
- ``codec``: real encode and decode of one 1080p P-frame (s; :mod:`dcvc_bench.codec.video`).
- ``data``: the training loader's frames/s with 1 and N workers on 720p MP4s, and with 1
  worker through the decoded-frame cache (:mod:`dcvc_bench.data.frame_cache`; building it
  is outside the timing), beside the fastest GOP-2 training row's need
  (:mod:`dcvc_bench.train.data_bench`).

The ceiling: an H200 does about 790 TFLOP/s in bf16 (dense); one 256² P-frame costs about
444 GFLOP forward + backward (the issue's count for the ``dcvc`` preset), so
790e12 / 444e9 ≈ 1,780 P-frames/s (~1,800); scaled by pixels for other crops. The goal is
25 % of it (≈ 450 P-frames/s). Only the ``dcvc`` preset has a ceiling (null otherwise).

Without CUDA it refuses (one line, exit 2) unless ``--allow-cpu``, which runs the same
script on CPU at tiny sizes (tests, CI). ``--budget`` seconds: rows not started by then are
skipped and listed under ``skipped``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from dcvc_bench.errors import UserError

H200_BF16_TFLOPS = 790.0
PFRAME_GFLOP_256 = 444.0
#: P-frames/s at 256² if every bf16 FLOP of an H200 went to the P-frame step.
CEILING_256 = H200_BF16_TFLOPS * 1e12 / (PFRAME_GFLOP_256 * 1e9)
GOAL_FRACTION = 0.25
PARTS = ("train", "infer", "codec", "data")
FORMAT = "dcvc-bench-bench-gpu"


def parse_ints(flag: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise UserError(f"{flag}: comma-separated whole numbers such as 8,16, got {text!r}")
    return values


@dataclass
class GpuBenchOptions:
    device: str
    preset: str
    crop: int
    batches: tuple[int, ...]
    iters: int
    warmup: int
    bf16: bool
    channels_last: bool
    compile: bool
    i_frame: str
    infer_size: tuple[int, int]
    infer_repeats: int
    workers: int
    loader_batches: int
    clip_size: tuple[int, int]
    clip_frames: int
    parts: tuple[str, ...]
    budget: float
    gops: tuple[tuple[int, bool], ...] = field(default=((2, False), (5, True)))

    @classmethod
    def resolve(cls, *, allow_cpu: bool, preset: Optional[str] = None, crop: Optional[int] = None,
                batches: Optional[str] = None, iters: Optional[int] = None, bf16: bool = True,
                channels_last: bool = True, compile_: bool = True, i_frame: Optional[str] = None,
                infer_size: Optional[str] = None, workers: Optional[int] = None, only: Optional[str] = None,
                budget: float = 450.0) -> "GpuBenchOptions":
        """The visit's settings on CUDA; tiny ones with ``--allow-cpu`` (refused without
        either: one line)."""
        from dcvc_bench.data.synth import parse_size

        cuda = torch.cuda.is_available()
        if not cuda and not allow_cpu:
            raise UserError("bench gpu: no CUDA device is visible here; run it on a GPU machine, or add "
                            "--allow-cpu for a CPU rehearsal at tiny sizes")
        cpu = not cuda
        parts = PARTS if only is None else tuple(p.strip() for p in only.split(",") if p.strip())
        bad = [p for p in parts if p not in PARTS]
        if bad or not parts:
            raise UserError(f"--only: parts among {', '.join(PARTS)}, got {only!r}")
        i_frame = i_frame or ("jpeg" if cpu else "cheng2020")
        if i_frame not in ("jpeg", "cheng2020"):
            raise UserError(f"--i-frame: jpeg or cheng2020, got {i_frame}")
        values = cls(
            device="cpu" if cpu else "cuda",
            preset=preset or ("tiny" if cpu else "dcvc"),
            crop=crop if crop is not None else (64 if cpu else 256),
            batches=parse_ints("--batches", batches) if batches else ((2,) if cpu else (8, 16)),
            iters=iters if iters is not None else (1 if cpu else 10),
            warmup=1 if cpu else 2,
            bf16=bf16, channels_last=channels_last, compile=compile_, i_frame=i_frame,
            infer_size=parse_size(infer_size) if infer_size else ((128, 128) if cpu else (1920, 1080)),
            infer_repeats=1 if cpu else 5,
            workers=workers if workers is not None else (1 if cpu else min(8, os.cpu_count() or 1)),
            loader_batches=4 if cpu else 40,
            clip_size=(320, 180) if cpu else (1280, 720),
            clip_frames=8 if cpu else 60,
            parts=parts, budget=float(budget),
        )
        from dcvc_bench.models.video_net import PRESETS

        if values.preset not in PRESETS:
            raise UserError(f"--preset: one of {', '.join(PRESETS)}, got {values.preset}")
        if values.crop < 16 or values.iters < 1 or values.workers < 0 or min(values.batches) < 1:
            raise UserError("--crop >= 16, --iters >= 1, --batches >= 1 and --workers >= 0, please")
        return values


def ceiling(preset: str, crop: int) -> Optional[float]:
    """The bf16 P-frames/s ceiling of an H200 at ``crop``² (module docstring), dcvc only."""
    return CEILING_256 * (256 * 256) / (crop * crop) if preset == "dcvc" else None


class _Rows:
    """Each measurement in its own try; failures and skips recorded, never fatal."""

    def __init__(self, record: dict[str, Any], budget: float, echo: Callable[[str], None]):
        self.record, self.echo = record, echo
        self.deadline = time.monotonic() + budget

    def run(self, part: str, name: str, fn: Callable[[], dict[str, Any]]) -> Optional[dict[str, Any]]:
        if time.monotonic() > self.deadline:
            self.record["skipped"].append(f"{part}: {name}")
            self.echo(f"  {name}: skipped (--budget spent)")
            return None
        _reset_peak()
        try:
            row = fn()
        except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
            line = f"{part}: {name}: failed: {type(exc).__name__}: {_first_line(exc)}"
            self.record["errors"].append(line)
            self.echo(f"  {line}")
            _free()
            return None
        row["name"] = name
        row["peak_mib"] = _peak_mib()
        self.record[part].append(row)
        self.echo(f"  {name}: {row['summary']}; peak {_fmt(row['peak_mib'])} MiB")
        _free()
        return row


def run_gpu_benchmark(options: GpuBenchOptions, echo: Callable[[str], None] = print) -> dict[str, Any]:
    from dcvc_bench.train.data_bench import load_figure

    o = options
    if o.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"
    started = time.monotonic()
    record: dict[str, Any] = {
        "format": FORMAT, "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device": _device_name(o.device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "threads": torch.get_num_threads(), "load": load_figure(),
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(o).items()},
        "ceiling": {"h200_bf16_tflops": H200_BF16_TFLOPS, "pframe_gflop_256": PFRAME_GFLOP_256,
                    "p_frames_per_s": ceiling(o.preset, o.crop), "goal_fraction": GOAL_FRACTION},
        "train": [], "infer": [], "codec": [], "data": [], "errors": [], "skipped": [],
    }
    rows = _Rows(record, o.budget, echo)
    echo(f"bench gpu: {record['device']}, torch {torch.__version__}, preset {o.preset}, {record['load']}")
    top = ceiling(o.preset, o.crop)
    if top is not None:
        echo(f"ceiling: {H200_BF16_TFLOPS:.0f} TFLOP/s bf16 / {PFRAME_GFLOP_256:.0f} GFLOP per {o.crop}² P-frame "
             f"(fwd+bwd) = {top:.0f} P-frames/s; goal {GOAL_FRACTION:.0%} = {top * GOAL_FRACTION:.0f} P-frames/s")
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-gpu-") as tmp:
        if "train" in o.parts:
            echo("train (stage 4, batches on the device, loader apart):")
            for gop, gop_opt in o.gops:
                for batch in o.batches:
                    _train_rows(rows, o, tmp, batch=batch, gop=gop, gop_opt=gop_opt)
        if "infer" in o.parts:
            echo(f"infer (estimation forward, one P-frame, {o.infer_size[0]}x{o.infer_size[1]}):")
            for bf16 in (False, True) if o.bf16 else (False,):
                rows.run("infer", f"{'bf16' if bf16 else 'fp32'}", lambda bf16=bf16: _infer_row(o, bf16))
        if "codec" in o.parts:
            echo(f"codec (real rANS coding, one P-frame, {o.infer_size[0]}x{o.infer_size[1]}):")
            row = rows.run("codec", "encode+decode", lambda: _codec_row(o, o.device))
            if row is None and o.device == "cuda" and _failed(record, "codec: encode+decode"):
                rows.run("codec", "encode+decode (cpu: cuda failed)", lambda: _codec_row(o, "cpu"))
        if "data" in o.parts:
            need = max((r["frames_per_s"] for r in record["train"] if r["gop"] == 2), default=None)
            echo(f"data (GOP 2 crops {o.crop}², batch {o.batches[0]}, from {o.clip_size[0]}x{o.clip_size[1]} MP4s):")
            clips = os.path.join(tmp, "clips")
            for w in sorted({1, o.workers}):
                rows.run("data", f"workers {w}", lambda w=w: _data_row(o, clips, w, need))
            cache = os.path.join(tmp, "frame-cache")
            rows.run("data", "workers 1, frame cache", lambda: _data_row(o, clips, 1, need, cache))
    record["seconds"] = time.monotonic() - started
    _print_table(record, echo)
    return record


# ------------------------------------------------------------------------------ rows

def _train_rows(rows: _Rows, o: GpuBenchOptions, tmp: str, *, batch: int, gop: int, gop_opt: bool) -> None:
    name = f"b{batch} GOP {gop}{' opt' if gop_opt else ''}"
    row = rows.run("train", name, lambda: _train_row(o, tmp, batch=batch, gop=gop, gop_opt=gop_opt,
                                                     compiled=o.compile))
    if row is None and o.compile and _failed(rows.record, f"train: {name}"):
        rows.run("train", name + " (eager: compile failed)",
                 lambda: _train_row(o, tmp, batch=batch, gop=gop, gop_opt=gop_opt, compiled=False))


def _train_row(o: GpuBenchOptions, tmp: str, *, batch: int, gop: int, gop_opt: bool, compiled: bool) -> dict[str, Any]:
    from dcvc_bench.curriculum.command import render_flags
    from dcvc_bench.curriculum.iframe_spec import CompressAISpec, weightless_spec
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    folder = os.path.join(tmp, f"train-g{gop}")
    if not os.path.isdir(folder):
        write_synthetic_clips(folder, videos=2, frames=gop + 2, size=(o.crop + 16, o.crop + 16), seed=0)
    spec = weightless_spec() if o.i_frame == "jpeg" else CompressAISpec(pretrained=False)
    steps = o.warmup + o.iters
    argv = ["--train_video_dir", folder, "--stage", "4", "--gop_size", str(gop), "--lambda_value", "1024",
            "--quality_index", "3", "--model_preset", o.preset, "--crop_size", str(o.crop),
            "--batch_size", str(batch), "--epochs", "1", "--steps_per_epoch", str(steps), "--num_workers", "0",
            "--skip_eval", "--no-use_ema", *render_flags(spec.to_flags()), "--checkpoint_dir", folder + "/ck"]
    if gop_opt:
        argv.append("--stage4_gop_opt")
    if o.bf16:
        argv += ["--mixed_precision", "bf16"]
    if compiled:
        argv.append("--compile")
    trainer = Trainer(parse_args(argv))
    if o.channels_last:
        trainer.net.to(memory_format=torch.channels_last)
    batches = [b.to(trainer.device).float().div_(255.0) for b in trainer.loader]
    t_warm = time.perf_counter()
    for frames in batches[:o.warmup]:
        trainer.train_batch(frames)
    _sync()
    warm_s = time.perf_counter() - t_warm
    t0 = time.perf_counter()
    for frames in batches[o.warmup:]:
        trainer.train_batch(frames)
    _sync()
    elapsed = time.perf_counter() - t0
    iters = len(batches) - o.warmup
    p_fps = iters * batch * (gop - 1) / elapsed
    frames_fps = iters * batch * gop / elapsed
    top = ceiling(o.preset, o.crop)
    pct = 100.0 * p_fps / top if top else None
    pct_text = f", {pct:.1f} % of the {top:.0f} ceiling" if pct is not None else ""
    return {"batch": batch, "gop": gop, "gop_opt": gop_opt, "crop": o.crop, "bf16": o.bf16,
            "channels_last": o.channels_last, "compiled": compiled, "iters": iters, "seconds": elapsed,
            "warmup_s": warm_s, "ms_per_iter": 1000 * elapsed / iters, "p_frames_per_s": p_fps,
            "frames_per_s": frames_fps, "ceiling_pct": pct,
            "summary": f"{p_fps:.1f} P-frames/s{pct_text} ({1000 * elapsed / iters:.0f} ms/iter, warm-up "
                       f"{warm_s:.1f} s); the loader must give {frames_fps:.1f} frames/s"}


def _infer_row(o: GpuBenchOptions, bf16: bool) -> dict[str, Any]:
    from dcvc_bench.models.video_net import DCVC

    torch.manual_seed(0)
    device = torch.device(o.device)
    net = DCVC(o.preset).to(device).eval()
    if o.channels_last:
        net.to(memory_format=torch.channels_last)
    width, height = o.infer_size
    ref, x = torch.rand(2, 1, 3, height, width, device=device)
    times = []
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(o.infer_repeats + 1):
            _sync()
            t0 = time.perf_counter()
            out = net(ref, x)
            _sync()
            if i:  # the first is warm-up
                times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    bits_dtype = str(out["bits"]["y"].dtype).replace("torch.", "")
    return {"bf16": bf16, "width": width, "height": height, "ms": ms, "min_ms": 1000 * min(times),
            "repeats": len(times), "bits_dtype": bits_dtype,
            "summary": f"{ms:.1f} ms per P-frame (median of {len(times)}; rates in {bits_dtype})"}


def _failed(record: dict[str, Any], row: str) -> bool:
    """Whether the last recorded error is row ``row``'s (not skipped: failed)."""
    return bool(record["errors"]) and record["errors"][-1].startswith(f"{row}:")


def _codec_row(o: GpuBenchOptions, device: str) -> dict[str, Any]:
    import numpy as np

    from dcvc_bench.codec.video import Codec, decode_video, encode_video
    from dcvc_bench.curriculum.iframe_spec import weightless_spec
    from dcvc_bench.data.synth import clip_frames
    from dcvc_bench.models.iframe import build_iframe_codec
    from dcvc_bench.models.video_net import DCVC

    torch.manual_seed(0)
    codec = Codec(DCVC(o.preset), build_iframe_codec(weightless_spec(), device=device), device=device)
    clip = np.stack(list(clip_frames(2, o.infer_size, np.random.default_rng(0))))
    clip = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 3, 1, 2)))
    enc = encode_video(codec, clip, -1, name="synthetic")
    dec = decode_video(codec, enc.stream, name="synthetic", max_pixels=None)
    enc_s, dec_s = enc.frames[1].enc_seconds, dec.dec_seconds[1]
    exact = bool(torch.equal(dec.frames, enc.decoded))
    return {"device": device, "width": o.infer_size[0], "height": o.infer_size[1], "encode_s": enc_s, "decode_s": dec_s,
            "p_frame_bytes": enc.frames[1].bits // 8, "decoded_equal": exact, "threads": codec.threads,
            "summary": f"P-frame encode {enc_s:.2f} s, decode {dec_s:.2f} s (random weights; decode "
                       f"{'identical' if exact else 'DIFFERS'})"}


def _data_row(o: GpuBenchOptions, clips: str, workers: int, need: Optional[float],
              frame_cache: Optional[str] = None) -> dict[str, Any]:
    from dcvc_bench.train.data_bench import measure_loader, synthetic_clips

    if not os.path.isdir(clips):
        synthetic_clips(clips, clips=4, frames=o.clip_frames, size=o.clip_size)
    row = measure_loader(clips, workers=workers, gop=2, crop=o.crop, batch=o.batches[0], batches=o.loader_batches,
                         frame_cache=frame_cache)
    row["trainer_frames_per_s"] = need
    row["ratio"] = row["frames_per_s"] / need if need else None
    beside = f", {row['ratio']:.2f}x the trainer's {need:.1f} frames/s" if need else ""
    row["summary"] = (f"{row['frames_per_s']:.1f} frames/s{beside}; RSS {row['rss_mib_start']:.0f} -> "
                      f"{row['rss_mib_end']:.0f} MiB")
    return row


# ------------------------------------------------------------------------------ helpers

def _print_table(record: dict[str, Any], echo: Callable[[str], None]) -> None:
    echo("")
    echo(f"{'part':6} {'row':34} {'figure':>16} {'% ceiling':>10} {'peak MiB':>9}")
    for part, key, unit in (("train", "p_frames_per_s", "P-frames/s"), ("infer", "ms", "ms"),
                            ("codec", "encode_s", "s enc"), ("data", "frames_per_s", "frames/s")):
        for row in record[part]:
            pct = row.get("ceiling_pct")
            echo(f"{part:6} {row['name']:34} {row[key]:>9.2f} {unit:<6} "
                 f"{(f'{pct:.1f}' if pct is not None else '-'):>10} {_fmt(row['peak_mib']):>9}")
            if part == "codec":
                echo(f"{part:6} {'':34} {row['decode_s']:>9.2f} {'s dec':<6}")
    for line in record["errors"]:
        echo(f"error row: {line}")
    for line in record["skipped"]:
        echo(f"skipped row: {line}")
    echo(f"{record['seconds']:.0f} s in all; {record['load']}")


def write_json(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    from dcvc_bench.checkpoints import atomic_file

    try:
        with atomic_file(Path(path)) as fh:
            fh.write((json.dumps(record, indent=2, default=str) + "\n").encode())
    except OSError as exc:
        raise UserError(f"--json: cannot write {path} ({exc.strerror or exc}); pick a writable path") from None


def _device_name(device: str) -> str:
    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_mib() -> Optional[float]:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def _free() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0f}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "")[:200]
