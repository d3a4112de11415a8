"""The control plane keeps static copies of two compute-plane facts (it must not import
torch to know them); these tests keep the copies true to the installed code."""

from __future__ import annotations

from dcvc_bench.curriculum.bounds import MAX_SIDE
from dcvc_bench.curriculum.zoo import COMPRESSAI_QUALITIES


def test_the_zoo_table_is_what_the_trainer_accepts():
    import torch  # noqa: F401  (compressai needs torch imported first)

    from dcvc_bench.models.iframe.compressai import _compressai_tables, compressai_model_names

    qualities, _ = _compressai_tables()  # built from compressai.zoo.image_models and its cfgs
    assert sorted(COMPRESSAI_QUALITIES) == compressai_model_names()
    assert {name: list(q) for name, q in COMPRESSAI_QUALITIES.items()} == qualities


def test_the_largest_clip_side_is_the_largest_codable_frame():
    from dcvc_bench.codec.bitstream import MAX_SIDE as CODEC_MAX_SIDE

    assert MAX_SIDE == CODEC_MAX_SIDE
