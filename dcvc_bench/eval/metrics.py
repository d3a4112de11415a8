"""Frame quality metrics: the one implementation every evaluation uses.

All functions take B×3×H×W float tensors in [0, 1] (RGB) and return one value per
sample, shape (B,). Averaging over frames and sequences is the caller's job; the DCVC
convention is the mean of per-frame PSNR (not PSNR of the mean MSE).

- :func:`psnr`: RGB PSNR. The MSE is floored at :data:`MSE_FLOOR` (1e-10), so identical
  frames give 100 dB instead of ``inf`` and averages stay finite.
- :func:`ms_ssim`: pytorch_msssim's MS-SSIM; frames too small for its 5 scales get fewer
  scales (see :func:`ms_ssim_setting`) instead of an assertion error.
- :func:`ssim`: pytorch_msssim's single-scale SSIM (11-px Gaussian window, σ 1.5; a
  smaller odd window on frames under 11 px, see :func:`ssim_setting`).
- :class:`LPIPSMetric`: LPIPS (AlexNet), only from weights already on this machine.
- :func:`yuv420_metrics`: YUV 4:2:0 scoring (``eval --color yuv420``, DCVC's test
  conditions): PSNR of each plane at the source's bit depth (peak 2^bits - 1), MS-SSIM
  of each plane, and the 6:1:1 averages PSNR = (6 PSNR_Y + PSNR_U + PSNR_V) / 8 (MS-SSIM
  likewise), per frame.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dcvc_bench.errors import UserError

MSE_FLOOR = 1e-10  # 100 dB at max_val = 1: the value for identical frames


# --------------------------------------------------------------------------- PSNR


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"frames differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() != 4:
        raise ValueError(f"expected B×C×H×W tensors, got {tuple(x.shape)}")


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per sample, (B,), computed in float32 at least."""
    _check_pair(x, y)
    dtype = torch.promote_types(x.dtype, torch.float32) if x.is_floating_point() else torch.float32
    diff = x.to(dtype) - y.to(dtype)
    return diff.pow(2).flatten(1).mean(dim=1)


def mse_to_psnr(mse_value: Tensor | float, max_val: float = 1.0) -> Tensor | float:
    """PSNR in dB from an MSE; the MSE is floored at 1e-10 (100 dB for max_val 1).
    A float in gives a float out, a tensor gives a tensor."""
    if isinstance(mse_value, Tensor):
        return 10.0 * torch.log10(max_val**2 / mse_value.clamp_min(MSE_FLOOR))
    return 10.0 * math.log10(max_val**2 / max(float(mse_value), MSE_FLOOR))


def psnr(x: Tensor, y: Tensor, max_val: float = 1.0) -> Tensor:
    """RGB PSNR per sample, (B,): MSE over all channels and pixels, floored at 1e-10."""
    return mse_to_psnr(mse(x, y), max_val)


# --------------------------------------------------------------------------- MS-SSIM

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, 5 scales
_WIN_SIZES = (11, 7, 5, 3, 1)


def ms_ssim_setting(h: int, w: int) -> dict:
    """The MS-SSIM variant used for an h×w frame.

    Rule: n scales with a Gaussian window of size k need the short side to exceed
    (k - 1)·2^(n-1), so the coarsest scale still holds a whole window (pytorch_msssim's
    own check for n = 5, k = 11: side > 160). Take k = 11 with as many scales as fit
    (at most 5); if not even one fits, the largest of k = 7, 5, 3 that fits with one
    scale (k = 1 for frames under 3 px). Weights are the first n standard weights,
    renormalised to sum 1 (the standard 5 are used as published).

    Returns ``scales``, ``win_size``, ``weights``, ``standard`` (the usual 5-scale,
    11-px setting) and ``label`` for tables ("MS-SSIM", "MS-SSIM (3 scales)",
    "MS-SSIM (1 scale, win 7)").
    """
    side = min(int(h), int(w))
    if side < 1:
        raise ValueError(f"empty frame {h}×{w}")
    win_size, scales = 1, 1  # under 3 px: a 1-px window, i.e. per-pixel SSIM
    for k in _WIN_SIZES[:-1]:
        n = max((n for n in range(1, len(MS_SSIM_WEIGHTS) + 1) if side > (k - 1) * 2 ** (n - 1)), default=0)
        if n:
            win_size, scales = k, n
            break
    standard = scales == len(MS_SSIM_WEIGHTS) and win_size == 11
    if standard:
        weights = list(MS_SSIM_WEIGHTS)
    else:
        head = MS_SSIM_WEIGHTS[:scales]
        weights = [wt / sum(head) for wt in head]
    if standard:
        label = "MS-SSIM"
    else:
        label = f"MS-SSIM ({scales} scale{'s' if scales > 1 else ''}"
        label += ")" if win_size == 11 else f", win {win_size})"
    return {"scales": scales, "win_size": win_size, "weights": weights, "standard": standard, "label": label}


def _ms_ssim_reduced(x: Tensor, y: Tensor, win_size: int, weights: list[float]) -> Tensor:
    """pytorch_msssim's MS-SSIM loop without its fixed 5-scale size assertion."""
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    win = _fspecial_gauss_1d(win_size, 1.5).repeat([x.shape[1], 1, 1, 1])
    weights_t = x.new_tensor(weights)
    mcs = []
    for i in range(len(weights)):
        ssim_per_channel, cs = _ssim(x, y, data_range=1.0, win=win, size_average=False)
        if i < len(weights) - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    ssim_per_channel = torch.relu(ssim_per_channel)
    stacked = torch.stack(mcs + [ssim_per_channel], dim=0)  # (scales, B, C)
    return torch.prod(stacked ** weights_t.view(-1, 1, 1), dim=0).mean(dim=1)


def ms_ssim(x: Tensor, y: Tensor) -> Tensor:
    """MS-SSIM per sample, (B,), data range 1. Full-size frames use pytorch_msssim's
    standard 5 scales; smaller ones the reduced setting of :func:`ms_ssim_setting`."""
    from pytorch_msssim import ms_ssim as _library_ms_ssim

    _check_pair(x, y)
    x, y = x.float(), y.float()
    setting = ms_ssim_setting(x.shape[2], x.shape[3])
    if setting["standard"]:
        return _library_ms_ssim(x, y, data_range=1.0, size_average=False)
    return _ms_ssim_reduced(x, y, setting["win_size"], setting["weights"])


# --------------------------------------------------------------------------- SSIM


def ssim_setting(h: int, w: int) -> dict:
    """The single-scale SSIM window for an h×w frame: 11 px (σ 1.5, Wang et al.) when the
    short side holds it, else the largest odd size that fits. ``label``: "SSIM" or
    "SSIM (win 5)"."""
    side = min(int(h), int(w))
    if side < 1:
        raise ValueError(f"empty frame {h}×{w}")
    win_size = 11 if side >= 11 else (side if side % 2 else side - 1)
    return {"win_size": win_size, "label": "SSIM" if win_size == 11 else f"SSIM (win {win_size})"}


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Single-scale SSIM per sample, (B,), data range 1: pytorch_msssim's ``ssim`` with the
    window of :func:`ssim_setting` (mean over channels and valid positions)."""
    from pytorch_msssim import ssim as _library_ssim

    _check_pair(x, y)
    x, y = x.float(), y.float()
    win_size = ssim_setting(x.shape[2], x.shape[3])["win_size"]
    if min(x.shape[2], x.shape[3]) == 1:  # the library squeezes size-1 dimensions away
        return _ms_ssim_reduced(x, y, 1, [1.0])
    return _library_ssim(x, y, data_range=1.0, size_average=False, win_size=win_size)


# --------------------------------------------------------------------------- LPIPS

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet (IMAGENET1K_V1)
LPIPS_MIN_SIDE = 31  # AlexNet's strides and pools leave no pixels below this
# lpips.pretrained_networks.alexnet splits torchvision's `features` into 5 slices.
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


def _alexnet_file_name() -> str:
    """torchvision's cache file name for the AlexNet weights (from its URL when possible)."""
    try:
        from torchvision.models import AlexNet_Weights

        return os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)
    except Exception:  # older/odd torchvision: fall back to the long-stable name
        return ALEXNET_FILE


def lpips_weight_files() -> dict[str, Path]:
    """The two files LPIPS (alex) needs: the AlexNet backbone in torch hub's checkpoints
    folder (follows $TORCH_HOME) and the linear layers shipped inside the lpips package."""
    import lpips

    return {
        "backbone": Path(torch.hub.get_dir()) / "checkpoints" / _alexnet_file_name(),
        "linear": Path(lpips.__file__).resolve().parent / "weights" / "v0.1" / "alex.pth",
    }


class LPIPSMetric:
    """LPIPS (v0.1, AlexNet) per sample, (B,), for frames in [0, 1].

    Built only from local files: the backbone is created with random weights and then
    overwritten by the AlexNet file from the hub cache, so nothing is ever downloaded
    and a random backbone never produces numbers. An evaluation metric: no gradients.
    """

    net = "alex"

    @staticmethod
    def available() -> tuple[bool, str]:
        """(True, "") when both weight files are present; else (False, "place FILE in DIR ...")."""
        try:
            files = lpips_weight_files()
        except ImportError as exc:
            return False, f"the lpips package is not importable: {exc}"
        backbone, linear = files["backbone"], files["linear"]
        if not backbone.is_file():
            return False, (
                f"place {backbone.name} in {backbone.parent} (torchvision's ImageNet AlexNet, the LPIPS "
                "backbone; the folder follows $TORCH_HOME; never downloaded here)"
            )
        if not linear.is_file():
            return False, f"place {linear.name} in {linear.parent} (the lpips package's linear layers; reinstall lpips)"
        return True, ""

    def __init__(self, device: str | torch.device = "cpu"):
        ok, reason = self.available()
        if not ok:
            raise UserError(f"LPIPS unavailable: {reason}")
        import lpips

        files = lpips_weight_files()
        with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notice
            warnings.simplefilter("ignore", UserWarning)
            # pnet_rand=True: lpips must not fetch the backbone; it is loaded below.
            model = lpips.LPIPS(pretrained=True, net=self.net, pnet_rand=True, verbose=False)
        backbone = files["backbone"]
        try:
            state = torch.load(backbone, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle.UnpicklingError, corrupt zip, ...
            raise UserError(f"{backbone} cannot be loaded as plain AlexNet weights: {exc}") from None
        mapped = {}
        if isinstance(state, dict):
            for key, value in state.items():
                parts = key.split(".")
                if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit() and int(parts[1]) in _ALEX_SLICES:
                    mapped[f"slice{_ALEX_SLICES[int(parts[1])]}.{parts[1]}.{parts[2]}"] = value
        try:
            model.net.load_state_dict(mapped, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).splitlines()[:2])[:300]
            raise UserError(f"{backbone} is not a torchvision AlexNet state dict: {detail}") from None
        self.model = model.to(torch.device(device)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        _check_pair(x, y)
        if min(x.shape[2], x.shape[3]) < LPIPS_MIN_SIDE:
            side = LPIPS_MIN_SIDE
            raise ValueError(f"LPIPS needs frames of at least {side}×{side}, got {tuple(x.shape[2:])}")
        x = x.to(self.device, torch.float32)
        y = y.to(self.device, torch.float32)
        return self.model(x, y, normalize=True).flatten(1).mean(dim=1)


# --------------------------------------------------------------------------- YUV 4:2:0

PLANES = ("y", "u", "v")


def yuv420_metrics(reference: tuple, decoded: tuple, bit_depth: int = 8, chunk: int = 8) -> list[dict[str, float]]:
    """Per-frame ``psnr_y/u/v``, ``ms_ssim_y/u/v`` and their 6:1:1 averages ``psnr`` and
    ``ms_ssim`` of two clips given as (Y, U, V) integer arrays, T×H×W and T×(H/2)×(W/2).
    PSNR uses the peak 2^bit_depth - 1 and the MSE floor of :func:`mse_to_psnr`;
    MS-SSIM runs on each plane scaled to [0, 1] (:func:`ms_ssim`, reduced scales on
    small planes)."""
    import numpy as np

    peak = float(2 ** bit_depth - 1)
    t = len(reference[0])
    if any(len(p) != t for p in (*reference, *decoded)):
        raise ValueError("yuv420_metrics: the planes differ in frame count")
    out: list[dict[str, float]] = [{} for _ in range(t)]
    for name, ref, dec in zip(PLANES, reference, decoded):
        if np.shape(ref) != np.shape(dec):
            raise ValueError(f"plane {name} differs in shape: {np.shape(ref)} vs {np.shape(dec)}")
        for start in range(0, t, chunk):
            x = torch.from_numpy(np.ascontiguousarray(ref[start:start + chunk], dtype=np.float64) / peak)[:, None]
            y = torch.from_numpy(np.ascontiguousarray(dec[start:start + chunk], dtype=np.float64) / peak)[:, None]
            psnr_v = mse_to_psnr(mse(x, y))
            ms_v = ms_ssim(x, y)
            for i in range(x.shape[0]):
                out[start + i][f"psnr_{name}"] = float(psnr_v[i])
                out[start + i][f"ms_ssim_{name}"] = float(ms_v[i])
    for f in out:
        f["psnr"] = (6 * f["psnr_y"] + f["psnr_u"] + f["psnr_v"]) / 8
        f["ms_ssim"] = (6 * f["ms_ssim_y"] + f["ms_ssim_u"] + f["ms_ssim_v"]) / 8
    return out


# --------------------------------------------------------------------------- together


def frame_metrics(x: Tensor, x_hat: Tensor, lpips_metric: LPIPSMetric | None = None) -> dict[str, Tensor]:
    """Per-sample ``mse``, ``psnr``, ``ssim`` and ``ms_ssim`` (each (B,)), plus ``lpips``
    when a metric is given. Name the variants with ``ssim_setting(H, W)["label"]`` and
    ``ms_ssim_setting(H, W)["label"]``."""
    out = {"mse": mse(x, x_hat)}
    out["psnr"] = mse_to_psnr(out["mse"])
    out["ssim"] = ssim(x, x_hat)
    out["ms_ssim"] = ms_ssim(x, x_hat)
    if lpips_metric is not None:
        out["lpips"] = lpips_metric(x, x_hat)
    return out


__all__ = [
    "ALEXNET_FILE",
    "LPIPS_MIN_SIDE",
    "MSE_FLOOR",
    "MS_SSIM_WEIGHTS",
    "LPIPSMetric",
    "PLANES",
    "frame_metrics",
    "lpips_weight_files",
    "ms_ssim",
    "ms_ssim_setting",
    "mse",
    "mse_to_psnr",
    "psnr",
    "ssim",
    "ssim_setting",
    "yuv420_metrics",
]
