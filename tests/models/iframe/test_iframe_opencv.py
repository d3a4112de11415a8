"""The OpenCV I-frame family: its estimate is the real coding; bad bytes fail cleanly; no
training, quality is its rate knob."""

from __future__ import annotations

import os

import pytest
import torch
from iframe_helpers import natural_frame

from dcvc_bench.curriculum.iframe_spec import OpenCVSpec, parse_iframe_spec
from dcvc_bench.errors import UserError
from dcvc_bench.eval.metrics import psnr
from dcvc_bench.models.iframe import OpenCVCodec, build_iframe_codec


def opencv(fmt: str = "jpeg", quality: int = 90) -> OpenCVCodec:
    return OpenCVCodec(OpenCVSpec(codec=fmt, quality=quality))


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
def test_opencv_estimate_is_the_real_coding(fmt, size):
    codec = opencv(fmt, quality=80)
    x = natural_frame(*size, batch=2)
    est = codec.estimate(x)
    assert est.x_hat.shape == x.shape and est.bits.shape == (2,)
    for i in range(2):
        data = codec.encode(x[i : i + 1])
        assert est.bits[i].item() == 8 * len(data)
        assert torch.equal(codec.decode(data, size), est.x_hat[i : i + 1])
    assert est.x_hat.min() >= 0 and est.x_hat.max() <= 1
    assert codec.exact_estimate and not codec.random_weights


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_opencv_higher_quality_costs_more_bits_and_gives_higher_psnr(fmt):
    x = natural_frame(64, 96)
    low = opencv(fmt, quality=20).estimate(x)
    high = opencv(fmt, quality=95).estimate(x)
    assert high.bits.item() > low.bits.item()
    assert psnr(x, high.x_hat).item() > psnr(x, low.x_hat).item()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_opencv_decode_rejects_truncated_garbage_and_wrong_size(fmt):
    codec = opencv(fmt, quality=90)
    data = codec.encode(natural_frame(48, 40))
    for bad in (data[: len(data) // 2], data[:-1], b"", b"\x00" * 64, os.urandom(500)):
        with pytest.raises(ValueError):
            codec.decode(bad, (48, 40))
    with pytest.raises(ValueError):
        codec.decode(data, (40, 48))


def test_opencv_settings_are_validated_and_named():
    assert opencv("webp", 75).identity() == "opencv-webp-q75"
    assert build_iframe_codec(OpenCVSpec()).name == "opencv-jpeg-q90"  # the family's defaults
    with pytest.raises(UserError, match=r"i_frame\.quality: must be >= 1, got 0"):
        parse_iframe_spec({"type": "opencv", "quality": 0})
    with pytest.raises(UserError, match="'jpeg' or 'webp', got 'png'"):
        parse_iframe_spec({"type": "opencv", "codec": "png"})


def test_opencv_has_nothing_to_train():
    codec = opencv()
    assert codec.trainable() is None
    with pytest.raises(NotImplementedError, match="opencv"):
        codec.training_forward(natural_frame(32, 32))


def test_opencv_quality_is_its_rate_knob():
    codec = opencv("jpeg", 90)
    assert codec.rate_knob == "quality"
    low = codec.with_rate(30)
    assert isinstance(low, OpenCVCodec) and low.name == "opencv-jpeg-q30" and low.spec.quality == 30
    assert codec.spec.quality == 90  # the original is unchanged
    x = natural_frame(64, 64)
    assert low.estimate(x).bits.item() < codec.estimate(x).bits.item()
    with pytest.raises(UserError, match="quality: must be <= 100, got 101"):
        codec.with_rate(101)
    assert codec.rates(x) == {}
