"""The default (channels_last) path computes what the plain NCHW path computes, and a
checkpoint written on it is the plain model's checkpoint (same keys, shapes, values;
contiguous tensors). Real tiny DCVC, real training steps; no timing."""

from __future__ import annotations

import copy

import pytest
import torch

from dcvc_bench.checkpoint_io import load_checkpoint
from dcvc_bench.models.fastpath import contiguous_tensors, prepare_input, prepare_model
from dcvc_bench.models.stages import stage_loss
from dcvc_bench.models.video_net import DCVC

from train_helpers import ckpt, run_in_process, step_argv

TERMS = ("bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z")


def _frames(seed: int, size=(1, 3, 64, 96)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(size, generator=g)
    x = (ref.roll(2, dims=-1) + 0.05 * torch.rand(size, generator=g)).clamp(0, 1)
    return ref, x


def _step(net: DCVC, fmt: str, ref: torch.Tensor, x: torch.Tensor, seed: int):
    """One forward (training noise from ``seed``) and backward of the stage-4 loss."""
    torch.manual_seed(seed)
    out = net(prepare_input(ref, fmt), prepare_input(x, fmt))
    loss, terms = stage_loss(out, x, 4, 256.0)
    loss.backward()
    return out, terms


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_channels_last_gives_the_plain_loss_bits_and_gradients(training):
    torch.manual_seed(0)
    plain = DCVC("tiny").train(training)
    fast = prepare_model(copy.deepcopy(plain), "channels_last")
    assert fast.contextualEncoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    ref, x = _frames(1)
    out_p, terms_p = _step(plain, "contiguous", ref, x, seed=5)
    out_f, terms_f = _step(fast, "channels_last", ref, x, seed=5)

    for k in ("loss", "mse", *TERMS):
        assert torch.allclose(terms_f[k], terms_p[k], rtol=1e-4, atol=1e-6), (k, terms_f[k], terms_p[k])
    for k in ("y", "z", "mv_y", "mv_z"):
        assert torch.allclose(out_f["bits"][k], out_p["bits"][k], rtol=1e-4, atol=1e-3), k
    assert torch.allclose(out_f["x_hat"], out_p["x_hat"], atol=1e-4)
    if not training:   # inference: no gradients (rounding makes eval-mode gradients knife-edge)
        return
    grads_p = dict(plain.named_parameters())
    for name, p in fast.named_parameters():
        if name.endswith("quantiles") or grads_p[name].grad is None:
            continue
        gp = grads_p[name].grad
        scale = gp.abs().max().item() + 1e-12
        assert (p.grad - gp).abs().max().item() <= 1e-3 * scale, name


def test_noise_of_a_different_seed_changes_the_training_bits():
    """The comparison above can fail: another seed's noise gives other bits."""
    torch.manual_seed(0)
    net = DCVC("tiny").train()
    ref, x = _frames(1)
    _, a = _step(net, "contiguous", ref, x, seed=5)
    _, b = _step(net, "contiguous", ref, x, seed=6)
    assert not torch.allclose(a["bpp_y"], b["bpp_y"], rtol=1e-4, atol=1e-6)


def test_contiguous_tensors_keeps_keys_shapes_values():
    net = prepare_model(DCVC("tiny"), "channels_last")
    sd = net.state_dict()
    assert any(not t.is_contiguous() for t in sd.values())
    out = contiguous_tensors(sd)
    assert list(out) == list(sd) and out._metadata == sd._metadata
    assert all(t.is_contiguous() and torch.equal(t, sd[k]) for k, t in out.items())


def test_a_checkpoint_of_the_fast_path_loads_into_the_plain_model(synthetic_clips, tmp_path):
    weights = {}
    for fmt in ("channels_last", "contiguous"):
        assert run_in_process(step_argv(synthetic_clips, tmp_path / fmt, tmp_path / f"{fmt}.jsonl", stage=4,
                                        steps=2, extra=["--memory_format", fmt])) == 0
        state = load_checkpoint(ckpt(tmp_path / fmt, 4, "final"))
        weights[fmt] = state["model_state_dict"]
        tensors = [*state["model_state_dict"].values(), *state["ema_state_dict"]["shadow"].values()]
        for opt in ("optimizer_state_dict", "aux_optimizer_state_dict"):
            for s in state[opt]["state"].values():
                tensors += [v for v in s.values() if isinstance(v, torch.Tensor)]
        assert all(t.is_contiguous() for t in tensors), fmt
    fast, plain = weights["channels_last"], weights["contiguous"]
    assert list(fast) == list(plain)
    assert all(fast[k].shape == plain[k].shape for k in plain)
    model = DCVC("tiny")
    model.load_state_dict(fast)   # strict: same keys and shapes
    # Two steps on the same data and seed: the weights agree to float rounding.
    for k in plain:
        if plain[k].is_floating_point():
            assert torch.allclose(fast[k], plain[k], rtol=1e-3, atol=1e-5), k
