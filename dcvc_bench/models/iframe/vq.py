"""The VQ I-frame family: VQGAN (one codebook) and RVQ-VQGAN (N residual codebooks, any
first L used), behind the I-frame codec interface.

- ``estimate(x)``: the reconstruction and the real-equivalent bits (information content
  of the indices under the stored CDF, capped at the uniform rate: what the coder
  spends, less framing). ``rates(x)`` gives all three: uniform, entropy, real-equivalent.
- ``encode``/``decode``: the indices, rANS-coded (see :mod:`dcvc_bench.models.vq_coding`);
  decoding runs the same indices -> pixels path as ``estimate``, so both agree bit for bit.
- ``identity()`` covers the config, the weights, the CDF tables and the depth L.
- Rate knob (RVQ): ``layers``; ``with_rate(L)`` is the same codec at depth L <= N.

The checkpoint format, its writer and loader: :mod:`dcvc_bench.models.iframe.vq_checkpoint`.
"""

from __future__ import annotations

import copy
import hashlib
import os
from typing import Any

import torch
from torch import Tensor

from dcvc_bench.curriculum.iframe_spec import RVQSpec, VQGANSpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.base import IFrameCodec, IFrameResult, check_batch, check_size, hash_state_dict
from dcvc_bench.models.iframe.vq_checkpoint import (CHECKPOINT_FORMAT, fit_index_counts, is_vq_checkpoint,
                                                    load_vq_checkpoint, peek_vq_family, refresh_index_tables,
                                                    save_vq_checkpoint, vq_checkpoint_family, vq_checkpoint_state)
from dcvc_bench.models.iframe.vq_config import VQConfig
from dcvc_bench.models.vq_coding import FRAMING_BYTES, IndexTables, uniform_bits
from dcvc_bench.models.vqgan import VQGAN, grid_size

# --------------------------------------------------------------------------- codecs


class _EvalMode:
    """Eval mode for the duration of a coding call; a model in training comes back to it."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.was = self.model.training
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was)


class VQCodec(IFrameCodec):
    """Shared by both families; ``layers`` is the depth used (1 for VQGAN)."""

    framing_bytes = FRAMING_BYTES  # payload version, flags and CRC-32 around the indices

    family = "vq"
    rate_knob: str | None = None

    def __init__(self, model: VQGAN, tables: IndexTables, *, layers: int | None = None,
                 spec: VQGANSpec | RVQSpec | None = None, device: str | torch.device = "cpu"):
        if model.cfg.family != self.family:
            raise UserError(f"a {model.cfg.family!r} checkpoint cannot make a {self.family!r} I-frame codec; "
                            f"use --i_frame_type {model.cfg.family}")
        depth = model.depth
        layers = depth if layers is None else layers
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= depth:
            raise UserError(f"{self.family} I-frame codec: layers {layers!r} out of range; this checkpoint was "
                            f"trained with {depth} (use 1..{depth})")
        self.model = model.to(device)
        self.tables = tables
        self.layers = layers
        self.spec = spec
        self.device = torch.device(device)
        cfg = model.cfg
        self.downsampling, self.codebook_size = cfg.downsampling, cfg.codebook_size
        self.name = f"{self.family}-f{self.downsampling}-K{self.codebook_size}-L{layers}"
        digest = hashlib.sha256()
        digest.update(cfg.to_json().encode())
        digest.update(hash_state_dict(model.state_dict()).encode())
        digest.update(tables.digest().encode())
        self._weights_digest = digest.hexdigest()

    @classmethod
    def from_files(cls, config: str | os.PathLike[str] | None, checkpoint: str | os.PathLike[str], *,
                   layers: int | None = None, spec: VQGANSpec | RVQSpec | None = None,
                   device: str | torch.device = "cpu") -> VQCodec:
        """From the JSON config (None: the one stored in the checkpoint) and the checkpoint;
        the spec defaults to one naming these files."""
        cfg = VQConfig.from_json(config, what="--vqgan_config") if config is not None else None
        model, tables = load_vq_checkpoint(checkpoint, cfg)
        if spec is None and config is not None:
            spec = cls._spec_type(config=str(config), checkpoint=str(checkpoint), layers=layers)
        return cls(model, tables, layers=layers, spec=spec, device=device)

    @staticmethod
    def _spec_type(config: str, checkpoint: str, layers: int | None) -> VQGANSpec | RVQSpec:
        raise NotImplementedError

    @classmethod
    def untrained(cls, config: str | os.PathLike[str], layers: int | None = None,
                  device: str | torch.device = "cpu", seed: int = 0) -> VQCodec:
        """The network of ``config`` with random weights and its codebooks k-means-initialised
        on random pixels (tables fitted on them): the arithmetic of a trained codec, for
        timing only (:attr:`random_weights` is True; it has no spec)."""
        cfg = VQConfig.from_json(config, what="--config")
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = VQGAN(cfg)
        side = 4 * cfg.downsampling
        frames = torch.rand(2, 3, side, side, generator=gen)
        with torch.no_grad():
            seq = model.encode_latent(frames).flatten(2).transpose(1, 2)
            # at least K distinct vectors for k-means: jittered copies of the real latents
            reps = -(-cfg.codebook_size // seq.shape[1]) + 1
            seq = seq.repeat(1, reps, 1)
            seq = seq + 0.05 * seq.std() * torch.randn(seq.shape, generator=gen)
            model.train()
            for _ in range(256):  # RVQ's quantize_dropout skips deep layers on some calls
                model.quantize(seq)
                if model.codebooks_initialised():
                    break
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        codec = cls(model, IndexTables(fit_index_counts(model, [frames])), layers=layers, device=device)
        codec._untrained = True
        return codec

    _untrained = False

    @property
    def random_weights(self) -> bool:
        return self._untrained

    @classmethod
    def from_spec(cls, spec: VQGANSpec | RVQSpec, device: str | torch.device = "cpu") -> VQCodec:
        """From a ``VQGANSpec``/``RVQSpec`` (``config``, ``checkpoint``, RVQ ``layers``)."""
        return cls.from_files(spec.config, spec.checkpoint, layers=getattr(spec, "layers", None), spec=spec,
                              device=device)

    def identity(self) -> str:
        return f"{self.name}:sha256:{self._weights_digest}"

    # --- rate knob

    def with_rate(self, value: int) -> VQCodec:
        raise UserError(f"the {self.family} I-frame codec has no rate knob: its rate is fixed by the codebook "
                        f"size K={self.codebook_size} and f={self.downsampling}")

    # --- estimation

    def _prepare(self, x: Tensor) -> Tensor:
        return x.detach().to(self.device, torch.float32).clamp(0, 1)

    @torch.no_grad()
    def _indices(self, x: Tensor) -> Tensor:
        with _EvalMode(self.model), torch.autocast(device_type=self.device.type, enabled=False):
            return self.model.encode_indices(self._prepare(x), self.layers)

    @torch.no_grad()
    def _pixels(self, indices: Tensor, size: tuple[int, int]) -> Tensor:
        with _EvalMode(self.model), torch.autocast(device_type=self.device.type, enabled=False):
            return self.model.decode_indices(indices.to(self.device), size)

    def estimate(self, x: Tensor) -> IFrameResult:
        check_batch(x, single=False)
        idx = self._indices(x)
        x_hat = self._pixels(idx, (x.shape[2], x.shape[3]))
        bits = self.tables.real_equivalent_bits(idx)
        return IFrameResult(x_hat=x_hat.to(x.device), bits=bits.to(x.device, torch.float32))

    def rates(self, x: Tensor) -> dict[str, Tensor]:
        """(B,) bits per frame: ``uniform`` (n·L·log2 K), ``entropy`` (under the stored
        frequency model) and ``real_equivalent`` (what :meth:`estimate` reports). Divide
        by H·W of the original frame for BPP."""
        check_batch(x, single=False)
        idx = self._indices(x)
        uniform = uniform_bits(x.shape[2], x.shape[3], self.downsampling, self.layers, self.codebook_size)
        return {
            "uniform": torch.full((x.shape[0],), uniform, dtype=torch.float64),
            "entropy": self.tables.entropy_bits(idx),
            "real_equivalent": self.tables.real_equivalent_bits(idx),
        }

    # --- real coding

    def encode(self, x: Tensor) -> bytes:
        check_batch(x, single=True)
        return self.tables.encode(self._indices(x)[0])

    def decode(self, data: bytes, size: tuple[int, int]) -> Tensor:
        h, w = check_size(size)
        idx = self.tables.decode(data, grid_size(h, w, self.downsampling), expected_layers=self.layers)
        return self._pixels(idx.unsqueeze(0), (h, w)).cpu()

    # --- training

    def trainable(self) -> torch.nn.Module:
        """The VQGAN module (built frozen: the training step enables its gradients)."""
        return self.model

    def training_forward(self, x: Tensor) -> dict[str, Any]:
        """One pass in the module's current mode (train mode: EMA codebook updates and, for
        RVQ, a random depth per call). ``bits`` is the uniform rate at the depth used: a VQ
        rate has no gradient (it is fixed by K, f and the depth), so training optimises
        distortion plus ``codebook_loss`` (commitment)."""
        check_batch(x, single=False)
        out = self.model(x.to(self.device, torch.float32))
        bits = uniform_bits(x.shape[2], x.shape[3], self.downsampling, out["depth"], self.codebook_size)
        out["bits"] = torch.full((x.shape[0],), bits, device=x.device)
        return out


class VQGANCodec(VQCodec):
    """VQGAN I-frame codec (``--i_frame_type vqgan``): one codebook."""

    family = "vqgan"

    @staticmethod
    def _spec_type(config: str, checkpoint: str, layers: int | None) -> VQGANSpec:
        return VQGANSpec(config=config, checkpoint=checkpoint)


class RVQCodec(VQCodec):
    """RVQ-VQGAN I-frame codec (``--i_frame_type rvq``): the first ``layers`` of N codebooks."""

    family = "rvq"
    rate_knob = "layers"

    @staticmethod
    def _spec_type(config: str, checkpoint: str, layers: int | None) -> RVQSpec:
        return RVQSpec(config=config, checkpoint=checkpoint, layers=layers)

    def with_rate(self, value: int) -> RVQCodec:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self.model.depth:
            raise UserError(f"--rvq_layers {value!r} is out of range: this RVQ checkpoint was trained with "
                            f"{self.model.depth} layers (use 1..{self.model.depth})")
        other = copy.copy(self)  # shares the network and tables; the weights digest stays valid
        other.layers = value
        other.name = f"{self.family}-f{self.downsampling}-K{self.codebook_size}-L{value}"
        if self.spec is not None:
            other.spec = self.spec.with_settings(layers=value)
        return other


def build_vqgan(spec: VQGANSpec, device: str = "cpu") -> VQGANCodec:
    """The registry's builder for ``type = "vqgan"``."""
    return VQGANCodec.from_spec(spec, device=device)


def build_rvq(spec: RVQSpec, device: str = "cpu") -> RVQCodec:
    """The registry's builder for ``type = "rvq"``."""
    return RVQCodec.from_spec(spec, device=device)

__all__ = [
    "CHECKPOINT_FORMAT",
    "RVQCodec",
    "VQCodec",
    "VQGANCodec",
    "build_rvq",
    "build_vqgan",
    "fit_index_counts",
    "is_vq_checkpoint",
    "load_vq_checkpoint",
    "peek_vq_family",
    "refresh_index_tables",
    "save_vq_checkpoint",
    "vq_checkpoint_family",
    "vq_checkpoint_state",
]
