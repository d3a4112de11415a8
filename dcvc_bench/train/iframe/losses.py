"""The VQGAN step's loss terms beyond the codec's own: the LPIPS perceptual term (from
local weights only), taming-transformers' hinge GAN losses and the adaptive weight of
the generator's loss.

- **Perceptual** (:func:`load_perceptual`): LPIPS v0.1 (AlexNet) built by eval's loader
  (:class:`dcvc_bench.eval.metrics.LPIPSMetric`: random backbone overwritten by the
  local torchvision AlexNet file, the linear layers shipped in the lpips package, nothing
  downloaded), frozen, differentiable in its inputs. ``--lpips_weights`` names the AlexNet
  file (default: where eval's LPIPS looks, the torch hub cache). A missing file, or
  ``--perceptual_weight 0``, turns the term off; the reason is recorded.
- **GAN**: the discriminator minimises ``0.5·(mean relu(1 - D(x)) + mean relu(1 + D(x̂)))``;
  the autoencoder adds ``w · (-mean D(x̂))`` with the adaptive weight
  ``w = disc_weight · clamp(‖∇_last rec‖ / (‖∇_last g‖ + 1e-4), 0, 1e4)``, the gradients
  taken at the decoder's last layer (:func:`adaptive_weight`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

ADAPTIVE_WEIGHT_MAX = 1e4
_EPS = 1e-4


@dataclass
class Perceptual:
    """The LPIPS term: ``module`` (None when off) and why it is off."""

    module: Any
    weights: str
    reason: str | None = None

    @property
    def on(self) -> bool:
        return self.module is not None

    def record(self) -> dict[str, Any]:
        """What step_start and the checkpoints say about the term."""
        return {"on": self.on, "weights": self.weights, "reason": self.reason}

    def __call__(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Mean LPIPS of frames in [0, 1] (fp32), differentiable in ``x_hat``."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.module(x.float(), x_hat.float(), normalize=True).mean()


def load_perceptual(path: str | None, weight: float, device: torch.device) -> Perceptual:
    """The perceptual term from local weights (module docstring)."""
    from dcvc_bench.eval.metrics import LPIPSMetric, lpips_weight_files
    from dcvc_bench.errors import UserError

    try:
        default = lpips_weight_files()["backbone"]
    except ImportError as exc:
        return Perceptual(None, str(path), f"the lpips package is not importable ({exc})")
    file = Path(path).expanduser() if path else default
    if weight == 0:
        return Perceptual(None, str(file), "--perceptual_weight 0")
    if not file.is_file():
        return Perceptual(None, str(file), f"LPIPS weights {file} not found (the AlexNet file "
                          f"{default.name}; --lpips_weights names it)")
    try:
        with _hub_dir_holding(file, default.name):
            metric = LPIPSMetric(device)
    except UserError as exc:
        return Perceptual(None, str(file), str(exc))
    return Perceptual(metric.model, str(file))


class _hub_dir_holding:
    """Point torch hub's folder, for eval's LPIPS loader, at a temporary one whose
    ``checkpoints/<name>`` is ``file`` (unless ``file`` is already where it looks);
    afterwards the folder is what it was."""

    def __init__(self, file: Path, name: str):
        self.file, self.name = file.resolve(), name

    def __enter__(self) -> None:
        self.previous = torch.hub.get_dir()
        self.tmp = None
        if self.file == (Path(self.previous) / "checkpoints" / self.name).resolve():
            return
        self.tmp = tempfile.TemporaryDirectory(prefix="dcvc-bench-lpips-")
        (Path(self.tmp.name) / "checkpoints").mkdir()
        os.symlink(self.file, Path(self.tmp.name) / "checkpoints" / self.name)
        torch.hub.set_dir(self.tmp.name)

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            torch.hub.set_dir(self.previous)
            self.tmp.cleanup()


def reconstruction_loss(kind: str, x_hat: Tensor, x: Tensor) -> Tensor:
    """``l1`` or ``mse`` of the (unclamped) reconstruction, fp32."""
    x_hat, x = x_hat.float(), x.float()
    return F.l1_loss(x_hat, x) if kind == "l1" else F.mse_loss(x_hat, x)


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def generator_loss(logits_fake: Tensor) -> Tensor:
    return -logits_fake.float().mean()


def adaptive_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor, scale: float = 1.0) -> Tensor | None:
    """taming-transformers' adaptive GAN weight (before ``--disc_weight``), in fp32.

    ``last_layer`` is the decoder's last weight on the unwrapped module (under DDP the
    wrapper's parameters are the same tensors). ``torch.autograd.grad`` with
    ``retain_graph`` leaves the graph for the backward of the total loss and accumulates
    nothing, so DDP's gradient hooks do not fire. Under fp16 both losses are multiplied
    by the grad scaler's ``scale`` first (the ratio is unchanged, the eps scaled with
    them) so that small gradients do not flush to zero; norms are taken in fp32. None
    when the result is not finite (an overflowed scale): the caller keeps its last one.
    """
    rec_grad = torch.autograd.grad(rec_loss * scale, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss * scale, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (g_grad.float().norm() + _EPS * scale)
    if not bool(torch.isfinite(weight)):
        return None
    return weight.clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()


__all__ = ["Perceptual", "adaptive_weight", "generator_loss", "hinge_d_loss", "load_perceptual",
           "reconstruction_loss"]
