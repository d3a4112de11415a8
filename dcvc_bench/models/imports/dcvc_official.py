"""microsoft/DCVC's released DCVC weights (NeurIPS 2021, ``DCVC-family/DCVC/src/models/DCVC_net.py``:
``model_dcvc_quality_{0..3}_psnr.pth``, a bare state dict) -> dcvc-bench's layout.

Read from that code: the same transforms, names and shapes as dcvc-bench's ``dcvc``
preset, ``means, scales`` split as here. Its entropy models differ:

- ``y`` and ``mv_y``: ``feature_probs_based_sigma``, a **Laplace** with scale ``sigma``
  (no module, no weights; its coder's ``GaussianEncoder`` builds Laplace CDFs for 64
  scales from 0.01 to 16). dcvc-bench builds the model with ``entropy="laplace"``
  (:class:`~dcvc_bench.models.entropy.LaplaceConditional`, the same scale table).
- ``z`` and ``mv_z``: ``BitEstimator`` — four ``Bitparm`` layers, per channel
  ``x·softplus(h) + b`` then ``+ tanh(x)·tanh(a)`` (the last: ``sigmoid``) — which is
  CompressAI's ``EntropyBottleneck`` with hidden widths ``(1, 1, 1)``: ``f{i}.h``, ``f{i}.b``,
  ``f{i}.a`` (shaped 1×C×1×1) become ``matrices.{i-1}``, ``biases.{i-1}``, ``factors.{i-1}``
  (C×1×1). It codes ``round(z)`` (no median), so the bottleneck's median is pinned at 0
  (``round(z − 0) + 0``); its other quantiles, which only bound the CDF tables, are found
  by CompressAI's bisection for tail mass 1e-9.
- its GDN keeps no buffers: CompressAI's 60 are added.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dcvc_bench.models.imports.common import (
    Conversion,
    add_entropy_buffers,
    add_gdn_buffers,
    decoder_input_note,
)

NAME = "dcvc-official"
LABEL = "microsoft/DCVC"
OPTIONS = {"entropy": "laplace", "hyper_filters": (1, 1, 1)}
BIT_ESTIMATORS = ("bitEstimator_z", "bitEstimator_z_mv")
#: Quantile search range: wide enough for any trained prior, small enough for the CDF tables.
_SEARCH_RADIUS = 1000.0


def _bottleneck_quantiles(weights: dict[str, Tensor], module: str, tail_mass: float = 1e-9) -> Tensor:
    """[C, 1, 3] quantiles (lower, 0, upper) of the mapped bottleneck ``module``: the points
    where its cumulative logits reach ∓log(2/tail_mass − 1), found as CompressAI's
    ``_update_quantiles`` finds them, and the median fixed at 0."""
    from compressai.entropy_models import EntropyBottleneck

    channels = weights[f"{module}.matrices.0"].shape[0]
    bottleneck = EntropyBottleneck(channels, filters=OPTIONS["hyper_filters"], tail_mass=tail_mass)
    own = {k: v for k, v in weights.items() if k.startswith(module + ".")}
    with torch.no_grad():
        for name, param in bottleneck.named_parameters():
            if f"{module}.{name}" in own:
                param.copy_(own[f"{module}.{name}"])
        target = float(bottleneck.target[2])
        shape = (channels, 1, 1)
        low = torch.full(shape, -_SEARCH_RADIUS)
        high = torch.full(shape, _SEARCH_RADIUS)

        def logits(x: Tensor) -> Tensor:
            return bottleneck._logits_cumulative(x, stop_gradient=True)

        lower = bottleneck._search_target(logits, -target, low, high)[:, :, 0].clamp(max=0.0)
        upper = bottleneck._search_target(logits, target, low, high)[:, :, 0].clamp(min=0.0)
    return torch.stack((lower, torch.zeros_like(lower), upper), dim=-1)


def convert(weights: dict[str, Tensor], reference: dict[str, Tensor]) -> Conversion:
    """``weights`` (prefixes stripped) in dcvc-bench's layout; ``reference`` is a fresh
    model's state dict (built with :data:`OPTIONS`)."""
    conv = Conversion(dict(weights), options=dict(OPTIONS))
    mapped = 0
    for module in BIT_ESTIMATORS:
        for i in range(1, 5):
            for leaf, target in (("h", "matrices"), ("b", "biases"), ("a", "factors")):
                key = f"{module}.f{i}.{leaf}"
                if key in conv.weights:
                    value = conv.weights.pop(key)
                    conv.weights[f"{module}.{target}.{i - 1}"] = value.reshape(-1, 1, 1).clone()
                    mapped += 1
    if mapped:
        conv.changes.append(f"mapped {mapped} BitEstimator parameters (f1..f4 .h/.b/.a) of bitEstimator_z and "
                            "bitEstimator_z_mv onto CompressAI EntropyBottlenecks with hidden widths (1, 1, 1)")
    ready = all(f"{m}.matrices.0" in conv.weights for m in BIT_ESTIMATORS)
    if ready:
        for module in BIT_ESTIMATORS:
            conv.weights[f"{module}.quantiles"] = _bottleneck_quantiles(conv.weights, module)
        conv.changes.append("set the bottlenecks' quantiles: median 0 (microsoft/DCVC codes round(z)), lower/upper "
                            "by CompressAI's bisection for tail mass 1e-9 (they bound the CDF tables only)")
    conv.changes.append("y and mv_y get a Laplace conditional (model option entropy = \"laplace\", the scale "
                        "table of microsoft/DCVC's GaussianEncoder: 64 scales from 0.01 to 16)")
    add_gdn_buffers(conv, reference)
    add_entropy_buffers(conv, reference)
    conv.notes.append(decoder_input_note(LABEL))
    conv.notes.append("rate estimates: microsoft/DCVC's forward counts -log2(p + 1e-5) clamped to [0, 50] bits with "
                      "Laplace scales bounded below by 1e-5; dcvc-bench counts -log2(max(p, 1e-9)) with scales bounded "
                      "by 0.01, the smallest scale either coder has a CDF for: estimates differ slightly, the coded "
                      "symbols do not")
    conv.notes.append("streams: dcvc-bench codes with its own container and CDF tables (tail mass 1e-9 instead of "
                      "microsoft/DCVC's 0.9999 range), so it neither reads nor writes microsoft/DCVC's .bin files")
    return conv
