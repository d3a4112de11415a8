"""Rates and real coding of VQ indices (VQGAN / RVQ-VQGAN I-frames).

Three rates for a frame coded with L layers of a K-entry codebook, n = ceil(H/f)·ceil(W/f)
indices per layer, all over the ORIGINAL H·W pixels when turned into BPP:

- **uniform**: n · L · log2 K — every index costs its fixed-length code (the seed
  protocol's rule, counted per index, not per pixel);
- **entropy**: Σ -log2 p_l(index) under the stored per-layer frequency model p_l (the
  training-frame index counts, smoothed so every entry keeps at least FLOOR_MASS / K);
- **real**: 8 × the bytes of :func:`encode_payload`: the indices entropy-coded with
  CompressAI's rANS against that model's 16-bit quantised CDF (one CDF per layer,
  ``encode_with_indexes``), or packed at log2 K bits each when that is not smaller.
  So real ≤ uniform + :data:`FRAMING_BITS_MAX`, always. The *real-equivalent* estimate is
  min(information content under the quantised CDF, uniform): what the coder spends, less
  framing and the rANS flush.

Payload (version 1)::

    u8 version | u8 (raw << 7) | L | body | u32 crc32(grid h, grid w, everything before it)

``body`` is one rANS string (all layers, layer-major) or the packed indices
(big-endian bit order, ceil(n·L·log2 K / 8) bytes). Its length is fixed (raw) or bounded
by the raw size (rANS) given the frame size and L, so a header is checked before anything
is allocated; the CRC (which also covers the index grid, so a payload given the size of
another frame fails it) keeps damaged data away from the rANS decoder. Every problem is one
line (:class:`VQPayloadError`, a UserError and a ValueError).
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib

import numpy as np
import torch
from torch import Tensor

from dcvc_bench.errors import UserError

PAYLOAD_VERSION = 1
PRECISION = 16                 # CompressAI's entropy-coder precision
FLOOR_MASS = 1.0 / 256.0       # probability spread uniformly over all K entries of each layer
MAX_LAYERS = 127               # 7 bits in the payload header
_HEAD = struct.Struct(">BB")
_CRC = struct.Struct(">I")
_GRID = struct.Struct(">II")
#: Bytes around the coded indices: header and checksum.
FRAMING_BYTES = _HEAD.size + _CRC.size
#: real bits - uniform bits never exceeds this: framing plus padding to a whole byte.
FRAMING_BITS_MAX = 8 * FRAMING_BYTES + 7
#: A CompressAI rANS string is whole 32-bit words, at least its 64-bit final state. (Its
#: encoder also overruns its buffer when given a single symbol, so short frames go raw.)
RANS_MIN_BYTES, RANS_WORD = 8, 4


class VQPayloadError(UserError, ValueError):
    """A VQ payload that cannot be decoded: truncated, corrupted or not for this codec."""


def n_indices(height: int, width: int, f: int) -> int:
    """Indices per layer for a height×width frame: ceil(H/f) · ceil(W/f)."""
    return (-(-height // f)) * (-(-width // f))


def uniform_bits(height: int, width: int, f: int, layers: int, codebook_size: int) -> float:
    """n_indices · L · log2 K."""
    return n_indices(height, width, f) * layers * math.log2(codebook_size)


def raw_bytes(n_symbols: int, codebook_size: int) -> int:
    return -(-n_symbols * _bits_per_index(codebook_size) // 8)


def _bits_per_index(codebook_size: int) -> int:
    b = codebook_size.bit_length() - 1
    if codebook_size < 2 or 1 << b != codebook_size:
        raise ValueError(f"codebook size must be a power of two >= 2, got {codebook_size}")
    return b


def count_indices(indices: Tensor, codebook_size: int, layers: int) -> np.ndarray:
    """Per-layer histogram (layers×K int64) of B×L×h×w indices (L <= layers; -1 = dropped)."""
    counts = np.zeros((layers, codebook_size), dtype=np.int64)
    idx = indices.detach().cpu().long()
    for layer in range(min(idx.shape[1], layers)):
        values = idx[:, layer].reshape(-1)
        values = values[values >= 0]
        counts[layer] += np.bincount(values.numpy(), minlength=codebook_size)[:codebook_size]
    return counts


def model_pmf(counts: np.ndarray) -> np.ndarray:
    """layers×K float64: (1 - FLOOR_MASS) · counts / total + FLOOR_MASS / K per layer
    (uniform for a layer that was never counted)."""
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.shape[1]
    total = counts.sum(axis=1, keepdims=True)
    freq = np.divide(counts, total, out=np.full_like(counts, 1.0 / k), where=total > 0)
    return (1.0 - FLOOR_MASS) * freq + FLOOR_MASS / k


def quantized_cdfs(counts: np.ndarray) -> np.ndarray:
    """layers×(K+2) int32 CDFs for CompressAI's rANS: the model pmf plus an (unused) escape
    entry, quantised by CompressAI's ``pmf_to_quantized_cdf`` (every entry >= 1 count)."""
    from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf

    pmf = model_pmf(counts)
    rows = [pmf_to_quantized_cdf(torch.from_numpy(np.append(p, 0.0)).float(), PRECISION) for p in pmf]
    return torch.stack(rows).numpy().astype(np.int32)


class IndexTables:
    """The static per-layer model: counts (for the entropy rate) and the quantised CDFs
    (what rANS codes against, stored in the checkpoint so every decoder uses the very same
    tables)."""

    def __init__(self, counts: np.ndarray, cdfs: np.ndarray | None = None):
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[1] < 2 or (counts < 0).any():
            raise ValueError(f"index counts must be a layers×K array of counts >= 0, got shape {counts.shape}")
        self.layers, self.codebook_size = counts.shape
        self.bits_per_index = _bits_per_index(self.codebook_size)
        self.counts = counts
        self.cdfs = quantized_cdfs(counts) if cdfs is None else np.asarray(cdfs, dtype=np.int32)
        _check_cdfs(self.cdfs, self.layers, self.codebook_size)
        self._cdf_lists = [row.tolist() for row in self.cdfs]
        self._cdf_sizes = [self.codebook_size + 2] * self.layers
        self._offsets = [0] * self.layers
        freq = np.diff(self.cdfs.astype(np.int64), axis=1)[:, : self.codebook_size]
        self._cost = torch.from_numpy(PRECISION - np.log2(freq))             # bits, quantised CDF
        self._nll = torch.from_numpy(-np.log2(model_pmf(counts)))            # bits, model pmf

    def digest(self) -> str:
        return hashlib.sha256(self.cdfs.tobytes()).hexdigest()

    # --- rates of B×L×h×w indices, (B,) float64 bits

    def _per_sample(self, table: Tensor, indices: Tensor) -> Tensor:
        idx = indices.detach().cpu().long()
        b, n_layers = idx.shape[:2]
        if n_layers > self.layers:
            raise ValueError(f"{n_layers} layers of indices, the tables have {self.layers}")
        rows = torch.arange(n_layers).view(1, n_layers, 1)
        return table[rows, idx.reshape(b, n_layers, -1)].sum(dim=(1, 2))

    def entropy_bits(self, indices: Tensor) -> Tensor:
        return self._per_sample(self._nll, indices)

    def information_bits(self, indices: Tensor) -> Tensor:
        """Σ -log2 of each index's probability under the quantised CDF rANS uses."""
        return self._per_sample(self._cost, indices)

    def real_equivalent_bits(self, indices: Tensor) -> Tensor:
        n_symbols = indices[0].numel()
        uniform = float(n_symbols * self.bits_per_index)
        return self.information_bits(indices).clamp(max=uniform)

    # --- real coding of one frame's L×h×w indices

    def encode(self, indices: Tensor) -> bytes:
        """L×h×w indices of one frame -> payload."""
        idx = indices.detach().cpu().long()
        if idx.dim() != 3 or not 1 <= idx.shape[0] <= min(self.layers, MAX_LAYERS):
            raise ValueError(f"expected L×h×w indices with 1 <= L <= {self.layers}, got {tuple(idx.shape)}")
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.codebook_size):
            raise ValueError(f"indices must lie in 0..{self.codebook_size - 1}")
        n_layers = idx.shape[0]
        symbols = idx.reshape(-1).numpy()
        raw_size = raw_bytes(symbols.size, self.codebook_size)
        body, raw = _pack(symbols, self.bits_per_index, raw_size), True
        if raw_size > RANS_MIN_BYTES:
            from compressai.ans import RansEncoder

            layer_of = np.repeat(np.arange(n_layers), symbols.size // n_layers).tolist()
            rans = RansEncoder().encode_with_indexes(symbols.tolist(), layer_of, self._cdf_lists,
                                                     self._cdf_sizes, self._offsets)
            if len(rans) < raw_size:
                body, raw = rans, False
        head = _HEAD.pack(PAYLOAD_VERSION, (0x80 if raw else 0) | n_layers) + body
        return head + _CRC.pack(zlib.crc32(head, zlib.crc32(_GRID.pack(*idx.shape[1:]))))

    def decode(self, data: bytes, grid: tuple[int, int], expected_layers: int | None = None) -> Tensor:
        """Payload -> L×h×w int64 indices for a frame whose index grid is ``grid``.
        Everything is checked against the grid and the tables before anything is decoded."""
        data = bytes(data)
        if len(data) < FRAMING_BYTES + 1:
            raise VQPayloadError(f"VQ payload truncated: {len(data)} bytes, the smallest is {FRAMING_BYTES + 1}")
        version, flags = _HEAD.unpack_from(data, 0)
        if version != PAYLOAD_VERSION:
            raise VQPayloadError(f"VQ payload version {version} unknown (this build reads {PAYLOAD_VERSION}); "
                                 "the stream is damaged or from another dcvc-bench")
        raw, n_layers = bool(flags & 0x80), flags & 0x7F
        if not 1 <= n_layers <= self.layers:
            raise VQPayloadError(f"VQ payload says {n_layers} layers; this codec has 1..{self.layers} "
                                 "(damaged stream?)")
        if expected_layers is not None and n_layers != expected_layers:
            raise VQPayloadError(f"VQ payload has {n_layers} layers, this codec decodes {expected_layers}; "
                                 f"decode with the codec at layers={n_layers}")
        h, w = grid
        n_symbols = n_layers * h * w
        raw_size = raw_bytes(n_symbols, self.codebook_size)
        body_size = len(data) - FRAMING_BYTES
        if raw and body_size != raw_size:
            raise VQPayloadError(f"VQ payload truncated or padded: {body_size} bytes of packed indices, "
                                 f"a {h}×{w}×{n_layers} grid needs {raw_size}")
        if not raw and (body_size >= raw_size or body_size < RANS_MIN_BYTES or body_size % RANS_WORD):
            raise VQPayloadError(f"VQ payload truncated or damaged: {body_size} bytes of rANS data is not a valid "
                                 f"length for a {h}×{w}×{n_layers} grid (whole 4-byte words, under {raw_size})")
        (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
        if zlib.crc32(data[: -_CRC.size], zlib.crc32(_GRID.pack(h, w))) != crc:
            raise VQPayloadError(f"VQ payload checksum mismatch: the stream is corrupted or not for a frame "
                                 f"with a {h}×{w} index grid")
        body = data[_HEAD.size : -_CRC.size]
        if raw:
            symbols = _unpack(body, self.bits_per_index, n_symbols)
        else:
            from compressai.ans import RansDecoder

            layer_of = np.repeat(np.arange(n_layers), h * w).tolist()
            values = RansDecoder().decode_with_indexes(body, layer_of, self._cdf_lists, self._cdf_sizes,
                                                       self._offsets)
            symbols = np.asarray(values, dtype=np.int64)
            if symbols.size != n_symbols or (symbols < 0).any() or (symbols >= self.codebook_size).any():
                raise VQPayloadError("VQ payload decodes to indices outside the codebook: the stream is damaged")
        return torch.from_numpy(symbols.astype(np.int64)).reshape(n_layers, h, w)


def _check_cdfs(cdfs: np.ndarray, layers: int, k: int) -> None:
    if cdfs.shape != (layers, k + 2):
        raise ValueError(f"CDF tables must be {layers}×{k + 2}, got {cdfs.shape}")
    steps = np.diff(cdfs.astype(np.int64), axis=1)
    if (cdfs[:, 0] != 0).any() or (cdfs[:, -1] != 1 << PRECISION).any() or (steps < 1).any():
        raise ValueError(f"CDF tables are not {PRECISION}-bit CDFs with every entry >= 1 count")


def _pack(symbols: np.ndarray, bits: int, size: int) -> bytes:
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    bitmat = ((symbols.astype(np.int64)[:, None] >> shifts) & 1).astype(np.uint8)
    out = np.packbits(bitmat.reshape(-1)).tobytes()
    assert len(out) == size
    return out


def _unpack(body: bytes, bits: int, n_symbols: int) -> np.ndarray:
    flat = np.unpackbits(np.frombuffer(body, dtype=np.uint8))[: n_symbols * bits]
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat.reshape(n_symbols, bits).astype(np.int64) @ weights


__all__ = [
    "FLOOR_MASS",
    "FRAMING_BITS_MAX",
    "FRAMING_BYTES",
    "PAYLOAD_VERSION",
    "IndexTables",
    "VQPayloadError",
    "count_indices",
    "model_pmf",
    "n_indices",
    "quantized_cdfs",
    "raw_bytes",
    "uniform_bits",
]
