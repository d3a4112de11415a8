"""Inference-only conv fusion: oneDNN applies a conv's activation, or its block's residual
add, in the convolution's epilogue instead of in a second pass over the output.

Why: on CPU, most of the P-frame forward outside the convolutions is full-resolution
element-wise passes (ReLU, LeakyReLU, the residual adds of the ResBlocks), each a read and
a write of a 64-channel frame-sized tensor. ``torch.ops.mkldnn._convolution_pointwise``
(the kernel inductor uses for the same fusion) does them while the conv's output is still
in registers. The arithmetic is the same (the activation of, or the sum with, the same
fp32 accumulator), up to oneDNN choosing another kernel for a fused conv on a small input:
on this CPU a channels_last P-frame forward gives the unfused outputs bit for bit from
128×192 up and within 3e-6 below (``tests/models/test_fusion.py``). So the real coder
(``codec/``), whose streams depend on exact arithmetic, does not fuse.

:func:`fuse_for_inference` rewrites a network in place without changing what a checkpoint
holds: a fused conv stays a ``Conv2d`` with the same parameters under the same name (its
class becomes :class:`FusedConv2d`), and the activation it absorbed, which has no state,
moves into it (``act``), leaving an ``nn.Identity`` in its slot. Which pairs fuse: a ``Conv2d`` followed by a ReLU
or LeakyReLU in an ``nn.Sequential``, and the pairs a module lists in ``FUSE_PAIRS``
(``(conv attribute, activation attribute)``; see ``ResBlock`` and ``MEBasic``). Residual
adds fuse where a block calls :func:`conv_add`.

A fused conv runs the fused kernel only where that kernel applies: gradients off, CPU,
float32, no autocast. Anywhere else (training, a GPU, bf16) it runs the conv and then the
activation, exactly as the unfused network did, so a fused network can still be trained.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["FusedConv2d", "conv_add", "fuse_for_inference", "fused_count"]

_ACTS = (nn.ReLU, nn.LeakyReLU)


def _post_op(act: Optional[nn.Module]) -> tuple[str, list]:
    """oneDNN's post-op name and scalars for ``act`` (None: no activation)."""
    if act is None:
        return "none", [None]
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", [act.negative_slope]
    return "relu", [None]


class FusedConv2d(nn.Conv2d):
    """A ``Conv2d`` that owns the activation it absorbed (``act``, stateless, or None) and
    applies it in the conv's kernel where that kernel applies, after the conv elsewhere."""

    act: Optional[nn.Module]

    @property
    def post(self) -> Optional[tuple[str, list]]:
        """The oneDNN post-op of ``act``, or None without one."""
        return None if self.act is None else _post_op(self.act)

    def _kernel_applies(self, x: Tensor) -> bool:
        return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4
                and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu"))

    def forward(self, x: Tensor) -> Tensor:
        if not self._kernel_applies(x):
            y = super().forward(x)
            return y if self.act is None else self.act(y)
        name, scalars = _post_op(self.act)
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, list(self.padding), list(self.stride), list(self.dilation),
            self.groups, name, scalars, "")

    def forward_add(self, x: Tensor, other: Tensor) -> Tensor:
        """``other + conv(x)`` (no activation may follow: ``act`` must be None)."""
        if self.act is not None or not self._kernel_applies(x) or other.shape[1] != self.out_channels:
            return other + self.forward(x)
        return torch.ops.mkldnn._convolution_pointwise(
            x, other, self.weight, self.bias, list(self.padding), list(self.stride), list(self.dilation),
            self.groups, "add", None, None, [], None)


def conv_add(conv: nn.Module, x: Tensor, other: Tensor) -> Tensor:
    """``other + conv(x)``: one pass where ``conv`` was fused, the sum as written elsewhere."""
    if isinstance(conv, FusedConv2d):
        return conv.forward_add(x, other)
    return other + conv(x)


def _fusable(conv: nn.Module) -> bool:
    """A plain ``Conv2d`` (not a subclass such as the masked context conv, whose forward
    differs) with zero padding given as numbers, which is what the fused kernel computes."""
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and torch.backends.mkldnn.is_available())


def _fuse(conv: nn.Conv2d, act: Optional[nn.Module]) -> None:
    conv.__class__ = FusedConv2d
    conv.act = act  # a submodule without state: the state dict keeps its keys


def fuse_for_inference(net: nn.Module) -> nn.Module:
    """Fuse ``net``'s conv→activation pairs and its ``conv_add`` convs, in place (same
    parameters, same state dict). Returns ``net``. Idempotent."""
    for module in list(net.modules()):
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                conv, act = module[i], module[i + 1]
                if _fusable(conv) and isinstance(act, _ACTS):
                    _fuse(conv, act)
                    module[i + 1] = nn.Identity()
        pairs = getattr(type(module), "FUSE_PAIRS", ())
        for act_name in dict.fromkeys(a for _, a in pairs):
            # An activation shared by several convs is absorbed only if every one of them fuses.
            act, convs = getattr(module, act_name), [getattr(module, c) for c, a in pairs if a == act_name]
            if isinstance(act, _ACTS) and all(_fusable(c) for c in convs):
                for conv in convs:
                    _fuse(conv, act)
                setattr(module, act_name, nn.Identity())
        for conv_name in getattr(type(module), "FUSE_ADD", ()):
            conv = getattr(module, conv_name)
            if _fusable(conv):
                _fuse(conv, None)
    return net


def fused_count(net: nn.Module) -> int:
    """How many of ``net``'s convs are fused."""
    return sum(isinstance(m, FusedConv2d) for m in net.modules())
