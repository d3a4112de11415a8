"""The I-frame codec interface: what every family (one module each in this package)
provides, and the helpers they share.

Training, estimation eval and real coding all go through :class:`IFrameCodec`:

- ``estimate(x)`` gives the reconstruction and the bits a frame *would* cost. It is what
  the training loop and estimation eval use (fast, batched).
- ``encode(x)`` / ``decode(data, size)`` produce and read real bytes; real-coding eval
  counts ``8 * len(bytes)``.

Every codec is frozen: P-frame training never trains it, so ``estimate`` runs in eval
mode under ``torch.no_grad`` with autocast off (bits in fp16 would be wrong).
"""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dcvc_bench.curriculum.iframe_spec import IFrameSpec
from dcvc_bench.errors import UserError

RANDOM_WEIGHTS_WARNING = "I-frame codec has random weights; numbers are not meaningful"


@dataclass
class IFrameResult:
    """``x_hat``: B×3×H×W in [0, 1]; ``bits``: (B,) float, the cost of each sample."""

    x_hat: Tensor
    bits: Tensor


class IFrameCodec(abc.ABC):
    """A frozen image codec for the first frame of each GOP, built from its spec.

    Inference: :meth:`estimate`, :meth:`encode`, :meth:`decode`, :meth:`identity`.
    Training (an I-frame training step; P-frame training never trains the I-frame codec):
    :meth:`trainable` and :meth:`training_forward`. Rate: :attr:`rate_knob` and
    :meth:`with_rate`. Reporting: :meth:`rates`, :attr:`random_weights`,
    :attr:`exact_estimate`.
    """

    spec: IFrameSpec
    name: str
    rate_knob: str | None = None
    """The spec field that changes the rate without other weights (e.g. ``"layers"``), or None."""
    framing_bytes: int = 0
    """Bytes of every payload that are the codec's own framing (version, flags, checksum),
    not coded data: evaluation reports the coded data without them."""

    @abc.abstractmethod
    def identity(self) -> str:
        """Stable string naming codec, settings and weights; stored in bitstream headers
        so a decoder can refuse a stream made with another I-frame codec. It covers every
        spec field that changes the stream and the weights (hashed), not where the weights
        were read from."""

    @abc.abstractmethod
    def estimate(self, x: Tensor) -> IFrameResult:
        """B×3×H×W in [0, 1] -> reconstruction (clamped to [0, 1]) and bits per sample."""

    @abc.abstractmethod
    def encode(self, x: Tensor) -> bytes:
        """1×3×H×W in [0, 1] -> the real bitstream of that frame."""

    @abc.abstractmethod
    def decode(self, data: bytes, size: tuple[int, int]) -> Tensor:
        """Bytes from :meth:`encode` and the frame's (H, W) -> 1×3×H×W in [0, 1], on
        the CPU (the caller moves it). Raises ValueError on malformed data."""

    # --- training

    def trainable(self) -> torch.nn.Module | None:
        """The module an I-frame training step optimises, or None (nothing to train). The
        codec is built frozen (eval mode, no gradients): the training step switches the
        module to train mode and enables its gradients, and rebuilds the codec from the
        saved weights afterwards (the identity and coding tables are made at build time)."""
        return None

    def training_forward(self, x: Tensor) -> dict[str, Tensor]:
        """B×3×H×W in [0, 1] -> at least ``x_hat`` (B×3×H×W) and ``bits`` ((B,), a
        differentiable estimate), plus the family's own loss terms (e.g. ``aux_loss``,
        ``codebook_loss``), through :meth:`trainable`'s parameters."""
        raise NotImplementedError(f"the {self.spec.type} I-frame codec ({self.name}) has no training forward")

    # --- rate

    def with_rate(self, value: Any) -> IFrameCodec:
        """The same codec with :attr:`rate_knob` set to ``value``; a UserError (one line)
        when the value is out of range or the codec has no rate knob."""
        raise UserError(f"the {self.spec.type} I-frame codec ({self.name}) has no rate setting to change")

    def rates(self, x: Tensor) -> dict[str, Tensor]:
        """Other rate measures of ``x`` for reporting, e.g. ``{"uniform": bits (B,)}``;
        empty when the codec has none."""
        return {}

    # --- reporting

    @property
    def random_weights(self) -> bool:
        """True when the weights are random (results then mean nothing)."""
        return False

    @property
    def exact_estimate(self) -> bool:
        """True when :meth:`estimate` is a real encode + decode (its bits are real)."""
        return False

    def check(self, data: bytes, size: tuple[int, int]) -> None:
        """Cheap checks of untrusted bytes as a frame of (H, W) ``size``, without decoding
        (a stream is checked whole before its first frame is decoded): raises ValueError.
        By default nothing; :meth:`decode` checks what it reads either way."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------- helpers


def check_batch(x: Tensor, *, single: bool) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a B×3×H×W tensor, got {shape}")
    if single and x.shape[0] != 1:
        raise ValueError(f"encode takes one frame (1×3×H×W), got batch size {x.shape[0]}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"empty frame: {tuple(x.shape)}")


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def hash_state_dict(state: dict[str, Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes: equal iff the weights are equal."""
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()

