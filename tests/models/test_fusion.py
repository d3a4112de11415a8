"""Inference fusion (models/fusion.py) computes what the unfused network computes, keeps
the checkpoint the same, runs oneDNN's fused kernel only where it applies, and falls back
to conv-then-activation everywhere else, so a fused network still trains. Real DCVC
networks, no timing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dcvc_bench.models.fastpath import prepare_input, prepare_model
from dcvc_bench.models.fusion import FusedConv2d, fuse_for_inference, fused_count
from dcvc_bench.models.layers import ResBlock
from dcvc_bench.models.spynet import MEBasic
from dcvc_bench.models.stages import stage_loss
from dcvc_bench.models.video_net import DCVC


def _frames(size=(1, 3, 64, 128)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ref = torch.rand(size, generator=g)
    return ref, (ref.roll(3, dims=-1) + 0.05 * torch.rand(size, generator=g)).clamp(0, 1)


def _kernels(fn) -> list[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [e.key for e in prof.key_averages()]


@pytest.mark.parametrize("preset", ["tiny", "dcvc"])
def test_fused_channels_last_computes_the_unfused_outputs_and_keeps_the_state_dict(preset):
    torch.manual_seed(0)
    unfused = prepare_model(DCVC(preset).eval(), "channels_last")
    before = {k: v.clone() for k, v in unfused.state_dict().items()}
    fused = fuse_for_inference(copy.deepcopy(unfused))
    # Every full-resolution conv→activation pair: SpyNet's 4 per level, the ResBlocks' conv1
    # and conv2 (+input), the motion refinement's 6, and the hyperprior/entropy Sequentials.
    assert fused_count(fused) == 46
    after = fused.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())
    ref, x = (prepare_input(t, "channels_last") for t in _frames())
    with torch.no_grad():
        a, b = unfused(ref, x), fused(ref, x)
        assert "mkldnn::_convolution_pointwise" in _kernels(lambda: fused(ref, x))
        assert "mkldnn::_convolution_pointwise" not in _kernels(lambda: unfused(ref, x))
    # oneDNN may pick another kernel for a fused conv on a small input (SpyNet's coarse
    # levels), so "the same" is float rounding, not bits (equal bits from 128x192 up here).
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5) and torch.allclose(a["x_pred"], b["x_pred"], atol=1e-4)
    for k in a["bits"]:
        assert torch.allclose(a["bits"][k], b["bits"][k], rtol=1e-5), k
    # And against today's NCHW network: within float rounding.
    with torch.no_grad():
        plain = copy.deepcopy(unfused).to(memory_format=torch.contiguous_format)(*_frames())
    assert torch.allclose(plain["x_hat"], b["x_hat"], atol=1e-5)
    assert torch.allclose(plain["bpp"], b["bpp"], rtol=1e-5)


def test_with_gradients_a_fused_network_trains_as_the_unfused_one():
    """Training never reaches the fused kernel (it has no backward): same loss and grads."""
    torch.manual_seed(0)
    net = DCVC("tiny").train()
    fused = fuse_for_inference(copy.deepcopy(net))
    outs = []
    for model in (net, fused):
        torch.manual_seed(7)
        out = model(*_frames())
        loss, _ = stage_loss(out, _frames()[1], 4, 256.0)
        loss.backward()
        outs.append(loss)
    assert torch.equal(outs[0], outs[1])
    grads = dict(net.named_parameters())
    for name, p in fused.named_parameters():
        if p.grad is not None:
            assert torch.equal(p.grad, grads[name].grad), name


def test_only_plain_zero_padded_convs_fuse_and_a_shared_activation_stays_unless_all_its_convs_fuse():
    basic = MEBasic((8, 16, 8, 4))
    basic.conv3.padding_mode = "reflect"   # one of relu's four convs cannot fuse
    fuse_for_inference(basic)
    assert isinstance(basic.relu, nn.ReLU) and fused_count(basic) == 0
    block = fuse_for_inference(ResBlock(8))
    assert isinstance(block.relu1, nn.ReLU) and isinstance(block.relu2, nn.Identity)
    assert block.conv1.post == ("relu", [None]) and block.conv2.post is None
    net = fuse_for_inference(DCVC("tiny"))
    assert not isinstance(net.auto_regressive, FusedConv2d)   # the masked context conv
    assert fused_count(fuse_for_inference(net)) == 46        # idempotent


def test_a_fused_block_on_nchw_and_under_autocast_falls_back_to_the_unfused_arithmetic():
    torch.manual_seed(0)
    block = ResBlock(8)
    nn.init.normal_(block.conv2.bias)
    fused = fuse_for_inference(copy.deepcopy(block))
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        assert torch.allclose(fused(x), block(x), atol=1e-6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert "mkldnn::_convolution_pointwise" not in _kernels(lambda: fused(x))
            assert torch.equal(fused(x), block(x))
