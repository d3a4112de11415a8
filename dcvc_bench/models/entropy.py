"""The conditional entropy models a DCVC latent can be coded with: CompressAI's Gaussian
(dcvc-bench's own training, OpenDCVCs) or a Laplace on the same rANS machinery (the
released microsoft/DCVC weights, whose ``feature_probs_based_sigma`` is a Laplace).

:class:`LaplaceConditional` is CompressAI's :class:`~compressai.entropy_models.GaussianConditional`
with the Laplace CDF in place of the Gaussian one: the same scale table of CDFs (one
quantised CDF per table scale, ``pmf_center = ceil(scale · multiplier)`` for the tail mass),
the same ``build_indexes``, ``quantize`` and likelihood bound, so the real coder
(:mod:`dcvc_bench.codec.ar`) codes it unchanged. Its scale table is part of the model (the
one microsoft/DCVC's ``GaussianEncoder`` uses: 64 scales from 0.01 to 16, log-spaced), so
:meth:`update_scale_table` keeps it whatever table ``CompressionModel.update`` offers.

What a model uses is recorded in a checkpoint's ``model_options`` (:func:`model_options_of`),
so evaluation, ``encode`` and ``decode`` rebuild the same entropy models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()  # compressai imports torchvision; see dcvc_bench/compat.py

from compressai.entropy_models import GaussianConditional  # noqa: E402

from dcvc_bench.errors import UserError  # noqa: E402

__all__ = ["DEFAULT_HYPER_FILTERS", "ENTROPY_MODELS", "LAPLACE_SCALE_TABLE", "LaplaceConditional",
           "build_conditional", "model_options_of"]

#: The conditional models of the latents y and mv_y.
ENTROPY_MODELS = ("gaussian", "laplace")
#: CompressAI's EntropyBottleneck default: the factorized prior of the hyper-latents.
DEFAULT_HYPER_FILTERS = (3, 3, 3, 3)
#: microsoft/DCVC's GaussianEncoder.get_scale_table(0.01, 16, 64), the scales its Laplace
#: CDF tables are built for.
LAPLACE_SCALE_TABLE = (0.01, 16.0, 64)


def _laplace_table() -> list[float]:
    low, high, levels = LAPLACE_SCALE_TABLE
    return torch.exp(torch.linspace(math.log(low), math.log(high), levels)).tolist()


class LaplaceConditional(GaussianConditional):
    """A Laplace conditional (scale ``b``: density ``exp(-|x-μ|/b) / 2b``) on CompressAI's
    scale-table rANS coding. Scales are bounded below by the table's first entry (the
    smallest scale a CDF exists for), as CompressAI bounds Gaussian scales by its table's."""

    def __init__(self, scale_table: list[float] | None = None, tail_mass: float = 1e-9):
        table = list(scale_table) if scale_table is not None else _laplace_table()
        super().__init__(table, scale_bound=table[0], tail_mass=tail_mass)

    def _standardized_cumulative(self, inputs: Tensor) -> Tensor:
        # Laplace CDF with unit scale, written so neither branch overflows.
        half_tail = 0.5 * torch.exp(-inputs.abs())
        return torch.where(inputs < 0, half_tail, 1.0 - half_tail)

    @staticmethod
    def _standardized_quantile(quantile: float) -> float:
        # Only called with a lower-tail quantile (tail_mass / 2 < 0.5).
        return math.log(2.0 * quantile)

    def update_scale_table(self, scale_table, force: bool = False) -> bool:
        """Build the CDF tables for this model's own scale table (the argument, the
        Gaussian default that ``CompressionModel.update`` passes, is ignored)."""
        if self._offset.numel() > 0 and not force:
            return False
        self.update()
        return True


def build_conditional(entropy: str) -> GaussianConditional:
    """The conditional entropy model of one latent for a model option ``entropy``."""
    if entropy == "gaussian":
        return GaussianConditional(None)
    if entropy == "laplace":
        return LaplaceConditional()
    raise UserError(f"unknown entropy model {entropy!r}; valid: {', '.join(ENTROPY_MODELS)}")


def model_options_of(state: Mapping[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """The DCVC constructor options a checkpoint records in ``model_options`` (absent in
    trainer-written checkpoints: the defaults, Gaussian and CompressAI's bottleneck)."""
    options = state.get("model_options") or {}
    if not isinstance(options, Mapping):
        raise UserError(f"{where}: 'model_options' must be a table, got {type(options).__name__}")
    unknown = sorted(set(options) - {"entropy", "hyper_filters"})
    if unknown:
        raise UserError(f"{where}: unknown model options {unknown}; this dcvc-bench knows entropy, hyper_filters")
    out: dict[str, Any] = {}
    if "entropy" in options:
        if options["entropy"] not in ENTROPY_MODELS:
            raise UserError(f"{where}: model option entropy={options['entropy']!r}; valid: {', '.join(ENTROPY_MODELS)}")
        out["entropy"] = str(options["entropy"])
    if "hyper_filters" in options:
        filters = options["hyper_filters"]
        if not isinstance(filters, (list, tuple)) or not filters or not all(
                isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters):
            raise UserError(f"{where}: model option hyper_filters must be positive integers, got {filters!r}")
        out["hyper_filters"] = tuple(filters)
    return out
