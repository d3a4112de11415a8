"""What each training stage optimises and which modules it freezes (the seed protocol).

- Stage 1 (motion):     λ·MSE(x_pred, x) + bpp_mv_y + bpp_mv_z, everything trainable.
- Stage 2 (residual):   λ·MSE(x̂, x), motion modules frozen.
- Stage 3 (residual+R): λ·MSE(x̂, x) + bpp_y + bpp_z, motion modules frozen.
- Stage 4 (end-to-end): λ·MSE(x̂, x) + bpp_y + bpp_z + bpp_mv_y + bpp_mv_z, all trainable.

``x_pred`` is the motion-compensated prediction (reference warped by the decoded flow);
``x̂`` the full reconstruction. λ is on [0,1] pixels (DCVC); CompressAI's λ is λ/255².
All four bpp terms are always computed and reported. In *training*, the frame a stage
reconstructs (x_pred in stage 1) is what the next P-frame of the GOP uses as its
reference, and the rates are the likelihood proxy. *Evaluation* (and so ``best`` and
``global_best``) scores the codec a decoder implements in every stage: x̂, the exact cost
of the coded symbols, the decoded 8-bit frame as the next reference
(:func:`dcvc_bench.eval.estimate.selection_loss` keeps :data:`RATE_TERMS`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dcvc_bench.models.video_net import MOTION_MODULES

FROZEN_STAGES = (2, 3)
RATE_TERMS = {
    1: ("bpp_mv_y", "bpp_mv_z"),
    2: (),
    3: ("bpp_y", "bpp_z"),
    4: ("bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z"),
}


def frozen_modules(stage: int) -> tuple[str, ...]:
    return MOTION_MODULES if stage in FROZEN_STAGES else ()


def apply_stage_freeze(model: torch.nn.Module, stage: int) -> None:
    """Set requires_grad per the stage. Frozen modules include their entropy-model
    quantiles, so neither the main nor the aux optimizer can touch them."""
    frozen = set(frozen_modules(stage))
    for name, child in model.named_children():
        for p in child.parameters():
            p.requires_grad_(name not in frozen)


def reconstruction(out: dict[str, Any], stage: int) -> torch.Tensor:
    """The frame this stage decodes: the motion-compensated prediction in stage 1."""
    return out["x_pred"] if stage == 1 else out["x_hat"]


def stage_loss(out: dict[str, Any], x: torch.Tensor, stage: int, lmbda: float
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The stage's objective and all terms (detached) for reporting."""
    mse = F.mse_loss(reconstruction(out, stage).float(), x.float())
    loss = lmbda * mse
    for term in RATE_TERMS[stage]:
        loss = loss + out[term]
    terms = {"loss": loss.detach(), "mse": mse.detach()}
    for term in ("bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z"):
        terms[term] = out[term].detach().float()
    return loss, terms
