"""Running real training steps (tiny preset, synthetic clips) from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dcvc_bench.checkpoints import checkpoint_path
from dcvc_bench.events import read_events

LAMBDA, QUALITY = 256.0, 1


def step_argv(data: Path, ckpt_dir: Path, events: Path, *, stage: int, gop: int = 2,
              epochs: int = 1, steps: int = 1, eval_: bool = False, extra: list[str] = ()) -> list[str]:
    argv = ["--train_video_dir", str(data), "--checkpoint_dir", str(ckpt_dir),
            "--events_file", str(events), "--model_preset", "tiny",
            "--i_frame_type", "opencv",  # alone: the family's defaults, JPEG q90
            "--lambda_value", str(LAMBDA), "--quality_index", str(QUALITY),
            "--stage", str(stage), "--gop_size", str(gop), "--epochs", str(epochs),
            "--steps_per_epoch", str(steps), "--batch_size", "1", "--crop_size", "64",
            "--num_workers", "0", "--seed", "7"]
    if eval_:
        argv += ["--val_video_dir", str(data), "--eval_max_frames", "3"]
    else:
        argv += ["--skip_eval"]
    return argv + list(extra)


def run_in_process(argv: list[str]) -> int:
    """Run the real step in this process (fast: torch is already imported)."""
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.loop import main

    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    return main(argv)


def run_subprocess(argv: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
    return subprocess.run([sys.executable, "-m", "dcvc_bench.train", *argv], env=env,
                          capture_output=True, text=True, **kw)


def ckpt(ckpt_dir: Path, stage: int, kind: str) -> Path:
    return checkpoint_path(ckpt_dir, LAMBDA, QUALITY, stage, kind)


def events_of(path: Path, kind: str) -> list[dict]:
    return [e for e in read_events(path) if e["event"] == kind]


# -- the I-frame step (python -m dcvc_bench.train.iframe) ------------------------------
TINY_RVQ = Path(__file__).resolve().parents[2] / "dcvc_bench/models/iframe/vq_configs/tiny_rvq_f2.json"


def iframe_argv(data: Path, ckpt_dir: Path, events: Path, *, type_: str = "rvq", tag: str = "train",
                epochs: int = 1, steps: int = 2, eval_: bool = True, extra: list[str] = ()) -> list[str]:
    """A tiny I-frame step: RVQ f=2 (8 layers, K=16) on 32² crops with an 8-wide
    PatchGAN, or a CompressAI model on 64² crops; two crops per batch."""
    argv = ["--train_video_dir", str(data), "--checkpoint_dir", str(ckpt_dir), "--events_file", str(events),
            "--i_frame_type", type_, "--step_tag", tag, "--epochs", str(epochs), "--steps_per_epoch", str(steps),
            "--batch_size", "2", "--num_workers", "0", "--seed", "7", "--learning_rate", "1e-3"]
    if type_ == "compressai":
        argv += ["--crop_size", "64"]
    else:
        argv += ["--vqgan_config", str(TINY_RVQ), "--crop_size", "32", "--disc_channels", "8",
                 "--index_fit_samples", "8"]
    if eval_:
        argv += ["--val_video_dir", str(data)]
    else:
        argv += ["--skip_eval"]
    return argv + list(extra)


def run_iframe_in_process(argv: list[str]) -> int:
    from accelerate.state import AcceleratorState

    from dcvc_bench.train.iframe.recipe import main

    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    return main(argv)


def run_iframe_subprocess(argv: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true"}
    return subprocess.run([sys.executable, "-m", "dcvc_bench.train.iframe", *argv], env=env,
                          capture_output=True, text=True, **kw)


def iframe_ckpt(ckpt_dir: Path, tag: str, kind: str, type_: str = "rvq") -> Path:
    from dcvc_bench.checkpoints import iframe_checkpoint_path

    return iframe_checkpoint_path(ckpt_dir, type_, tag, kind)
