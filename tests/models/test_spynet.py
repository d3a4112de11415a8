"""SpyNet, backward warping and loading SpyNet weights from local files."""

from __future__ import annotations

import os

import pytest
import torch

from dcvc_bench.errors import UserError
from dcvc_bench.models.spynet import ME_Spynet, flow_warp, load_spynet_weights
from dcvc_bench.models.video_net import DCVC


def test_flow_warp_with_zero_flow_returns_the_input():
    torch.manual_seed(0)
    im = torch.rand(2, 3, 17, 23)
    out = flow_warp(im, torch.zeros(2, 2, 17, 23))
    torch.testing.assert_close(out, im, atol=1e-5, rtol=0)


def test_flow_warp_samples_at_position_plus_flow():
    torch.manual_seed(0)
    im = torch.rand(1, 1, 8, 10)
    flow = torch.zeros(1, 2, 8, 10)
    flow[:, 0] = 1.0  # x + 1
    flow[:, 1] = 2.0  # y + 2
    out = flow_warp(im, flow)
    torch.testing.assert_close(out[..., :6, :9], im[..., 2:, 1:], atol=1e-5, rtol=0)
    # Outside the frame, the border is replicated.
    torch.testing.assert_close(out[..., :6, 9], im[..., 2:, 9], atol=1e-5, rtol=0)


def test_spynet_returns_a_full_resolution_two_channel_flow():
    torch.manual_seed(0)
    net = ME_Spynet()
    im1, im2 = torch.rand(2, 3, 64, 48), torch.rand(2, 3, 64, 48)
    with torch.no_grad():
        flow = net(im1, im2)
    assert flow.shape == (2, 2, 64, 48)
    assert torch.isfinite(flow).all()


def _random_spynet(seed: int) -> ME_Spynet:
    torch.manual_seed(seed)
    return ME_Spynet()


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_loads_a_plain_spynet_state_dict(tmp_path):
    source = _random_spynet(1)
    path = tmp_path / "spynet.pth"
    torch.save(source.state_dict(), path)
    target = _random_spynet(2)
    load_spynet_weights(target, path)
    _assert_same_weights(source, target)


def test_loads_the_optic_flow_part_of_a_dcvc_state_dict(tmp_path):
    torch.manual_seed(1)
    model = DCVC("dcvc")
    path = tmp_path / "dcvc.pth"
    torch.save(model.state_dict(), path)
    target = _random_spynet(2)
    load_spynet_weights(target, path)
    _assert_same_weights(model.opticFlow, target)


def test_loads_from_a_checkpoint_with_model_state_dict_into_a_dcvc_model(tmp_path):
    torch.manual_seed(1)
    source = DCVC("dcvc")
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "model_state_dict": source.state_dict()}, path)
    torch.manual_seed(2)
    target = DCVC("dcvc")
    target.load_spynet(path)
    _assert_same_weights(source.opticFlow, target.opticFlow)


def test_standard_spynet_weights_do_not_fit_the_tiny_preset(tmp_path):
    path = tmp_path / "spynet.pth"
    torch.save(_random_spynet(1).state_dict(), path)
    with pytest.raises(UserError, match="spynet.pth"):
        DCVC("tiny").load_spynet(path)


def test_shape_mismatch_is_a_user_error_naming_file_and_key(tmp_path):
    state = _random_spynet(1).state_dict()
    state["moduleBasic.0.conv1.weight"] = torch.zeros(32, 6, 7, 7)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"bad_shape\.pth.*moduleBasic\.0\.conv1\.weight"):
        load_spynet_weights(ME_Spynet(), path)


def test_missing_keys_are_a_user_error(tmp_path):
    state = _random_spynet(1).state_dict()
    del state["moduleBasic.3.conv5.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"partial\.pth.*1 of 40 .*missing"):
        load_spynet_weights(ME_Spynet(), path)


def test_missing_file_is_a_user_error_naming_the_path(tmp_path):
    path = tmp_path / "nowhere" / "spynet.pth"
    with pytest.raises(UserError, match="not found") as info:
        load_spynet_weights(ME_Spynet(), path)
    assert str(path) in str(info.value)


def test_a_file_that_pickles_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": os.system}, path)
    with pytest.raises(UserError) as info:
        load_spynet_weights(ME_Spynet(), path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_a_corrupt_file_is_a_user_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(UserError, match="garbage.pth"):
        load_spynet_weights(ME_Spynet(), path)


def test_flow_warp_samples_in_float32_and_keeps_the_input_dtype():
    # Under mixed precision SpyNet's flow is bfloat16; grid coordinates computed in
    # bfloat16 would be off by about a pixel 300 pixels into the frame.
    im = torch.linspace(0, 1, 300).repeat(1, 1, 2, 1)
    flow = torch.zeros(1, 2, 2, 300, dtype=torch.bfloat16)
    flow[:, 0] = 0.5
    expected = (torch.linspace(0, 1, 300) + 0.5 / 299)[:-1]
    torch.testing.assert_close(flow_warp(im, flow)[0, 0, 0, :-1], expected, atol=1e-5, rtol=0)
    assert flow_warp(im.bfloat16(), flow).dtype == torch.bfloat16
