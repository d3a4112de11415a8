"""Test frames for the I-frame codec tests."""

from __future__ import annotations

import torch


def natural_frame(h: int, w: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Smooth gradients plus texture: compresses like a photo, not like pure noise."""
    g = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, h).view(1, 1, h, 1)
    xx = torch.linspace(0, 1, w).view(1, 1, 1, w)
    base = torch.cat([yy * xx.expand(1, 1, h, w), (1 - yy) * torch.ones(1, 1, h, w), xx.expand(1, 1, h, w)], 1)
    noise = 0.15 * torch.rand(batch, 3, h, w, generator=g)
    return (0.8 * base + noise).clamp(0, 1)
