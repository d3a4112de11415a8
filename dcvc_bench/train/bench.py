"""`dcvc-bench bench train`: training throughput and peak memory of one configuration.

It builds the real training step (same Trainer, data pipeline, I-frame codec and
optimizers) on synthetic clips in a temporary folder and times ``iters`` iterations after
one warm-up. Figures are printed, never asserted. ``--kind pframe`` (the default) times
the P-frame step; ``--kind iframe`` the I-frame step (``--type vqgan|rvq|compressai``),
with the discriminator on from the first iteration (its full cost) and the LPIPS term
on when its weights are on this machine.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch


def run_train_benchmark(*, preset: str, crop: int, batch: int, gop: int, stage: int,
                        iters: int, device: str = "auto", gop_opt: bool = False,
                        echo: Callable[[str], None] = print) -> dict[str, float]:
    from dcvc_bench.curriculum.command import render_flags
    from dcvc_bench.curriculum.iframe_spec import weightless_spec
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    _check(device, iters)
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-") as tmp:
        side = crop + 16
        write_synthetic_clips(tmp, videos=2, frames=gop + 2, size=(side, side), seed=0)
        argv = ["--train_video_dir", tmp, "--stage", str(stage), "--gop_size", str(gop),
                "--lambda_value", "1024", "--quality_index", "3", "--model_preset", preset,
                "--crop_size", str(crop), "--batch_size", str(batch), "--epochs", "1",
                "--steps_per_epoch", str(iters + 1), "--num_workers", "0", "--skip_eval",
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
        t0 = time.perf_counter()
        for frames in batches[1:iters + 1]:
            trainer.train_batch(frames)
        sync()
        elapsed = time.perf_counter() - t0
    frames_done = iters * batch * gop
    p_frames = iters * batch * (gop - 1)
    peak, peak_what = _peak(trainer.device)
    params = sum(p.numel() for p in trainer.net.parameters())
    echo(f"preset {preset} ({params / 1e6:.2f} M params), stage {stage}, GOP {gop}"
         f"{' (GOP opt)' if gop_opt else ''}, batch {batch}, crop {crop}, device "
         f"{trainer.device}, torch threads {torch.get_num_threads()}")
    echo(f"{iters} iterations in {elapsed:.2f} s: {frames_done / elapsed:.2f} frames/s "
         f"({p_frames / elapsed:.2f} P-frames/s, {elapsed / iters * 1000:.0f} ms/iteration)")
    echo(f"{peak_what}: {peak:.0f} MiB")
    return {"frames_per_s": frames_done / elapsed, "peak_mib": peak, "seconds": elapsed}


def run_iframe_benchmark(*, type_: str | None, config: str | None, crop: int, batch: int, iters: int,
                         device: str = "auto", echo: Callable[[str], None] = print) -> dict[str, float]:
    """Images/s and peak memory of the I-frame step (module docstring)."""
    from dcvc_bench.curriculum.iframe_spec import COMPRESSAI_TYPE, RVQ_TYPE
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.errors import UserError
    from dcvc_bench.models.iframe.vq_config import CONFIG_DIR
    from dcvc_bench.train.iframe.args import TYPES, parse_args
    from dcvc_bench.train.iframe.recipe import IFrameTrainer

    _check(device, iters)
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


def _check(device: str, iters: int) -> None:
    from dcvc_bench.errors import UserError

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
