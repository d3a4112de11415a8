"""OpenDCVCs-family checkpoints (``DCVC_net`` of ``src/models/DCVC_net_compressai.py``, the
network the seed protocol's ``train_dcvc.py`` trains) -> dcvc-bench's layout.

Measured against that code: the same submodules, names and parameter shapes as dcvc-bench's
``dcvc`` preset, CompressAI's ``EntropyBottleneck`` for z and ``GaussianConditional`` for y.
Three differences:

- its ``entropy_parameters`` / ``entropy_parameters_mv`` outputs split as ``scales, means``
  (dcvc-bench and microsoft/DCVC: ``means, scales``): the output channels of the last
  1×1 conv (weight rows and bias) are swapped, so dcvc-bench's split yields the same values;
- its GDN keeps no buffers: CompressAI's 60 are added (:func:`~.common.add_gdn_buffers`);
- its forward decodes ``round(y)`` (see :func:`~.common.decoder_input_note`).

A file is either a training checkpoint (``model_state_dict`` and the seed's keys) or a bare
state dict (its ``*_final.pth``, ``*_global_best_state_dict.pth``).
"""

from __future__ import annotations

from torch import Tensor

from dcvc_bench.models.imports.common import (
    ENTROPY_PARAMETER_HEADS,
    Conversion,
    add_entropy_buffers,
    add_gdn_buffers,
    decoder_input_note,
    rename_old_bottleneck_keys,
    swap_halves,
)

NAME = "opendcvcs"
LABEL = "OpenDCVCs"


def convert(weights: dict[str, Tensor], reference: dict[str, Tensor]) -> Conversion:
    """``weights`` (prefixes stripped) in dcvc-bench's layout; ``reference`` is a fresh
    model's state dict."""
    conv = Conversion(dict(weights))
    rename_old_bottleneck_keys(conv)
    swapped = []
    for head in ENTROPY_PARAMETER_HEADS:
        for leaf in ("weight", "bias"):
            key = f"{head}.{leaf}"
            if key in conv.weights:
                conv.weights[key] = swap_halves(conv.weights[key])
                swapped.append(key)
    if swapped:
        conv.changes.append(f"swapped the output halves of {', '.join(swapped)}: OpenDCVCs splits "
                            "(scales, means), dcvc-bench splits (means, scales)")
    add_gdn_buffers(conv, reference)
    add_entropy_buffers(conv, reference)
    conv.notes.append(decoder_input_note(LABEL))
    conv.notes.append("training noise: OpenDCVCs feeds one noisy y to both the context model and the decoder, "
                      "dcvc-bench's GaussianConditional draws its own noise for the decoder (same distribution); "
                      "this only matters when training further from the imported weights")
    return conv
