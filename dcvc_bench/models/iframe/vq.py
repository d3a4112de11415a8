"""The VQ I-frame family: VQGAN (one codebook) and RVQ-VQGAN (N residual codebooks, any
first L used), behind the I-frame codec interface.

- ``estimate(x)``: the reconstruction and the real-equivalent bits (information content
  of the indices under the stored CDF, capped at the uniform rate: what the coder
  spends, less framing). ``rates(x)`` gives all three: uniform, entropy, real-equivalent.
- ``encode``/``decode``: the indices, rANS-coded (see :mod:`dcvc_bench.models.vq_coding`);
  decoding runs the same indices -> pixels path as ``estimate``, so both agree bit for bit.
- ``identity()`` covers the config, the weights, the CDF tables and the depth L.
- Rate knob (RVQ): ``layers``; ``with_rate(L)`` is the same codec at depth L <= N.

Checkpoint (``torch.save`` of plain data, loaded with ``weights_only=True``)::

    {"format": "dcvc-bench-vq", "format_version": 1,
     "config": <the JSON config, defaults filled in>, "state_dict": {...},
     "index_counts": int64 N×K (training-frame index histogram per layer),
     "cdfs": int32 N×(K+2) (the quantised CDFs fitted on those counts)}
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dcvc_bench.checkpoints import atomic_file
from dcvc_bench.curriculum.iframe_spec import RVQSpec, VQGANSpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.base import IFrameCodec, IFrameResult, check_batch, check_size, hash_state_dict
from dcvc_bench.models.iframe.vq_config import VQConfig
from dcvc_bench.models.vq_coding import IndexTables, count_indices, uniform_bits
from dcvc_bench.models.vqgan import VQGAN, grid_size

CHECKPOINT_FORMAT = "dcvc-bench-vq"
CHECKPOINT_VERSION = 1
_KEYS = ("format", "format_version", "config", "state_dict", "index_counts")


# --------------------------------------------------------------------------- checkpoint


def save_vq_checkpoint(path: str | os.PathLike[str], model: VQGAN, index_counts: np.ndarray,
                       tables: IndexTables | None = None) -> Path:
    """Atomically write a VQ checkpoint (the project's one writer). ``tables`` defaults to
    the tables fitted on ``index_counts``."""
    state = vq_checkpoint_state(model, index_counts, tables)
    path = Path(path)
    with atomic_file(path) as fh:
        torch.save(state, fh)
    return path


def vq_checkpoint_state(model: VQGAN, index_counts: np.ndarray, tables: IndexTables | None = None) -> dict[str, Any]:
    """The content of a VQ checkpoint (module docstring); the I-frame training step adds
    its training keys to it."""
    tables = tables if tables is not None else IndexTables(index_counts)
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "index_counts": torch.from_numpy(np.asarray(index_counts, dtype=np.int64).copy()),
        "cdfs": torch.from_numpy(tables.cdfs.copy()),
    }


def is_vq_checkpoint(obj: Any) -> bool:
    """Whether a loaded object is a VQ checkpoint (lets other families refuse it by name)."""
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def vq_checkpoint_family(obj: Any) -> str | None:
    """The family (``vqgan``/``rvq``) a loaded VQ checkpoint's config names, else None."""
    if not is_vq_checkpoint(obj):
        return None
    family = obj.get("config", {}).get("family") if isinstance(obj.get("config"), dict) else None
    return family if isinstance(family, str) else "vqgan/rvq"


def peek_vq_family(path: str | os.PathLike[str]) -> str | None:
    """The family of the VQ checkpoint at ``path`` (read as data, memory-mapped: the
    weights are not read), or None when it is not one or cannot be read. Never raises."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, pickled code, unreadable: not a VQ checkpoint here
        return None
    return vq_checkpoint_family(state)


def load_vq_checkpoint(path: str | os.PathLike[str], config: VQConfig | None = None,
                       flag: str = "--vqgan_checkpoint") -> tuple[VQGAN, IndexTables]:
    """The network (eval mode, frozen) and its index tables. With ``config`` (the JSON the
    user names) the checkpoint must have been made with exactly that config; every
    mismatch is one line naming the key."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{flag}: VQ checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{flag}: {path} carries pickled objects that weights_only loading refuses "
                        f"({first[:160]}); a VQ checkpoint is plain data") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"{flag}: {path} is not a readable checkpoint ({type(exc).__name__}: {first[:120]}); "
                        "it may be truncated") from None
    if not is_vq_checkpoint(state):
        raise UserError(f"{flag}: {path} is not a dcvc-bench VQ checkpoint (no format '{CHECKPOINT_FORMAT}'); "
                        "a VQ codec needs the file its training wrote")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise UserError(f"{flag}: {path} lacks {', '.join(missing)}; it is damaged or from an unfinished write")
    if state["format_version"] != CHECKPOINT_VERSION:
        raise UserError(f"{flag}: {path} is VQ checkpoint version {state['format_version']}; "
                        f"this build reads version {CHECKPOINT_VERSION}")
    saved = VQConfig.from_dict(state["config"], where=f"{flag} {path} (its stored config)")
    if config is not None and config != saved:
        key, a, b = _first_difference(saved.to_dict(), config.to_dict())
        raise UserError(f"{flag}: {path} does not fit the config: {key!r} is {a} in the checkpoint, {b} in the "
                        "config; use the config it was trained with")
    model = VQGAN(saved)
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).strip().splitlines()[:2])[:300]
        raise UserError(f"{flag}: {path} weights do not fit its config ({saved.family}, f={saved.downsampling}, "
                        f"K={saved.codebook_size}): {detail}") from None
    if not model.codebooks_initialised():
        raise UserError(f"{flag}: {path} has codebooks that were never initialised (never trained); "
                        "train it before coding with it")
    counts, cdfs = state["index_counts"], state.get("cdfs")
    shape = (saved.num_quantizers, saved.codebook_size)
    if not isinstance(counts, Tensor) or tuple(counts.shape) != shape:
        got = tuple(counts.shape) if isinstance(counts, Tensor) else type(counts).__name__
        raise UserError(f"{flag}: {path} index_counts must be {shape[0]}×{shape[1]} (layers × K), got {got}")
    try:
        tables = IndexTables(counts.numpy(), None if cdfs is None else cdfs.numpy())
    except (ValueError, AttributeError) as exc:
        raise UserError(f"{flag}: {path} has unusable index tables: {exc}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tables


def _first_difference(a: dict, b: dict, prefix: str = "") -> tuple[str, Any, Any]:
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = _first_difference(x, y, f"{prefix}{key}.")
            if found[0]:
                return found
        elif x != y:
            return f"{prefix}{key}", x, y
    return "", None, None


@torch.no_grad()
def fit_index_counts(model: VQGAN, frames: Iterable[Tensor], device: str | torch.device = "cpu") -> np.ndarray:
    """N×K index histogram of ``frames`` (batches B×3×H×W in [0, 1]) at full depth; the
    static CDF tables are fitted on it."""
    was = model.training
    model.eval()
    counts = np.zeros((model.depth, model.cfg.codebook_size), dtype=np.int64)
    try:
        for x in frames:
            idx = model.encode_indices(x.to(device, torch.float32), model.depth)
            counts += count_indices(idx, model.cfg.codebook_size, model.depth)
    finally:
        model.train(was)
    return counts


def refresh_index_tables(checkpoint: str | os.PathLike[str], frames: Iterable[Tensor]) -> IndexTables:
    """Re-fit a checkpoint's counts and CDFs on ``frames`` and rewrite it atomically."""
    model, _ = load_vq_checkpoint(checkpoint)
    counts = fit_index_counts(model, frames)
    tables = IndexTables(counts)
    save_vq_checkpoint(checkpoint, model, counts, tables)
    return tables


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
