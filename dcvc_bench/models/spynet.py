"""Optical flow for DCVC: the 4-level SpyNet used by the reference, and backward warping.

The structure (``moduleBasic.{level}.conv{1..5}``) is the reference's, so SpyNet
weights taken from a DCVC checkpoint (``opticFlow.*``) load unchanged. Weights start
random; :func:`load_spynet_weights` loads a local file when the user has one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcvc_bench.errors import UserError

__all__ = ["ME_Spynet", "MEBasic", "flow_warp", "load_spynet_weights"]

SPYNET_LEVELS = 4


def flow_warp(im: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``im`` (B×C×H×W) by ``flow`` (B×2×H×W, pixels; channel 0 = x).

    Output pixel (i, j) samples ``im`` at (i + flow_y, j + flow_x), bilinearly, with
    border replication outside the frame. The sampling grid is built in float32 on each
    call: half-precision coordinates would be off by pixels on large frames (mixed
    precision training), and rebuilding the base grid is cheap next to the sampling.
    """
    _, _, height, width = flow.shape
    flow = flow.float()
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device)
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device)
    base_y, base_x = torch.meshgrid(ys, xs, indexing="ij")
    # Pixels -> normalised [-1, 1] units (align_corners=True: -1 and 1 are pixel centres).
    grid_x = base_x + flow[:, 0] * (2.0 / (width - 1))
    grid_y = base_y + flow[:, 1] * (2.0 / (height - 1))
    grid = torch.stack((grid_x, grid_y), dim=-1)
    warped = F.grid_sample(
        im.float(), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    if not im.is_contiguous() and im.is_contiguous(memory_format=torch.channels_last):
        # grid_sample writes NCHW whatever its input; hand a channels_last network its own
        # layout, or every conv and cat downstream converts the frame-sized tensor again.
        warped = warped.contiguous(memory_format=torch.channels_last)
    return warped.to(im.dtype)


#: SpyNet's basic-module widths (8→32→64→32→16→2); pretrained flow weights need these.
SPYNET_WIDTHS = (32, 64, 32, 16)


class MEBasic(nn.Module):
    """One pyramid level: five 7x7 convs (8→32→64→32→16→2 at full width) predict a flow
    residual from (frame, warped reference, current flow)."""

    #: For inference fusion (models/fusion.py): the shared ReLU goes into convs 1-4.
    FUSE_PAIRS = (("conv1", "relu"), ("conv2", "relu"), ("conv3", "relu"), ("conv4", "relu"))

    def __init__(self, widths: tuple[int, int, int, int] = SPYNET_WIDTHS):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.conv1 = nn.Conv2d(8, w1, 7, padding=3)
        self.conv2 = nn.Conv2d(w1, w2, 7, padding=3)
        self.conv3 = nn.Conv2d(w2, w3, 7, padding=3)
        self.conv4 = nn.Conv2d(w3, w4, 7, padding=3)
        self.conv5 = nn.Conv2d(w4, 2, 7, padding=3)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        x = self.relu(self.conv4(x))
        return self.conv5(x)


class ME_Spynet(nn.Module):  # noqa: N801 - DCVC's name, kept for checkpoint keys
    """Coarse-to-fine flow estimation (SpyNet, Ranjan & Black 2017) as in DCVC.

    ``forward(im1, im2)`` returns the flow that warps ``im2`` onto ``im1`` (B×2×H×W,
    pixels). The frames are average-pooled into a 4-level pyramid; from the coarsest
    level up, the flow is upsampled ×2 (values doubled), ``im2`` is warped by it and a
    basic module adds a residual. Any size of at least 8×8 works; multiples of 8 match
    the reference exactly (DCVC pads its input to multiples of 64).
    """

    def __init__(self, widths: tuple[int, int, int, int] = SPYNET_WIDTHS):
        super().__init__()
        self.moduleBasic = nn.ModuleList(MEBasic(widths) for _ in range(SPYNET_LEVELS))

    def forward(self, im1: Tensor, im2: Tensor) -> Tensor:
        pyramid = [(im1, im2)]
        for _ in range(SPYNET_LEVELS - 1):
            a, b = pyramid[-1]
            pyramid.append((F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))

        coarse1, _ = pyramid[-1]
        flow = coarse1.new_zeros(coarse1.shape[0], 2, *coarse1.shape[2:])
        for level, basic in enumerate(self.moduleBasic):
            level1, level2 = pyramid[SPYNET_LEVELS - 1 - level]
            if level > 0:
                flow = 2.0 * F.interpolate(
                    flow, size=level1.shape[2:], mode="bilinear", align_corners=False
                )
            flow = flow + basic(torch.cat((level1, flow_warp(level2, flow), flow), dim=1))
        return flow


_CHECKPOINT_PREFIX = "opticFlow."


def load_spynet_weights(module: ME_Spynet, path: str | Path) -> None:
    """Load SpyNet weights from a local file into ``module``.

    Accepts a plain ``ME_Spynet`` state dict, a DCVC model state dict (keys under
    ``opticFlow.``), or a dcvc-bench checkpoint holding one under ``model_state_dict``.
    The file is read with ``weights_only=True``: a weights file is data, never code.
    Any problem raises :class:`UserError` naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SpyNet weights file not found: {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    # UnpicklingError when the file pickles code; a corrupt file can make the
    # weights-only unpickler raise nearly anything (EOFError, IndexError, ...).
    except Exception as exc:  # noqa: BLE001 - every failure here means "unreadable file"
        raise UserError(
            f"{path}: not a loadable weights-only torch file (corrupt, or it pickles "
            f"code, which dcvc-bench never runs): {_load_failure_reason(exc)}"
        ) from exc

    if isinstance(content, dict) and isinstance(content.get("model_state_dict"), dict):
        content = content["model_state_dict"]
    if not isinstance(content, dict):
        raise UserError(f"{path}: expected a state dict, found {type(content).__name__}")

    expected = module.state_dict()
    prefixed = any(key.startswith(_CHECKPOINT_PREFIX) for key in content)
    if prefixed:
        content = {
            key[len(_CHECKPOINT_PREFIX):]: value
            for key, value in content.items()
            if key.startswith(_CHECKPOINT_PREFIX)
        }

    missing = [key for key in expected if key not in content]
    if missing:
        raise UserError(
            f"{path}: not SpyNet weights: {len(missing)} of {len(expected)} ME_Spynet "
            f"keys missing (first: {(_CHECKPOINT_PREFIX if prefixed else '') + missing[0]})"
        )
    for key, reference in expected.items():
        value = content[key]
        if not isinstance(value, Tensor) or value.shape != reference.shape:
            found = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise UserError(
                f"{path}: SpyNet weight {key} has shape {found}, expected {tuple(reference.shape)}"
            )
    module.load_state_dict({key: content[key] for key in expected})


def _load_failure_reason(exc: BaseException) -> str:
    """The informative line of a torch.load error (its first lines are boilerplate)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            return line
    return lines[0] if lines else type(exc).__name__
