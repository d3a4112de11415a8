"""`dcvc-bench bench train`: training throughput and peak memory of one configuration.

It builds the real training step (same Trainer, data pipeline, I-frame codec and
optimizers) on synthetic clips in a temporary folder and times ``iters`` iterations after
one warm-up. Figures are printed, never asserted.
"""

from __future__ import annotations

import resource
import tempfile
import time
from typing import Callable

import torch


def run_train_benchmark(*, preset: str, crop: int, batch: int, gop: int, stage: int,
                        iters: int, device: str = "auto", gop_opt: bool = False,
                        echo: Callable[[str], None] = print) -> dict[str, float]:
    from dcvc_bench.curriculum.command import render_flags
    from dcvc_bench.curriculum.iframe_spec import weightless_spec
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.errors import UserError
    from dcvc_bench.train.args import parse_args
    from dcvc_bench.train.loop import Trainer

    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device: must be auto, cpu or cuda, got {device}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible here; use --device cpu")
    if iters < 1:
        raise UserError(f"--iters: must be at least 1, got {iters}")
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
        if device == "cpu":
            import os
            os.environ["ACCELERATE_USE_CPU"] = "true"
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
    if trainer.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_what = "peak GPU memory allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_what = "peak process RSS"
    params = sum(p.numel() for p in trainer.net.parameters())
    echo(f"preset {preset} ({params / 1e6:.2f} M params), stage {stage}, GOP {gop}"
         f"{' (GOP opt)' if gop_opt else ''}, batch {batch}, crop {crop}, device "
         f"{trainer.device}, torch threads {torch.get_num_threads()}")
    echo(f"{iters} iterations in {elapsed:.2f} s: {frames_done / elapsed:.2f} frames/s "
         f"({p_frames / elapsed:.2f} P-frames/s, {elapsed / iters * 1000:.0f} ms/iteration)")
    echo(f"{peak_what}: {peak:.0f} MiB")
    return {"frames_per_s": frames_done / elapsed, "peak_mib": peak, "seconds": elapsed}
