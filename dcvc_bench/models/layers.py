"""DCVC's building blocks.

Layer and attribute names follow the DCVC reference (microsoft/DCVC) so the submodule
names inside a checkpoint read the same as the paper's code. GDN and the masked
context convolution come from CompressAI: one tested implementation each, and the
entropy coder in :mod:`dcvc_bench.codec` can rely on their exact behaviour.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from compressai.layers import GDN, MaskedConv2d

from dcvc_bench.models.fusion import conv_add

__all__ = [
    "GDN",
    "MaskedConv2d",
    "ResBlock",
    "ResBlock_LeakyReLU_0_Point_1",
    "context_model",
    "subpel_conv3x3",
]


class ResBlock(nn.Module):
    """Pre-activation residual block (ReLU, conv, ReLU, conv, + input).

    Used at full resolution around the motion-compensated features (feature_extract,
    context_refine, contextualDecoder_part2). Xavier init with zero bias, as in DCVC,
    keeps the block close to identity at the start of training.
    """

    #: For inference fusion (models/fusion.py): conv1 takes relu2 into its kernel, conv2 the
    #: residual add. relu1 acts on the block's input, which the sum needs unactivated.
    FUSE_PAIRS = (("conv1", "relu2"),)
    FUSE_ADD = ("conv2",)

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return conv_add(self.conv2, self.relu2(self.conv1(self.relu1(x))), x)


class ResBlock_LeakyReLU_0_Point_1(nn.Module):  # noqa: N801 - DCVC's name
    """Residual block with LeakyReLU(0.1) after each conv, between the GDN stages of
    the contextual encoder/decoder: adds non-linearity without a normalisation."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x)


def subpel_conv3x3(in_channels: int, out_channels: int, upscale: int = 2) -> nn.Sequential:
    """3x3 conv to ``out_channels * upscale**2`` then PixelShuffle: learned upsampling
    without the checkerboard artefacts of a transposed convolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels * upscale**2, kernel_size=3, padding=1),
        nn.PixelShuffle(upscale),
    )


class ContextConv2d(MaskedConv2d):
    """CompressAI's masked convolution, applying its mask out of place.

    CompressAI's ``forward`` masks the stored weight in place (``weight.data *= mask``),
    so a module that is frozen still has its stored tensor rewritten by the first forward
    after an optimizer step moved the masked-out taps (their gradient is not zero there),
    and a checkpoint's weights depend on whether a forward ran before it was written.
    Here the stored weight is never written: the convolution uses ``weight * mask``, the
    masked-out taps get no gradient, and the outputs are exactly CompressAI's. The real
    coder (:mod:`dcvc_bench.codec.ar`) multiplies by the mask itself, as before."""

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def context_model(channels: int) -> MaskedConv2d:
    """The spatial context model: a 5x5 type-"A" masked conv sees only already-decoded
    latents (above, and left on the same row), so the decoder can reproduce it."""
    return ContextConv2d(channels, 2 * channels, kernel_size=5, padding=2, stride=1, mask_type="A")
