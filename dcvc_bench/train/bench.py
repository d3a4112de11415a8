"""`dcvc-bench bench train`: training throughput and peak memory of one configuration.

It builds the real training step (same Trainer, data pipeline, I-frame codec and
optimizers) on synthetic clips in a temporary folder and times ``iters`` iterations after
one warm-up, ``runs`` times: median and min, threads and load, ``--json`` and
``--compare-to`` (:mod:`dcvc_bench.bench_record`). Figures are printed, never asserted.
``--plain`` times today's eager NCHW path; ``--memory-format channels_last`` the NHWC one. ``--kind pframe`` (the default) times
the P-frame step; ``--kind iframe`` the I-frame step (``--type vqgan|rvq|compressai``),
with the discriminator on from the first iteration (its full cost) and the LPIPS term
on when its weights are on this machine.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch


def run_train_benchmark(*, preset: str, crop: int, batch: int, gop: int, stage: int,
                        iters: int, device: str = "auto", gop_opt: bool = False, runs: int = 1,
                        threads: int | None = None, plain: bool = False, memory_format: str | None = None,
                        json_path: str | None = None, compare_to: str | None = None,
                        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Time ``runs`` runs of ``iters`` P-frame iterations each (after one warm-up) in
    ``memory_format`` (default: the trainer's, models/fastpath.TRAIN_DEFAULT), or today's
    eager NCHW path with ``plain``. Prints and returns the record of
    :mod:`dcvc_bench.bench_record` (ms per iteration per run)."""
    from dcvc_bench.bench_record import finish, load_record, machine_load, make_record
    from dcvc_bench.curriculum.command import render_flags
    from dcvc_bench.curriculum.iframe_spec import weightless_spec
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.models.fastpath import PLAIN, TRAIN_DEFAULT, check_memory_format
    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    _check(device, iters, runs, threads)
    if compare_to:
        load_record(compare_to)   # a bad file fails before minutes of timing
    set_threads(threads)
    load_start = machine_load()
    memory_format = PLAIN if plain else check_memory_format(memory_format or TRAIN_DEFAULT)
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-") as tmp:
        side = crop + 16
        write_synthetic_clips(tmp, videos=2, frames=gop + 2, size=(side, side), seed=0)
        argv = ["--train_video_dir", tmp, "--stage", str(stage), "--gop_size", str(gop),
                "--lambda_value", "1024", "--quality_index", "3", "--model_preset", preset,
                "--crop_size", str(crop), "--batch_size", str(batch), "--epochs", "1",
                "--steps_per_epoch", str(iters * runs + 1), "--num_workers", "0", "--skip_eval",
                "--memory_format", memory_format,
                *render_flags(weightless_spec().to_flags()), "--checkpoint_dir", tmp + "/ck"]
        if gop_opt:
            argv.append("--stage4_gop_opt")
        _use_device(device)
        trainer = Trainer(parse_args(argv))
        batches = [b.to(trainer.device).float().div_(255.0) for b in trainer.loader]
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train_batch(batches[0])  # warm-up
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        sync()
        times = []
        for r in range(runs):
            t0 = time.perf_counter()
            for frames in batches[1 + r * iters:1 + (r + 1) * iters]:
                trainer.train_batch(frames)
            sync()
            times.append((time.perf_counter() - t0) / iters)
    peak, peak_what = _peak(trainer.device)
    params = sum(p.numel() for p in trainer.net.parameters())
    med = statistics.median(times)
    echo(f"preset {preset} ({params / 1e6:.2f} M params), stage {stage}, GOP {gop}"
         f"{' (GOP opt)' if gop_opt else ''}, batch {batch}, crop {crop}, device "
         f"{trainer.device}, {memory_format}")
    echo(f"{runs} runs of {iters} iterations: {batch * gop / med:.2f} frames/s "
         f"({batch * (gop - 1) / med:.2f} P-frames/s, {med * 1000:.0f} ms/iteration) at the median")
    echo(f"{peak_what}: {peak:.0f} MiB")
    config = {"preset": preset, "crop": crop, "batch": batch, "gop": gop, "stage": stage,
              "gop_opt": gop_opt, "iters": iters, "device": str(trainer.device)}
    record = make_record(bench="train", config=config, path="plain" if memory_format == PLAIN else memory_format,
                         unit="ms/iteration", runs=[t * 1000 for t in times],
                         threads=torch.get_num_threads(), load_start=load_start,
                         torch_version=torch.__version__,
                         extra={"memory_format": memory_format, "peak_mib": round(peak, 1),
                                "p_frames_per_s": round(batch * (gop - 1) / med, 4),
                                "frames_per_s": round(batch * gop / med, 4)})
    return finish(record, json_path=json_path, compare_to=compare_to, echo=echo)


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's intra-op threads (None: what torch chose)."""
    if threads is not None:
        torch.set_num_threads(threads)


def run_iframe_benchmark(*, type_: str | None, config: str | None, crop: int, batch: int, iters: int,
                         device: str = "auto", echo: Callable[[str], None] = print) -> dict[str, float]:
    """Images/s and peak memory of the I-frame step (module docstring)."""
    from dcvc_bench.curriculum.iframe_spec import COMPRESSAI_TYPE, RVQ_TYPE
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.errors import UserError
    from dcvc_bench.models.iframe.vq_config import CONFIG_DIR
    from dcvc_bench.train.iframe.args import TYPES, parse_args
    from dcvc_bench.train.iframe.recipe import IFrameTrainer

    _check(device, iters, 1, None)
    type_ = RVQ_TYPE if type_ is None else type_
    if type_ not in TYPES:
        raise UserError(f"--type: must be one of {', '.join(TYPES)}, got {type_}")
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-") as tmp:
        side = crop + 16
        write_synthetic_clips(tmp, videos=2, frames=4, size=(side, side), seed=0)
        argv = ["--train_video_dir", tmp, "--i_frame_type", type_, "--crop_size", str(crop),
                "--batch_size", str(batch), "--epochs", "1", "--steps_per_epoch", str(iters + 1),
                "--num_workers", "0", "--skip_eval", "--checkpoint_dir", tmp + "/ck"]
        if type_ == COMPRESSAI_TYPE:
            if config is not None:
                raise UserError("--config: a VQ architecture; --type compressai trains the zoo's "
                                "bmshj2018-hyperprior quality 3")
        else:
            default = CONFIG_DIR / ("rvq_f16_8.json" if type_ == RVQ_TYPE else "vqgan_f16.json")
            argv += ["--vqgan_config", str(config or default), "--disc_start", "0", "--index_fit_samples", "1"]
        _use_device(device)
        trainer = IFrameTrainer(parse_args(argv))
        batches = [trainer._to_device(b) for b in trainer.loader]
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.train_batch(batches[0])  # warm-up (and k-means initialisation of the codebooks)
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for x in batches[1:iters + 1]:
            trainer.train_batch(x)
        sync()
        elapsed = time.perf_counter() - t0
    fam = trainer.family
    params = sum(p.numel() for p in fam.net.parameters())
    what = f"{type_} ({Path(config or default).name}, {params / 1e6:.2f} M params)" if type_ != COMPRESSAI_TYPE \
        else f"{COMPRESSAI_TYPE} bmshj2018-hyperprior q3 ({params / 1e6:.2f} M params)"
    extras = ""
    if type_ != COMPRESSAI_TYPE:
        disc = sum(p.numel() for p in fam.disc_net.parameters())
        extras = (f", PatchGAN {disc / 1e6:.2f} M params (on), LPIPS "
                  f"{'on' if fam.perceptual.on else 'off (no local weights)'}")
    peak, peak_what = _peak(trainer.device)
    images = iters * batch
    echo(f"I-frame {what}{extras}, batch {batch}, crop {crop}, device {trainer.device}, "
         f"torch threads {torch.get_num_threads()}")
    echo(f"{iters} iterations in {elapsed:.2f} s: {images / elapsed:.2f} images/s "
         f"({elapsed / iters * 1000:.0f} ms/iteration)")
    echo(f"{peak_what}: {peak:.0f} MiB")
    return {"images_per_s": images / elapsed, "peak_mib": peak, "seconds": elapsed}


def _check(device: str, iters: int, runs: int, threads: int | None) -> None:
    from dcvc_bench.errors import UserError

    if runs < 1:
        raise UserError(f"--runs: must be at least 1, got {runs}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads: must be at least 1, got {threads}")
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device: must be auto, cpu or cuda, got {device}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible here; use --device cpu")
    if iters < 1:
        raise UserError(f"--iters: must be at least 1, got {iters}")


def _use_device(device: str) -> None:
    if device == "cpu":
        import os
        os.environ["ACCELERATE_USE_CPU"] = "true"


def _peak(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "peak GPU memory allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak process RSS"
