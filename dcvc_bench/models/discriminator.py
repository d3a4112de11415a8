"""The PatchGAN discriminator of the VQGAN I-frame training step (the pix2pix
``NLayerDiscriminator`` design that taming-transformers trains its VQGANs with).

``layers`` stride-2 4×4 convolutions (the first without normalisation, the others with
BatchNorm, channels doubling up to 8× ``channels``), one stride-1 4×4 convolution with
BatchNorm, and a stride-1 4×4 convolution to one channel: a map of real/fake logits, one
per overlapping patch. All activations are LeakyReLU(0.2). Convolutions start from
N(0, 0.02), BatchNorm scales from N(1, 0.02) with zero shifts.

Inputs are in [-1, 1] (:meth:`PatchDiscriminator.forward` takes frames in [0, 1] and maps
them). The smallest input side is :func:`min_input_side`.
"""

from __future__ import annotations

from torch import Tensor, nn

_KERNEL, _PAD, _MAX_MULT = 4, 1, 8


def min_input_side(layers: int) -> int:
    """The smallest input side that leaves at least one logit: each stride-2 layer
    halves the side, each of the two stride-1 4×4 convolutions (padding 1) takes one off."""
    return 3 * 2 ** layers


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3):
        super().__init__()
        if layers < 1 or channels < 1:
            raise ValueError(f"a PatchGAN needs layers >= 1 and channels >= 1, got {layers}, {channels}")
        self.channels, self.layers = channels, layers
        seq: list[nn.Module] = [nn.Conv2d(in_channels, channels, _KERNEL, 2, _PAD), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2 ** n, _MAX_MULT)
            stride = 2 if n < layers else 1  # the last of these keeps the resolution
            seq += [nn.Conv2d(channels * prev, channels * mult, _KERNEL, stride, _PAD, bias=False),
                    nn.BatchNorm2d(channels * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(channels * mult, 1, _KERNEL, 1, _PAD))
        self.main = nn.Sequential(*seq)
        self.apply(_init)

    def forward(self, x: Tensor) -> Tensor:
        """B×3×H×W frames in [0, 1] -> B×1×h×w patch logits."""
        return self.main(x * 2.0 - 1.0)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


__all__ = ["PatchDiscriminator", "min_input_side"]
