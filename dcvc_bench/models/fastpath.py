"""The memory format the P-frame network runs in, and checkpoints that do not depend on it.

The network is the same whatever the format (same modules, parameter names, shapes and
arithmetic up to float rounding); only the strides of its weights and activations
differ. ``channels_last`` (NHWC) runs the convolutions on oneDNN's NHWC kernels;
``contiguous`` is PyTorch's default NCHW, the "plain" path (``--plain`` on the benches,
``--memory_format contiguous`` on the trainer, its default: see TRAIN_DEFAULT). Whatever ran, a checkpoint holds
contiguous tensors (:func:`contiguous_tensors`), so it reads the same into a plain model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

MEMORY_FORMATS = ("channels_last", "contiguous")
FAST = "channels_last"
#: Today's eager channels-first path, the yardstick (``--plain``).
PLAIN = "contiguous"
#: The defaults, by measurement on the project's 2-core AVX2 CPU (README "Speed"):
#: channels_last speeds the forward's convolutions up but slows oneDNN's backward more
#: (training 0.64-0.78x of NCHW), so training stays NCHW; inference runs channels_last.
TRAIN_DEFAULT = PLAIN
INFER_DEFAULT = FAST

__all__ = ["FAST", "INFER_DEFAULT", "MEMORY_FORMATS", "PLAIN", "TRAIN_DEFAULT", "check_memory_format", "contiguous_tensors", "prepare_input", "prepare_model"]


def _torch_format(memory_format: str) -> torch.memory_format:
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory format must be one of {MEMORY_FORMATS}, got {memory_format!r}")
    return torch.channels_last if memory_format == "channels_last" else torch.contiguous_format


def check_memory_format(memory_format: str) -> str:
    """``memory_format`` if it is one of :data:`MEMORY_FORMATS`, else a one-line UserError."""
    from dcvc_bench.errors import UserError

    if memory_format not in MEMORY_FORMATS:
        raise UserError(f"--memory-format: must be one of {', '.join(MEMORY_FORMATS)}, got {memory_format}")
    return memory_format


def prepare_model(net: nn.Module, memory_format: str) -> nn.Module:
    """Put ``net``'s 4-D weights in ``memory_format``, in place (the Parameter objects stay
    the same, so optimizers built on them keep working). Returns ``net``."""
    return net.to(memory_format=_torch_format(memory_format))


def prepare_input(x: Tensor, memory_format: str) -> Tensor:
    """``x`` (B×C×H×W) in ``memory_format`` (no copy when it already is)."""
    return x.contiguous(memory_format=_torch_format(memory_format)) if x.dim() == 4 else x


def contiguous_tensors(obj: Any) -> Any:
    """``obj`` (a state dict, an optimizer state, nested dicts/lists) with every tensor
    made contiguous (NCHW), for checkpoints: same keys, shapes and values."""
    if isinstance(obj, Tensor):
        return obj.contiguous()
    if isinstance(obj, dict):
        out = type(obj)()
        for k, v in obj.items():
            out[k] = contiguous_tensors(v)
        if hasattr(obj, "_metadata"):  # a module state dict's version record
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(contiguous_tensors(v) for v in obj)
    return obj
