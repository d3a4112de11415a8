"""Exponential moving average of the model's floating-point parameters.

Created AFTER the weights are loaded (the reference script built it before, so its EMA
tracked the random initialisation). The caller updates it once per optimizer step (under
gradient accumulation: not on every micro-step, which would make the decay decay^k). Its
state is a plain dict of tensors, so it lives in the checkpoint next to the model and
loads with ``weights_only=True``.
"""

from __future__ import annotations

import torch

from dcvc_bench.checkpoint_io import ema_fits, with_ema_weights


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()
                       if p.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach(), 1.0 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {n: t.clone() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict, model: torch.nn.Module) -> None:
        """Load a saved EMA of ``model``; ValueError (nothing changed) if it does not fit."""
        if not ema_fits(model, state):
            raise ValueError("the EMA state does not fit the model")
        for n, t in state["shadow"].items():
            self.shadow[n].copy_(t)
        self.num_updates = int(state.get("num_updates", 0))

    def averaged_copy(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` carrying the averaged weights (buffers copied as they are)."""
        return with_ema_weights(model, self.shadow)
