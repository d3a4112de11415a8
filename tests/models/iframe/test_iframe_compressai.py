"""I-frame codecs: estimates match real coding, weights load only as data, bad bytes fail cleanly."""

from __future__ import annotations

import logging
import os
import struct

import pytest
import torch

from dcvc_bench.errors import UserError
from dcvc_bench.eval.metrics import psnr
from dcvc_bench.models.iframe import (
    RANDOM_WEIGHTS_WARNING,
    CompressAICodec,
    IFrameCodec,
    OpenCVCodec,
    build_iframe_codec,
    compressai_model_names,
    zoo_weight_file,
)


def natural_frame(h: int, w: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Smooth gradients plus texture: compresses like a photo, not like pure noise."""
    g = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, h).view(1, 1, h, 1)
    xx = torch.linspace(0, 1, w).view(1, 1, 1, w)
    base = torch.cat([yy * xx.expand(1, 1, h, w), (1 - yy) * torch.ones(1, 1, h, w), xx.expand(1, 1, h, w)], 1)
    noise = 0.15 * torch.rand(batch, 3, h, w, generator=g)
    return (0.8 * base + noise).clamp(0, 1)


# --------------------------------------------------------------------------- OpenCV


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
def test_opencv_estimate_is_the_real_coding(fmt, size):
    codec = OpenCVCodec(fmt=fmt, quality=80)
    x = natural_frame(*size, batch=2)
    est = codec.estimate(x)
    assert est.x_hat.shape == x.shape and est.bits.shape == (2,)
    for i in range(2):
        data = codec.encode(x[i : i + 1])
        assert est.bits[i].item() == 8 * len(data)
        assert torch.equal(codec.decode(data, size), est.x_hat[i : i + 1])
    assert est.x_hat.min() >= 0 and est.x_hat.max() <= 1


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_opencv_higher_quality_costs_more_bits_and_gives_higher_psnr(fmt):
    x = natural_frame(64, 96)
    low = OpenCVCodec(fmt, quality=20).estimate(x)
    high = OpenCVCodec(fmt, quality=95).estimate(x)
    assert high.bits.item() > low.bits.item()
    assert psnr(x, high.x_hat).item() > psnr(x, low.x_hat).item()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_opencv_decode_rejects_truncated_garbage_and_wrong_size(fmt):
    codec = OpenCVCodec(fmt, quality=90)
    data = codec.encode(natural_frame(48, 40))
    for bad in (data[: len(data) // 2], data[:-1], b"", b"\x00" * 64, os.urandom(500)):
        with pytest.raises(ValueError):
            codec.decode(bad, (48, 40))
    with pytest.raises(ValueError):
        codec.decode(data, (40, 48))


def test_opencv_settings_are_validated_and_named():
    assert OpenCVCodec("webp", 75).identity() == "opencv-webp-q75"
    with pytest.raises(UserError, match="1..100"):
        OpenCVCodec("jpeg", 0)
    with pytest.raises(UserError, match="jpeg, webp"):
        OpenCVCodec("png", 90)


# --------------------------------------------------------------------------- CompressAI


@pytest.fixture(scope="module")
def hyperprior():
    torch.manual_seed(0)
    return CompressAICodec("bmshj2018-hyperprior", quality=1)


@pytest.fixture(scope="module")
def factorized():
    torch.manual_seed(1)
    return CompressAICodec("bmshj2018-factorized", quality=1)


@pytest.mark.parametrize("codec_fixture", ["hyperprior", "factorized"])
@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
def test_compressai_real_coding_reproduces_the_estimate(codec_fixture, size, request):
    codec: CompressAICodec = request.getfixturevalue(codec_fixture)
    x = natural_frame(*size, batch=2)
    est = codec.estimate(x)
    assert est.x_hat.shape == x.shape and est.bits.shape == (2,)
    assert bool((est.bits > 0).all()) and est.x_hat.min() >= 0 and est.x_hat.max() <= 1
    assert not est.x_hat.requires_grad

    data = codec.encode(x[:1])
    assert data == codec.encode(x[:1])  # deterministic bytes
    decoded = codec.decode(data, size)
    assert decoded.shape == (1, 3, *size)
    assert torch.equal(decoded, codec.decode(data, size))  # deterministic decode
    # Non-autoregressive models: forward (eval rounding) == real decode.
    torch.testing.assert_close(decoded, est.x_hat[:1], atol=1e-5, rtol=0)
    assert len(data) > 0


def test_compressai_random_weights_are_announced(caplog):
    with caplog.at_level(logging.WARNING, logger="dcvc_bench.models.iframe"):
        codec = CompressAICodec("bmshj2018-factorized", quality=1)
    assert RANDOM_WEIGHTS_WARNING in caplog.text
    assert codec.weights == "random"
    assert codec.name == "compressai-bmshj2018-factorized-q1"
    assert codec.identity().startswith("compressai-bmshj2018-factorized-q1:sha256:")


@pytest.mark.parametrize("nesting", [None, "state_dict", "model_state_dict"])
def test_compressai_checkpoint_loads_the_saved_weights(tmp_path, hyperprior, nesting):
    state = hyperprior.model.state_dict()
    path = tmp_path / "iframe.pth"
    torch.save(state if nesting is None else {nesting: state, "epoch": 3}, path)

    torch.manual_seed(123)  # a different random init underneath
    loaded = CompressAICodec("bmshj2018-hyperprior", quality=1, checkpoint=path)
    assert loaded.identity() == hyperprior.identity()
    assert loaded.weights == f"checkpoint:{path}"
    if nesting is not None:
        return  # same identity = same weights; one behavioural check is enough
    x = natural_frame(64, 64)
    assert torch.equal(loaded.estimate(x).x_hat, hyperprior.estimate(x).x_hat)
    assert loaded.decode(hyperprior.encode(x), (64, 64)).shape == (1, 3, 64, 64)


def test_identity_changes_with_the_weights():
    torch.manual_seed(5)
    a = CompressAICodec("bmshj2018-factorized", quality=1)
    torch.manual_seed(6)
    b = CompressAICodec("bmshj2018-factorized", quality=1)
    assert a.identity() != b.identity()


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (os.getcwd, ())


def test_compressai_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _RunsCodeWhenUnpickled()}, path)
    with pytest.raises(UserError, match="weights_only"):
        CompressAICodec("bmshj2018-factorized", quality=1, checkpoint=path)


def test_compressai_checkpoint_that_does_not_fit_is_a_user_error(tmp_path, hyperprior):
    path = tmp_path / "other.pth"
    torch.save(hyperprior.model.state_dict(), path)
    with pytest.raises(UserError, match="does not fit"):
        CompressAICodec("bmshj2018-factorized", quality=1, checkpoint=path)
    with pytest.raises(UserError, match="does not exist"):
        CompressAICodec("bmshj2018-factorized", quality=1, checkpoint=tmp_path / "missing.pth")


def test_pretrained_without_cached_weights_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "bmshj2018-hyperprior-1-7eb97409.pth.tar"
    assert zoo_weight_file("bmshj2018-hyperprior", 1) == expected
    with pytest.raises(UserError) as err:
        CompressAICodec("bmshj2018-hyperprior", quality=1, pretrained=True)
    assert "bmshj2018-hyperprior-1-7eb97409.pth.tar" in str(err.value)
    assert str(expected.parent) in str(err.value)


def test_pretrained_uses_the_cached_zoo_file(tmp_path, monkeypatch, hyperprior):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = zoo_weight_file("bmshj2018-hyperprior", 1)
    path.parent.mkdir(parents=True)
    torch.save(hyperprior.model.state_dict(), path)
    codec = CompressAICodec("bmshj2018-hyperprior", quality=1, pretrained=True)
    assert codec.identity() == hyperprior.identity()
    assert codec.weights == f"zoo:{path.name}"


def test_unknown_model_or_quality_lists_the_valid_choices():
    with pytest.raises(UserError) as err:
        CompressAICodec("cheng2021", quality=1)
    assert "cheng2020-anchor" in str(err.value) and "bmshj2018-hyperprior" in str(err.value)
    assert "cheng2020-anchor" in compressai_model_names()
    with pytest.raises(UserError, match=r"1\.\.6"):
        CompressAICodec("cheng2020-anchor", quality=7)


def test_compressai_decode_rejects_malformed_streams(hyperprior):
    data = hyperprior.encode(natural_frame(64, 64))
    header = 6 + 4 * 2 + 4
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    huge_length = data[:6] + struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF) + data[14:]
    cases = {
        "empty": b"",
        "short header": data[:5],
        "truncated lengths": data[:10],
        "truncated payload": data[:-1],
        "extra byte": data + b"\x00",
        "corrupted payload": bytes(flipped),
        "huge lengths": huge_length,
        "bad version": b"\x07" + data[1:],
        "garbage": os.urandom(len(data)),
    }
    assert len(data) > header
    for name, bad in cases.items():
        with pytest.raises(ValueError):
            hyperprior.decode(bad, (64, 64))
            pytest.fail(name)
    with pytest.raises(ValueError, match="does not match"):
        hyperprior.decode(data, (640, 640))  # latent shape checked against the frame size


# --------------------------------------------------------------------------- factory


def test_factory_builds_each_type_and_refuses_planned_ones():
    opencv = build_iframe_codec("opencv", opencv_format="webp", opencv_quality=60)
    assert isinstance(opencv, IFrameCodec) and opencv.name == "opencv-webp-q60"
    cai = build_iframe_codec("compressai", model_name="bmshj2018-factorized", quality=2)
    assert isinstance(cai, CompressAICodec) and cai.name == "compressai-bmshj2018-factorized-q2"
    for planned in ("vqgan", "rvq"):
        with pytest.raises(UserError, match=f"--i_frame_type {planned}: not available in this version"):
            build_iframe_codec(planned)
    with pytest.raises(UserError, match="opencv, compressai"):
        build_iframe_codec("h265")
