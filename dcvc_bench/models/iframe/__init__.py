"""I-frame codecs: the first frame of every GOP, behind one interface (:mod:`.base`).

Families, one module each:

- :class:`OpenCVCodec` (:mod:`.opencv`) — JPEG/WebP through ``cv2.imencode``. Its estimate
  *is* a real encode/decode, so estimated and real bits agree exactly. The offline
  default: no weights needed.
- :class:`CompressAICodec` (:mod:`.compressai`) — a CompressAI zoo architecture with zoo
  weights (from the torch hub cache only, never downloaded here), a local checkpoint, or
  random weights.

A VQ codec (``vqgan``/``rvq``, not in this version) fits the same interface: ``estimate``
returns uniform-prior bits (``n_indices * log2(codebook_size)``) and the decoded image,
``encode`` returns the packed indices, so callers need no change when it arrives.
"""

from __future__ import annotations

import os

import torch

from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.base import (
    RANDOM_WEIGHTS_WARNING,
    IFrameCodec,
    IFrameResult,
    hash_state_dict,
)
from dcvc_bench.models.iframe.compressai import CompressAICodec, compressai_model_names, zoo_weight_file
from dcvc_bench.models.iframe.opencv import OpenCVCodec

I_FRAME_TYPES = ("opencv", "compressai")
PLANNED_I_FRAME_TYPES = ("vqgan", "rvq")  # accepted by the CLI's vocabulary, not built yet


def build_iframe_codec(
    i_frame_type: str,
    *,
    model_name: str = "cheng2020-anchor",
    quality: int = 6,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    opencv_format: str = "jpeg",
    opencv_quality: int = 90,
    device: str | torch.device = "cpu",
) -> IFrameCodec:
    """The I-frame codec for ``--i_frame_type``.

    ``model_name``/``quality``/``pretrained``/``checkpoint``/``device`` apply to
    ``compressai`` (quality = zoo quality index, e.g. 1..6 for cheng2020). The OpenCV
    codec takes its own ``opencv_format`` and ``opencv_quality`` (1..100) because a zoo
    index and a JPEG quality are different scales.
    """
    if i_frame_type == "opencv":
        return OpenCVCodec(fmt=opencv_format, quality=opencv_quality)
    if i_frame_type == "compressai":
        return CompressAICodec(
            model_name=model_name, quality=quality, pretrained=pretrained, checkpoint=checkpoint, device=device
        )
    if i_frame_type in PLANNED_I_FRAME_TYPES:
        raise UserError(f"--i_frame_type {i_frame_type}: not available in this version; use opencv or compressai")
    raise UserError(f"unknown --i_frame_type {i_frame_type!r}; use one of {', '.join(I_FRAME_TYPES)}")


__all__ = [
    "I_FRAME_TYPES",
    "PLANNED_I_FRAME_TYPES",
    "RANDOM_WEIGHTS_WARNING",
    "CompressAICodec",
    "IFrameCodec",
    "IFrameResult",
    "OpenCVCodec",
    "build_iframe_codec",
    "compressai_model_names",
    "hash_state_dict",
    "zoo_weight_file",
]
