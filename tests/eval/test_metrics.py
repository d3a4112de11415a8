"""Metrics: known PSNR values, MS-SSIM on any frame size, LPIPS only from local weights."""

from __future__ import annotations

import math

import pytest
import torch

from dcvc_bench.errors import UserError
from dcvc_bench.eval.metrics import (
    MS_SSIM_WEIGHTS,
    LPIPSMetric,
    _ms_ssim_reduced,
    frame_metrics,
    lpips_weight_files,
    ms_ssim,
    ms_ssim_setting,
    mse_to_psnr,
    psnr,
    ssim,
    ssim_setting,
)

# --------------------------------------------------------------------------- PSNR


def test_psnr_known_values_per_sample():
    x = torch.zeros(2, 3, 8, 8)
    y = torch.stack([torch.full((3, 8, 8), 0.1), torch.full((3, 8, 8), 0.01)])  # mse 1e-2, 1e-4
    torch.testing.assert_close(psnr(x, y), torch.tensor([20.0, 40.0]))
    assert psnr(x, x).tolist() == [100.0, 100.0]  # mse floored at 1e-10, never inf
    assert mse_to_psnr(0.01) == pytest.approx(20.0)
    assert mse_to_psnr(0.0) == pytest.approx(100.0)
    assert mse_to_psnr(100.0, max_val=255.0) == pytest.approx(10 * math.log10(255**2 / 100))


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


# --------------------------------------------------------------------------- MS-SSIM


@pytest.mark.parametrize("size", [(64, 64), (256, 256), (50, 70)])
def test_ms_ssim_identical_is_one_and_noise_is_lower(size):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, *size, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(2))
    value = ms_ssim(x, y)
    assert value.shape == (2,) and bool(((value > 0) & (value < 0.999)).all())


@pytest.mark.parametrize("side", [1, 2, 3, 5, 8, 16, 33])
def test_ms_ssim_never_crashes_on_small_frames(side):
    x = torch.rand(1, 3, side, side + 1)
    value = ms_ssim(x, (x * 0.9).clamp(0, 1))
    assert value.shape == (1,) and torch.isfinite(value).all()


def test_ms_ssim_setting_rule():
    full = ms_ssim_setting(1080, 1920)
    assert full["standard"] and full["scales"] == 5 and full["label"] == "MS-SSIM"
    assert ms_ssim_setting(161, 300)["standard"]
    four = ms_ssim_setting(160, 300)  # pytorch_msssim needs side > 160 for 5 scales
    assert (four["scales"], four["win_size"], four["label"]) == (4, 11, "MS-SSIM (4 scales)")
    assert ms_ssim_setting(64, 64)["label"] == "MS-SSIM (3 scales)"
    assert ms_ssim_setting(8, 100)["label"] == "MS-SSIM (1 scale, win 7)"
    for side in (2, 16, 64, 100):
        assert sum(ms_ssim_setting(side, side)["weights"]) == pytest.approx(1.0)


def test_reduced_loop_matches_pytorch_msssim_in_the_standard_setting():
    from pytorch_msssim import ms_ssim as library

    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 192, 200, generator=g)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ours = _ms_ssim_reduced(x, y, 11, list(MS_SSIM_WEIGHTS))
    torch.testing.assert_close(ours, library(x, y, data_range=1.0, size_average=False))
    torch.testing.assert_close(ms_ssim(x, y), ours)


def test_frame_metrics_gives_per_sample_values():
    x = torch.rand(3, 3, 32, 48)
    out = frame_metrics(x, (x * 0.95).clamp(0, 1))
    assert set(out) == {"mse", "psnr", "ssim", "ms_ssim"}
    assert all(v.shape == (3,) for v in out.values())


# --------------------------------------------------------------------------- SSIM


def test_ssim_is_pytorch_msssims_single_scale_ssim_per_sample():
    from pytorch_msssim import ssim as library

    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 40, 56, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    value = ssim(x, y)
    torch.testing.assert_close(value, library(x, y, data_range=1.0, size_average=False))
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert bool(((value > 0) & (value < 0.99)).all())
    assert bool((value < ms_ssim(x, y)).all())  # single scale sees the fine-scale noise undamped


@pytest.mark.parametrize("side, win", [(1, 1), (2, 1), (5, 5), (8, 7), (10, 9), (11, 11), (300, 11)])
def test_ssim_window_shrinks_to_fit_small_frames_and_never_crashes(side, win):
    setting = ssim_setting(side, side + 3)
    assert setting["win_size"] == win
    assert setting["label"] == ("SSIM" if win == 11 else f"SSIM (win {win})")
    if side <= 11:
        x = torch.rand(1, 3, side, side + 3)
        value = ssim(x, (x * 0.9).clamp(0, 1))
        assert value.shape == (1,) and torch.isfinite(value).all()


# --------------------------------------------------------------------------- LPIPS


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_lpips_unavailable_names_the_missing_file_and_folder(empty_torch_home):
    ok, reason = LPIPSMetric.available()
    assert not ok
    assert "alexnet-owt-7be5be79.pth" in reason
    assert str(empty_torch_home / "hub" / "checkpoints") in reason
    assert reason.startswith(f"place alexnet-owt-7be5be79.pth in {empty_torch_home / 'hub' / 'checkpoints'} ")
    with pytest.raises(UserError, match="^LPIPS unavailable: place alexnet-owt-7be5be79.pth in "):
        LPIPSMetric()


def test_lpips_uses_the_local_backbone_file(empty_torch_home):
    from torchvision.models import alexnet

    torch.manual_seed(0)
    backbone = alexnet(weights=None).state_dict()
    path = lpips_weight_files()["backbone"]
    assert path == empty_torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    path.parent.mkdir(parents=True)
    torch.save(backbone, path)

    assert LPIPSMetric.available() == (True, "")
    metric = LPIPSMetric()
    # The file's weights are the ones in use, not a random backbone.
    assert torch.equal(metric.model.net.state_dict()["slice1.0.weight"], backbone["features.0.weight"])
    assert torch.equal(metric.model.net.state_dict()["slice5.10.bias"], backbone["features.10.bias"])

    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 64, 64, generator=g)
    y = torch.rand(2, 3, 64, 64, generator=g)
    same, different = metric(x, x), metric(x, y)
    assert same.shape == different.shape == (2,)
    torch.testing.assert_close(same, torch.zeros(2))
    assert bool((different > 0).all())
    assert "lpips" in frame_metrics(x, y, lpips_metric=metric)
    with pytest.raises(ValueError, match="at least"):
        metric(x[:, :, :16, :16], y[:, :, :16, :16])


def test_lpips_refuses_a_backbone_file_that_is_not_alexnet(empty_torch_home):
    path = lpips_weight_files()["backbone"]
    path.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(UserError, match="not a torchvision AlexNet"):
        LPIPSMetric()
