"""What the importers share: the foreign state dict normalised, the steps every source
layout needs (CompressAI's GDN buffers, entropy-model bookkeeping), and a record of what
was changed.

Both source layouts are the same DCVC network as :class:`~dcvc_bench.models.video_net.DCVC`
(``dcvc`` preset: identical submodule names and parameter shapes), with a GDN of their
own that computes CompressAI's GDN from the same ``beta``/``gamma`` parameters
(``beta_min`` 1e-6, ``reparam_offset`` 2^-18, the same bounds and pedestal) but keeps its
constants as attributes, where CompressAI's keeps four buffers per layer
(``{beta,gamma}_reparam.pedestal``, ``{beta,gamma}_reparam.lower_bound.bound``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dcvc_bench.models.video_net import DCVC

#: GDN buffers CompressAI's GDN has and DCVC's own GDN lacks (4 per layer, 15 layers).
GDN_BUFFERS = ("beta_reparam.pedestal", "beta_reparam.lower_bound.bound",
               "gamma_reparam.pedestal", "gamma_reparam.lower_bound.bound")
#: Entropy-model bookkeeping buffers: CDF tables (rebuilt by ``update(force=True)`` before
#: any coding), scale tables and bounds. Filled from a fresh model when the source lacks them.
ENTROPY_BUFFERS = ("_offset", "_quantized_cdf", "_cdf_length", "target", "likelihood_lower_bound.bound",
                   "scale_table", "scale_bound", "lower_bound_scale.bound")
ENTROPY_MODULES = ("bitEstimator_z", "bitEstimator_z_mv", "gaussian_conditional", "gaussian_conditional_mv")
#: The last 1×1 conv of each entropy-parameters net: its output is (means, scales) in dcvc-bench.
ENTROPY_PARAMETER_HEADS = ("entropy_parameters.4", "entropy_parameters_mv.4")


@dataclass
class Conversion:
    """A state dict on its way to dcvc-bench's layout, the DCVC options it needs and, for
    the report, every change made and every note on what cannot be kept."""

    weights: dict[str, Tensor]
    options: dict = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def strip_prefixes(weights: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Drop a DDP (``module.``) or torch.compile (``_orig_mod.``) prefix that all keys share."""
    changes = []
    for prefix in ("module.", "_orig_mod."):
        if weights and all(k.startswith(prefix) for k in weights):
            weights = {k[len(prefix):]: v for k, v in weights.items()}
            changes.append(f"dropped the '{prefix}' prefix of every key")
    return weights, changes


def reference_model(options: dict) -> DCVC:
    """A fresh full-size DCVC with ``options``: the target layout and its buffers' values."""
    return DCVC("dcvc", **options)


def add_gdn_buffers(conv: Conversion, reference: dict[str, Tensor]) -> None:
    """Add the GDN buffers the source lacks, with CompressAI's values (a fresh GDN's)."""
    added = [k for k in reference if k.endswith(GDN_BUFFERS) and k not in conv.weights]
    for key in added:
        conv.weights[key] = reference[key].clone()
    if added:
        layers = len({k[:-len(suffix) - 1] for k in added for suffix in GDN_BUFFERS if k.endswith(suffix)})
        conv.changes.append(f"added {len(added)} GDN buffers ({layers} layers × {{beta,gamma}}_reparam."
                            "{pedestal,lower_bound.bound}) with CompressAI's values (pedestal 2^-36; "
                            "bounds sqrt(1e-6 + 2^-36) and 2^-18, the constants the source's GDN uses)")


def add_entropy_buffers(conv: Conversion, reference: dict[str, Tensor]) -> None:
    """Add entropy-model bookkeeping buffers the source lacks (from a fresh model)."""
    added = [k for k in reference if k.startswith(tuple(m + "." for m in ENTROPY_MODULES))
             and k.endswith(ENTROPY_BUFFERS) and k not in conv.weights]
    for key in added:
        conv.weights[key] = reference[key].clone()
    if added:
        conv.changes.append(f"added {len(added)} entropy-model buffers (CDF tables, scale tables, bounds) "
                            "from a fresh model; CDF tables are rebuilt from the weights before coding")


def rename_old_bottleneck_keys(conv: Conversion) -> None:
    """CompressAI < 1.2 named EntropyBottleneck parameters ``_matrix{i}``/``_bias{i}``/``_factor{i}``."""
    renamed = 0
    for key in list(conv.weights):
        module, _, leaf = key.rpartition(".")
        for old, new in (("_matrix", "matrices"), ("_bias", "biases"), ("_factor", "factors")):
            if module in ENTROPY_MODULES and leaf.startswith(old) and leaf[len(old):].isdigit():
                conv.weights[f"{module}.{new}.{leaf[len(old):]}"] = conv.weights.pop(key)
                renamed += 1
    if renamed:
        conv.changes.append(f"renamed {renamed} EntropyBottleneck parameters from CompressAI < 1.2's "
                            "_matrix{i}/_bias{i}/_factor{i} to matrices.{i}/biases.{i}/factors.{i}")


def swap_halves(tensor: Tensor) -> Tensor:
    """The two halves of dim 0 exchanged: (scales, means) -> (means, scales)."""
    first, second = tensor.chunk(2, dim=0)
    return torch.cat((second, first), dim=0).contiguous()


def check_layout(weights: dict[str, Tensor], reference: dict[str, Tensor], source: str) -> str | None:
    """None when ``weights`` has exactly the reference's keys and shapes, else one line saying
    what differs (the first few keys), for the user's error."""
    missing = [k for k in reference if k not in weights]
    extra = [k for k in weights if k not in reference]
    shapes = [k for k in reference if k in weights and tuple(weights[k].shape) != tuple(reference[k].shape)]
    if not (missing or extra or shapes):
        return None
    parts = []
    for what, keys in (("missing", missing), ("unexpected", extra), ("of another shape", shapes)):
        if keys:
            parts.append(f"{len(keys)} keys {what} ({', '.join(keys[:3])}{', …' if len(keys) > 3 else ''})")
    return f"it is not a DCVC state dict in the {source} layout: " + "; ".join(parts)


def decoder_input_note(source: str) -> str:
    """What no import can carry over: which quantised latent the source's forward decodes."""
    return (f"{source}'s forward() decodes round(y), the context model's input; dcvc-bench's forward and "
            "real coder decode round(y - mu) + mu, as the source's own compress()/decompress() (and any "
            "real decoder) do. The two differ by the fractional part of mu (less than one step) and coincide "
            "only where mu is an integer, so the weights cannot make them equal: kept exactly are every "
            "layer's output for the same input, the motion rates (mv_z, mv_y), the hyper-latents' decoding, "
            "and the source's compress/decompress reconstruction (for sides that are multiples of 64: other "
            "sizes are padded by replication to 64 here); not kept are the numbers of the source's forward() "
            "evaluation after motion decoding (its reconstruction, PSNR, y and z rates)")
