"""Fixtures for real coding: a clip whose size is not a multiple of 64, a briefly trained
tiny checkpoint (the real trainer, a few steps), and codecs built from them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

CLIP_SIZE = (96, 72)  # (W, H): neither is a multiple of 64
CLIP_FRAMES = 5


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    from dcvc_bench.data.synth import write_synthetic_clips

    folder = tmp_path_factory.mktemp("codec_clips")
    (path,) = write_synthetic_clips(folder, videos=1, frames=CLIP_FRAMES, size=CLIP_SIZE, seed=3)
    return path


@pytest.fixture(scope="session")
def clip(clip_path) -> torch.Tensor:
    """The clip's frames, T×3×H×W uint8, as `dcvc-bench encode` reads them."""
    from dcvc_bench.data.video import read_frames

    frames = read_frames(clip_path, 0, CLIP_FRAMES)
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


def _train(data: Path, root: Path, seed: int) -> Path:
    """A stage-4 step of the real trainer: tiny preset, 64 px crops, a few steps."""
    from accelerate.state import AcceleratorState

    from dcvc_bench.checkpoints import checkpoint_path
    from dcvc_bench.train.loop import main

    argv = ["--train_video_dir", str(data), "--checkpoint_dir", str(root), "--model_preset", "tiny",
            "--i_frame_type", "opencv", "--i_frame_codec", "jpeg", "--i_frame_quality", "90",
            "--lambda_value", "1024", "--quality_index", "1", "--stage", "4", "--gop_size", "2",
            "--epochs", "1", "--steps_per_epoch", "30", "--batch_size", "1", "--crop_size", "64",
            "--learning_rate", "5e-4", "--num_workers", "0", "--seed", str(seed), "--skip_eval"]
    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return checkpoint_path(root, 1024.0, 1, 4, "final")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, clip_path) -> Path:
    return _train(clip_path.parent, tmp_path_factory.mktemp("codec_ckpt"), seed=7)


@pytest.fixture(scope="session")
def codec(checkpoint):
    from dcvc_bench.codec.video import load_codec

    return load_codec(checkpoint)


@pytest.fixture(scope="session")
def random_codec():
    """A tiny DCVC with random weights (another model than ``codec``) and JPEG I-frames."""
    from dcvc_bench.codec.video import Codec
    from dcvc_bench.curriculum.iframe_spec import OpenCVSpec
    from dcvc_bench.models.iframe import build_iframe_codec
    from dcvc_bench.models.video_net import DCVC

    torch.manual_seed(11)
    return Codec(DCVC("tiny"), build_iframe_codec(OpenCVSpec(codec="jpeg", quality=90)), threads=2)
