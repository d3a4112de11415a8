"""Which residual layers of an RVQ-VQGAN a step trains, and which it keeps frozen.

- :func:`trained_depth`: for the duration of a pass, the ``ResidualVQ`` holds only its
  first L layers (``--rvq_train_layers``), with quantize dropout over depths
  ``cutoff+1..L`` when it is on. Layers L..N-1 are not run, so their codebooks neither
  move nor get initialised, and the library's own forward (dropout seed synchronised
  across processes, commitment losses, EMA updates) does the rest.
- :func:`freeze`: ``--rvq_frozen_layers F``: the encoder, ``quant_conv`` and codebooks
  0..F-1 get ``requires_grad`` False, and :func:`train_mode` keeps those modules in eval
  mode, where vector-quantize-pytorch neither updates a codebook's EMA nor expires its
  codes (both happen only in train mode) and the encoder's dropout is off. So what a
  finished progressive step trained stays bit-identical.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from dcvc_bench.models.vqgan import VQGAN


def quantizer_layers(net: VQGAN) -> list[nn.Module]:
    """The VectorQuantize modules, one per codebook (one for a VQGAN)."""
    return list(net.quantize.layers) if net.cfg.residual else [net.quantize]


@contextmanager
def trained_depth(net: VQGAN, layers: int, dropout: bool) -> Iterator[None]:
    """Run ``net``'s residual quantiser with its first ``layers`` layers only."""
    if not net.cfg.residual:
        yield
        return
    rvq = net.quantize
    saved = (rvq.layers, rvq.num_quantizers, rvq.quantize_dropout, rvq.quantize_dropout_cutoff_index)
    rvq.layers = nn.ModuleList(list(saved[0])[:layers])
    rvq.num_quantizers = layers
    rvq.quantize_dropout = dropout and layers > 1
    rvq.quantize_dropout_cutoff_index = min(saved[3], layers - 1)
    try:
        yield
    finally:
        rvq.layers, rvq.num_quantizers, rvq.quantize_dropout, rvq.quantize_dropout_cutoff_index = saved


def frozen_modules(net: VQGAN, frozen_layers: int) -> list[nn.Module]:
    if frozen_layers <= 0:
        return []
    return [net.encoder, net.quant_conv, *quantizer_layers(net)[:frozen_layers]]


def freeze(net: VQGAN, frozen_layers: int) -> None:
    for module in frozen_modules(net, frozen_layers):
        for p in module.parameters():
            p.requires_grad_(False)


def train_mode(net: VQGAN, frozen_layers: int) -> None:
    """Train mode, except the frozen modules (eval: no EMA update, no code expiry)."""
    net.train()
    for module in frozen_modules(net, frozen_layers):
        module.eval()


def initialised_layers(net: VQGAN) -> list[bool]:
    return [bool(vq._codebook.initted) for vq in quantizer_layers(net)]


__all__ = ["freeze", "frozen_modules", "initialised_layers", "quantizer_layers", "train_mode", "trained_depth"]
