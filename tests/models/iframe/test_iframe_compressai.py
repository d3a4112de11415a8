"""The CompressAI I-frame family: estimates match real coding, weights load only as data,
bad bytes fail cleanly, and its zoo model trains through ``training_forward``."""

from __future__ import annotations

import logging
import os
import struct

import pytest
import torch
from iframe_helpers import natural_frame

from dcvc_bench.curriculum.iframe_spec import CompressAISpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe import (
    RANDOM_WEIGHTS_WARNING,
    CompressAICodec,
    compressai_model_names,
    zoo_weight_file,
)


def cai(model_name: str, quality: int, *, pretrained: bool = False, checkpoint=None) -> CompressAICodec:
    spec = CompressAISpec(model_name=model_name, quality=quality, pretrained=pretrained,
                          checkpoint=str(checkpoint) if checkpoint is not None else None)
    return CompressAICodec(spec)


# --------------------------------------------------------------------------- CompressAI


@pytest.fixture(scope="module")
def hyperprior():
    torch.manual_seed(0)
    return cai("bmshj2018-hyperprior", 1)


@pytest.fixture(scope="module")
def factorized():
    torch.manual_seed(1)
    return cai("bmshj2018-factorized", 1)


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
        codec = cai("bmshj2018-factorized", 1)
    assert RANDOM_WEIGHTS_WARNING in caplog.text
    assert codec.weights == "random" and codec.random_weights
    assert codec.name == "compressai-bmshj2018-factorized-q1"
    assert codec.identity().startswith("compressai-bmshj2018-factorized-q1:sha256:")


@pytest.mark.parametrize("nesting", [None, "state_dict", "model_state_dict"])
def test_compressai_checkpoint_loads_the_saved_weights(tmp_path, hyperprior, nesting):
    state = hyperprior.model.state_dict()
    path = tmp_path / "iframe.pth"
    torch.save(state if nesting is None else {nesting: state, "epoch": 3}, path)

    torch.manual_seed(123)  # a different random init underneath
    loaded = cai("bmshj2018-hyperprior", 1, checkpoint=path)
    assert loaded.identity() == hyperprior.identity()
    assert loaded.weights == f"checkpoint:{path}"
    if nesting is not None:
        return  # same identity = same weights; one behavioural check is enough
    x = natural_frame(64, 64)
    assert torch.equal(loaded.estimate(x).x_hat, hyperprior.estimate(x).x_hat)
    assert loaded.decode(hyperprior.encode(x), (64, 64)).shape == (1, 3, 64, 64)


def test_identity_changes_with_the_weights():
    torch.manual_seed(5)
    a = cai("bmshj2018-factorized", 1)
    torch.manual_seed(6)
    b = cai("bmshj2018-factorized", 1)
    assert a.identity() != b.identity()


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (os.getcwd, ())


def test_compressai_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _RunsCodeWhenUnpickled()}, path)
    with pytest.raises(UserError, match="weights_only"):
        cai("bmshj2018-factorized", 1, checkpoint=path)


def test_compressai_checkpoint_that_does_not_fit_is_a_user_error(tmp_path, hyperprior):
    path = tmp_path / "other.pth"
    torch.save(hyperprior.model.state_dict(), path)
    with pytest.raises(UserError, match="does not fit"):
        cai("bmshj2018-factorized", 1, checkpoint=path)
    with pytest.raises(UserError, match="does not exist"):
        cai("bmshj2018-factorized", 1, checkpoint=tmp_path / "missing.pth")


def test_pretrained_without_cached_weights_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "bmshj2018-hyperprior-1-7eb97409.pth.tar"
    assert zoo_weight_file("bmshj2018-hyperprior", 1) == expected
    with pytest.raises(UserError) as err:
        cai("bmshj2018-hyperprior", 1, pretrained=True)
    assert "bmshj2018-hyperprior-1-7eb97409.pth.tar" in str(err.value)
    assert str(expected.parent) in str(err.value)


def test_pretrained_uses_the_cached_zoo_file(tmp_path, monkeypatch, hyperprior):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = zoo_weight_file("bmshj2018-hyperprior", 1)
    path.parent.mkdir(parents=True)
    torch.save(hyperprior.model.state_dict(), path)
    codec = cai("bmshj2018-hyperprior", 1, pretrained=True)
    assert codec.identity() == hyperprior.identity()
    assert codec.weights == f"zoo:{path.name}"


def test_unknown_model_or_quality_lists_the_valid_choices():
    with pytest.raises(UserError) as err:
        cai("cheng2021", 1)
    assert "cheng2020-anchor" in str(err.value) and "bmshj2018-hyperprior" in str(err.value)
    assert "cheng2020-anchor" in compressai_model_names()
    with pytest.raises(UserError, match=r"quality 7 out of range for cheng2020-anchor: use 1\.\.6"):
        cai("cheng2020-anchor", 7)


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


# --------------------------------------------------------------------------- training and rate


def test_compressai_trains_its_zoo_model_through_training_forward():
    torch.manual_seed(2)
    codec = cai("bmshj2018-factorized", 1)
    module = codec.trainable()
    assert module is codec.model
    module.train().requires_grad_(True)
    x = natural_frame(40, 56, batch=2)  # not a multiple of 64: padded, then cropped back
    out = codec.training_forward(x)
    assert out["x_hat"].shape == x.shape and out["bits"].shape == (2,) and out["aux_loss"].dim() == 0
    assert bool((out["bits"] > 0).all()) and out["bits"].requires_grad
    loss = out["bits"].mean() + 100.0 * torch.nn.functional.mse_loss(out["x_hat"], x)
    loss.backward()
    grads = [p.grad for name, p in module.named_parameters() if not name.endswith("quantiles")]
    assert all(g is not None for g in grads) and any(bool(g.abs().sum() > 0) for g in grads)
    out["aux_loss"].backward()
    assert module.entropy_bottleneck.quantiles.grad is not None
    # The estimate of the codec in eval mode counts the same likelihoods, without the noise.
    module.eval()
    with torch.no_grad():
        again = codec.training_forward(x)["bits"]
    torch.testing.assert_close(again, codec.estimate(x).bits, rtol=1e-5, atol=1e-3)


def test_compressai_has_no_rate_knob(factorized):
    assert factorized.rate_knob is None
    with pytest.raises(UserError, match="no rate setting"):
        factorized.with_rate(2)
