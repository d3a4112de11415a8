"""Brief training of a VQGAN / RVQ-VQGAN on frames of synthetic clips: enough to give a
codec whose rates and depths mean something, for tests and smoke runs (not the full
I-frame training step).

Loss: MSE on pixels plus the quantiser's commitment loss (the codebooks follow by
EMA). After training, the indices of the training frames are counted at full depth and
the checkpoint is written with those counts and the CDFs fitted on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dcvc_bench.data.synth import clip_frames
from dcvc_bench.models.iframe.vq_checkpoint import fit_index_counts, save_vq_checkpoint
from dcvc_bench.models.iframe.vq_config import VQConfig
from dcvc_bench.models.vqgan import VQGAN


def synthetic_frames(clips: int = 4, frames: int = 8, size: tuple[int, int] = (64, 64), seed: int = 0) -> Tensor:
    """clips·frames RGB frames (N×3×H×W float in [0, 1]) from ``clips`` synthetic clips of
    ``size`` (width, height); deterministic in ``seed``."""
    out = []
    for c in range(clips):
        rng = np.random.default_rng([seed, c])
        out.extend(clip_frames(frames, size, rng))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


@dataclass
class BriefTraining:
    checkpoint: Path
    model: VQGAN
    index_counts: np.ndarray
    losses: list[float]


def train_vq_briefly(config: VQConfig | str | os.PathLike[str], out: str | os.PathLike[str], *,
                     iterations: int = 300, batch_size: int = 8, lr: float = 1e-3,
                     crop: int | None = None, frames: Tensor | None = None, seed: int = 0) -> BriefTraining:
    """Train for ``iterations`` steps on ``frames`` (default: 16 synthetic clips × 2
    frames of 64×64), on random ``crop``×``crop`` patches if given; then count the whole
    training frames' indices and save the checkpoint to ``out`` atomically."""
    cfg = config if isinstance(config, VQConfig) else VQConfig.from_json(config)
    torch.manual_seed(seed)
    data = synthetic_frames(clips=16, frames=2, seed=seed) if frames is None else frames.float()
    model = VQGAN(cfg)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(iterations):
        x = data[torch.randint(0, data.shape[0], (batch_size,), generator=gen)]
        if crop is not None and crop < min(x.shape[2], x.shape[3]):
            top = int(torch.randint(0, x.shape[2] - crop + 1, (), generator=gen))
            left = int(torch.randint(0, x.shape[3] - crop + 1, (), generator=gen))
            x = x[:, :, top : top + crop, left : left + crop]
        result = model(x)
        loss = F.mse_loss(result["x_hat"], x) + result["codebook_loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    counts = fit_index_counts(model, data.split(batch_size))
    path = save_vq_checkpoint(out, model, counts)
    model.eval()
    return BriefTraining(checkpoint=path, model=model, index_counts=counts, losses=losses)


__all__ = ["BriefTraining", "synthetic_frames", "train_vq_briefly"]
