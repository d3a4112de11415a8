"""I-frame codecs: the first frame of every GOP, behind one interface (:mod:`.base`), one
module per family, and the registry that maps a spec's ``type`` to its family.

A codec is described by its typed spec (:mod:`dcvc_bench.curriculum.iframe_spec`) and
built with :func:`build_iframe_codec`, like CompressAI's zoo maps names to architectures.
Families:

- ``opencv`` (:mod:`.opencv`) — JPEG/WebP through ``cv2.imencode``. Its estimate *is* a
  real encode/decode, so estimated and real bits agree exactly. The offline default: no
  weights needed.
- ``compressai`` (:mod:`.compressai`) — a CompressAI zoo architecture with zoo weights
  (from the torch hub cache only, never downloaded here), a local checkpoint, or random
  weights.
- ``vqgan`` / ``rvq`` (:mod:`.vq`) — a VQGAN (one codebook) or RVQ-VQGAN (the first
  ``layers`` of N residual codebooks) from its JSON config and checkpoint; indices coded
  with CompressAI's rANS against per-layer CDFs stored in the checkpoint.

A family plugs in by being listed in :data:`FAMILIES`: nothing in train/, eval/, codec/ or
the CLI names a type. A spec whose family is not listed is refused in one line.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from dcvc_bench.curriculum.iframe_spec import IFrameSpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe import compressai, opencv, vq
from dcvc_bench.models.iframe.base import (
    RANDOM_WEIGHTS_WARNING,
    IFrameCodec,
    IFrameResult,
    hash_state_dict,
)
from dcvc_bench.models.iframe.compressai import CompressAICodec, compressai_model_names, zoo_weight_file
from dcvc_bench.models.iframe.opencv import OpenCVCodec

Builder = Callable[[IFrameSpec, str], IFrameCodec]

FAMILIES: dict[str, Builder] = {
    "opencv": opencv.build,
    "compressai": compressai.build,
    "vqgan": vq.build_vqgan,
    "rvq": vq.build_rvq,
}
"""type -> builder(spec, device): the I-frame families this build can run."""


WEIGHTS_FILE_TYPES: tuple[Callable[[str], Optional[str]], ...] = (vq.peek_vq_family,)
"""Functions path -> the I-frame type whose own weights file it is (or None)."""

UNTRAINED: dict[str, Callable[..., IFrameCodec]] = {
    "vqgan": vq.VQGANCodec.untrained,
    "rvq": vq.RVQCodec.untrained,
}
"""type -> untrained(config, layers=None, device="cpu"): a network with initialised
codebooks but no training, for timing only (``bench iframe`` without a checkpoint)."""


def iframe_weights_type(path: str | os.PathLike[str]) -> Optional[str]:
    """The I-frame type whose own weights file ``path`` is (e.g. ``rvq`` for an RVQ-VQGAN
    checkpoint), or None (a training checkpoint, another file, unreadable). Never raises;
    reads no weights."""
    for peek in WEIGHTS_FILE_TYPES:
        found = peek(str(path))
        if found is not None:
            return found
    return None


def build_iframe_codec(spec: IFrameSpec, device: str = "cpu") -> IFrameCodec:
    """The I-frame codec a spec describes, on ``device`` (where the family computes)."""
    builder = FAMILIES.get(spec.type)
    if builder is None:
        raise UserError(f"I-frame type {spec.type}: not available in this build; "
                        f"available: {', '.join(sorted(FAMILIES))}")
    return builder(spec, str(device))


__all__ = [
    "FAMILIES",
    "UNTRAINED",
    "RANDOM_WEIGHTS_WARNING",
    "CompressAICodec",
    "IFrameCodec",
    "IFrameResult",
    "OpenCVCodec",
    "build_iframe_codec",
    "compressai_model_names",
    "hash_state_dict",
    "iframe_weights_type",
    "zoo_weight_file",
]
