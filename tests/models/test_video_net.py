"""The DCVC P-frame model: module contract, padding, rate accounting, training plumbing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dcvc_bench.errors import UserError
from dcvc_bench.models.video_net import (
    DCVC,
    MOTION_MODULES,
    PRESETS,
    RESIDUAL_MODULES,
    crop,
    pad_to_multiple,
)

CONTRACT_NAMES = [
    "opticFlow", "mvEncoder", "mvDecoder_part1", "mvDecoder_part2", "mvpriorEncoder",
    "mvpriorDecoder", "auto_regressive_mv", "entropy_parameters_mv", "bitEstimator_z_mv",
    "gaussian_conditional_mv", "feature_extract", "context_refine", "contextualEncoder",
    "contextualDecoder_part1", "contextualDecoder_part2", "priorEncoder", "priorDecoder",
    "temporalPriorEncoder", "bitEstimator_z", "gaussian_conditional", "auto_regressive",
    "entropy_parameters",
]  # fmt: skip


@pytest.fixture
def tiny() -> DCVC:
    torch.manual_seed(0)
    return DCVC("tiny")


def _frames(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ref = torch.rand(batch, 3, height, width)
    x = (ref + 0.05 * torch.randn_like(ref)).clamp(0, 1)
    return ref, x


def test_submodule_names_are_the_checkpoint_contract(tiny):
    names = [name for name, _ in tiny.named_children()]
    assert sorted(names) == sorted(CONTRACT_NAMES)
    assert sorted(MOTION_MODULES + RESIDUAL_MODULES) == sorted(CONTRACT_NAMES)
    assert not set(MOTION_MODULES) & set(RESIDUAL_MODULES)
    assert {type(tiny.bitEstimator_z).__name__, type(tiny.bitEstimator_z_mv).__name__} == {
        "EntropyBottleneck"
    }
    assert {
        type(tiny.gaussian_conditional).__name__,
        type(tiny.gaussian_conditional_mv).__name__,
    } == {"GaussianConditional"}


def test_presets_share_the_structure_and_differ_in_width(tiny):
    full = DCVC("dcvc")
    assert full.preset == "dcvc" and tiny.preset == "tiny"
    full_shapes = {k: v.shape for k, v in full.state_dict().items()}
    tiny_shapes = {k: v.shape for k, v in tiny.state_dict().items()}
    assert full_shapes.keys() == tiny_shapes.keys()  # same modules, same checkpoint keys
    assert full_shapes["opticFlow.moduleBasic.0.conv1.weight"] == (32, 8, 7, 7)  # SpyNet's own
    assert sum(p.numel() for p in tiny.parameters()) < sum(p.numel() for p in full.parameters()) / 10


def test_unknown_preset_is_a_user_error_listing_the_valid_ones():
    with pytest.raises(UserError) as info:
        DCVC("huge")
    for name in PRESETS:
        assert name in str(info.value)


def test_pad_to_multiple_replicates_bottom_right_and_crop_undoes_it():
    x = torch.rand(1, 3, 70, 50)
    padded, size = pad_to_multiple(x, 64)
    assert padded.shape == (1, 3, 128, 64) and size == (70, 50)
    assert torch.equal(padded[..., 70:, :50], x[..., 69:70, :].expand(-1, -1, 58, -1))
    assert torch.equal(crop(padded, size), x)
    same, _ = pad_to_multiple(torch.rand(1, 3, 64, 128), 64)
    assert same.shape == (1, 3, 64, 128)


def test_forward_on_an_odd_size_returns_input_size_and_bpp_per_original_pixel(tiny):
    height, width = 70, 50  # padded to 128x64 inside
    ref, x = _frames(2, height, width)
    tiny.eval()
    with torch.no_grad():
        out = tiny(ref, x)

    assert out["x_hat"].shape == x.shape
    assert out["x_pred"].shape == x.shape
    assert out["likelihoods"]["y"].shape[-2:] == (8, 4)  # latents cover the padded frame
    assert out["likelihoods"]["mv_z"].shape[-2:] == (2, 1)
    pixels = height * width  # the original count: padding never changes the divisor
    for name in ("y", "z", "mv_y", "mv_z"):
        bits = out["bits"][name]
        assert bits.shape == (2,)
        assert torch.isfinite(bits).all() and (bits > 0).all()
        expected = -torch.log2(out["likelihoods"][name]).flatten(1).sum(1)
        torch.testing.assert_close(bits, expected)
        assert out[f"bpp_{name}"].dim() == 0
        torch.testing.assert_close(out[f"bpp_{name}"], bits.mean() / pixels)
    total = sum(out[f"bpp_{name}"] for name in ("y", "z", "mv_y", "mv_z"))
    torch.testing.assert_close(out["bpp"], total)


def test_training_loss_reaches_every_main_parameter_of_both_branches(tiny):
    ref, x = _frames(1, 64, 64)
    tiny.train()
    out = tiny(ref, x)
    loss = F.mse_loss(out["x_hat"], x) + out["bpp"] + F.mse_loss(out["x_pred"], x)
    assert torch.isfinite(loss)
    loss.backward()

    main, _ = tiny.param_groups()
    main_ids = {id(p) for p in main}
    no_grad = [
        name
        for name, p in tiny.named_parameters()
        if id(p) in main_ids and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert no_grad == []
    assert float(tiny.aux_loss()) > 0


def test_eval_forward_is_deterministic(tiny):
    ref, x = _frames(1, 64, 64)
    tiny.eval()
    with torch.no_grad():
        first, second = tiny(ref, x), tiny(ref, x)
    assert torch.equal(first["x_hat"], second["x_hat"])
    assert torch.equal(first["x_pred"], second["x_pred"])
    assert torch.equal(first["bpp"], second["bpp"])


def test_param_groups_split_quantiles_out_and_cover_every_parameter_once(tiny):
    main, aux = tiny.param_groups()
    names = {id(p): name for name, p in tiny.named_parameters()}
    assert sorted(names[id(p)] for p in aux) == [
        "bitEstimator_z.quantiles",
        "bitEstimator_z_mv.quantiles",
    ]
    assert not any(names[id(p)].endswith(".quantiles") for p in main)
    ids = [id(p) for p in main + aux]
    assert len(ids) == len(set(ids)) == len(names)

    for p in tiny.opticFlow.parameters():
        p.requires_grad_(False)
    frozen_main, _ = tiny.param_groups()
    assert len(frozen_main) == len(main) - len(list(tiny.opticFlow.parameters()))


def test_updated_entropy_models_survive_a_state_dict_round_trip(tiny):
    tiny.update(force=True)
    state = tiny.state_dict()
    fresh = DCVC("tiny")  # empty CDF buffers: load_state_dict must resize them
    fresh.load_state_dict(state)
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, state[name]), name
