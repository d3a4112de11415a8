"""The I-frame registry: a spec's type -> its family's builder; a type without a family in
this build is refused in one line."""

from __future__ import annotations

import pytest

from dcvc_bench.curriculum.iframe_spec import (
    I_FRAME_TYPES,
    CompressAISpec,
    OpenCVSpec,
    RVQSpec,
    VQGANSpec,
    parse_iframe_spec,
)
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe import FAMILIES, CompressAICodec, IFrameCodec, OpenCVCodec, build_iframe_codec

SAMPLES = {
    "opencv": OpenCVSpec(codec="webp", quality=60),
    "compressai": CompressAISpec(model_name="bmshj2018-factorized", quality=2, pretrained=False),
    "vqgan": VQGANSpec(config="vq.json", checkpoint="vq.pth"),
    "rvq": RVQSpec(config="rvq.json", checkpoint="rvq.pth", layers=4),
}


def test_every_registered_family_has_a_spec_and_every_spec_a_sample():
    assert set(FAMILIES) <= set(I_FRAME_TYPES)
    assert set(SAMPLES) == set(I_FRAME_TYPES)


def test_the_registry_builds_the_family_a_spec_names():
    opencv = build_iframe_codec(SAMPLES["opencv"])
    assert isinstance(opencv, OpenCVCodec) and opencv.name == "opencv-webp-q60"
    cai = build_iframe_codec(SAMPLES["compressai"], device="cpu")
    assert isinstance(cai, CompressAICodec) and cai.name == "compressai-bmshj2018-factorized-q2"
    for codec, spec in ((opencv, SAMPLES["opencv"]), (cai, SAMPLES["compressai"])):
        assert isinstance(codec, IFrameCodec) and codec.spec == spec and codec.name == spec.label


def test_every_type_has_a_family_and_a_missing_one_is_refused_by_the_registry(monkeypatch):
    assert set(FAMILIES) == set(I_FRAME_TYPES)
    monkeypatch.delitem(FAMILIES, "opencv")
    with pytest.raises(UserError, match="I-frame type opencv: not available in this build; available: compressai"):
        build_iframe_codec(parse_iframe_spec({"type": "opencv"}))
