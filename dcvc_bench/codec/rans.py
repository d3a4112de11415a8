"""CompressAI's rANS coder as the codecs use it: an entropy model's CDF tables in the
form it takes (:class:`RansTables`), the exact cost of coded symbols, and two guards on
streams it reads.

What a stream can hold, and what it must be. CompressAI's decoder reads its stream with
no bounds check, so two facts about its 64-bit rANS (16-bit probabilities, 32-bit
renormalisation) guard it. (1) A lower bound: decoding one symbol whose table's most
probable symbol has frequency f shrinks the state x (always >= 2^31) to at most
``x·(f/M + (M−f)/2^31)``, M = 2^16; an escape costs 4 more bits (its bypass count). Each
32-bit word read grows log2(x) by at most 32 + log2(1 + 2^-15), and the state starts
below 2^64 and ends at or above 2^31. So decoding symbols whose bounds sum to B bits
needs at least (B − 33) / (32 + log2(1 + 2^-15)) words: :meth:`RansTables.min_bits` and
:func:`rans_min_bytes` let a caller refuse, before decoding, a stream too short for
the shapes it claims. (2) An exact check: a valid stream is exactly the encoder's output
for the symbols it decodes to (rANS decoding inverts encoding, ending in the encoder's
initial state at the last byte), so :class:`RansLog` re-encodes what was decoded and
any other bytes — trailing, altered, or a decoder that read past the end — are refused.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()  # compressai imports torchvision; see dcvc_bench/compat.py

from compressai.ans import BufferedRansEncoder, RansDecoder  # noqa: E402
from compressai.entropy_models import EntropyModel  # noqa: E402

__all__ = ["RansLog", "RansStreamError", "RansTables", "rans_min_bytes"]


class RansTables:
    """An entropy model's CDF tables as lists (what CompressAI's rANS coder takes), rows
    trimmed to their length: the coder never reads past it, and the per-call list
    conversion in the decoder stays small."""

    def __init__(self, model: EntropyModel):
        if model.quantized_cdf.numel() == 0:
            raise ValueError(f"{type(model).__name__} has no CDF tables; call update(force=True) first")
        self.lengths = model.cdf_length.reshape(-1).tolist()
        self.cdfs = [row[:n] for row, n in zip(model.quantized_cdf.tolist(), self.lengths)]
        self.offsets = model.offset.reshape(-1).tolist()
        self._starts = [0, *itertools.accumulate(self.lengths)]  # where each table starts, laid end to end

    def encode(self, encoder: BufferedRansEncoder, symbols: Tensor, indexes: Tensor) -> None:
        # numpy's tolist builds the lists about twice as fast as torch's.
        encoder.encode_with_indexes(_as_list(symbols), _as_list(indexes), self.cdfs, self.lengths, self.offsets)

    def decode(self, decoder: RansDecoder, indexes: Tensor, log: RansLog | None = None) -> Tensor:
        """The next ``indexes.numel()`` symbols, shaped like ``indexes`` (recorded in
        ``log`` when given, to check the stream afterwards). CompressAI converts every
        table it is handed on every call (27k integers for DCVC's Gaussian, about as long
        as decoding a thousand symbols), so the call gets only tables these indexes use,
        renumbered: the same tables per symbol, hence the same symbols. That is the span
        of indexes from the least to the greatest used (a few numpy ops: the tables of
        neighbouring scales are what one step uses) unless its tables hold more than
        :data:`_SPAN_BUDGET` integers; then exactly the used ones."""
        flat = indexes.reshape(-1).cpu().numpy()
        if flat.size == 0:
            return indexes.new_zeros(indexes.shape, dtype=torch.int32)
        lo, hi = int(flat.min()), int(flat.max()) + 1
        if self._starts[hi] - self._starts[lo] <= _SPAN_BUDGET:
            local, cdfs, lengths, offsets = flat - lo, self.cdfs[lo:hi], self.lengths[lo:hi], self.offsets[lo:hi]
        else:
            used, local = np.unique(flat, return_inverse=True)
            cdfs, lengths, offsets = ([values[i] for i in used.tolist()] for values in (self.cdfs, self.lengths, self.offsets))
        values = decoder.decode_stream(local.tolist(), cdfs, lengths, offsets)
        # np.array converts a list of ints about twice as fast as torch.tensor.
        symbols = torch.from_numpy(np.array(values, dtype=np.int32)).to(indexes.device).reshape(indexes.shape)
        if log is not None:
            log.add(self, symbols, indexes)
        return symbols

    def min_bits(self) -> list[float]:
        """Per table, a lower bound on the bits that decoding one symbol takes from the
        rANS state (see the module docstring): from the most probable symbol's frequency,
        or the escape's plus its 4-bit bypass count, whichever is smaller."""
        bounds = []
        for cdf in self.cdfs:
            freqs = [b - a for a, b in zip(cdf, cdf[1:])]
            candidates = [_RANS_BYPASS_BITS + _state_decrease(freqs[-1])]  # the escape symbol
            if len(freqs) > 1:
                candidates.append(_state_decrease(max(freqs[:-1])))
            bounds.append(min(candidates))
        return bounds

    def code_length(self, symbols: Tensor, indexes: Tensor) -> Tensor:
        """Bits that CompressAI's rANS coder spends on each symbol (float64, shaped like
        ``symbols``): the information content under the 16-bit quantised CDF it codes
        with, ``16 − log2(cdf[v+1] − cdf[v])`` for ``v = symbol − offset`` inside the
        table, and for a symbol outside it the escape slot's cost plus the bypass words
        the coder writes (4 bits each: the raw value ``−2v−1`` below the table or
        ``2(v − max)`` above it in 4-bit nibbles, preceded by their count in 4-bit words
        with 15 meaning "15 more follow"). What the stream costs beyond the sum is only
        the coder's final-state flush. Encoding and this sum read the same tables."""
        cdf, length, offset = self._tensors(symbols.device)
        idx = indexes.reshape(-1).long()
        value = symbols.reshape(-1).long() - offset[idx]
        top = length[idx] - 2                      # the escape slot
        escape = (value < 0) | (value >= top)
        slot = torch.where(escape, top, value)
        freq = cdf[idx, slot + 1] - cdf[idx, slot]
        bits = _RANS_PRECISION - torch.log2(freq.double())
        raw = torch.where(value < 0, -2 * value - 1, 2 * (value - top))[escape]
        nibbles = torch.zeros_like(raw)
        while bool((raw >> (4 * nibbles)).gt(0).any()):
            nibbles += (raw >> (4 * nibbles)).gt(0).long()
        bits[escape] += _RANS_BYPASS_BITS * (nibbles + nibbles // _RANS_BYPASS_MAX + 1).double()
        return bits.reshape(symbols.shape)

    def _tensors(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The tables as padded tensors (for :meth:`code_length`), built once per device."""
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != device:
            width = max(self.lengths)
            cdf = torch.full((len(self.cdfs), width), 1 << _RANS_PRECISION, dtype=torch.long)
            for row, values in enumerate(self.cdfs):
                cdf[row, :len(values)] = torch.tensor(values, dtype=torch.long)
            cached = (device, cdf.to(device), torch.tensor(self.lengths, device=device),
                      torch.tensor(self.offsets, device=device))
            self._cache = cached
        return cached[1], cached[2], cached[3]


#: CompressAI's rANS: 16-bit probabilities, a 64-bit state kept in [2^31, 2^63) by 32-bit
#: renormalisation, escapes followed by 4-bit bypass fields.
_RANS_PRECISION, _RANS_LOW, _RANS_BYPASS_BITS = 16, 1 << 31, 4
_RANS_BYPASS_MAX = 15  # a bypass count of 15 means "15 more follow"
_RANS_WORD_GROWTH = 32 + math.log2(1 + 2.0 ** -15)


#: The most table integers :meth:`RansTables.decode` hands over to skip finding exactly
#: which tables a call uses (np.unique costs about as much as converting 15k).
_SPAN_BUDGET = 8192


def _as_list(values: Tensor) -> list[int]:
    """A tensor's values as a flat list of ints (what CompressAI's coder takes)."""
    return values.reshape(-1).cpu().numpy().tolist()


def _state_decrease(freq: int) -> float:
    """Least log2 decrease of a state x >= 2^31 decoding a symbol of frequency ``freq``."""
    total = 1 << _RANS_PRECISION
    return -math.log2(freq / total + (total - freq) / _RANS_LOW)


def rans_min_bytes(bits: float) -> int:
    """The shortest rANS stream (the 8-byte initial state, then 32-bit words) that can hold
    symbols whose :meth:`RansTables.min_bits` bounds sum to ``bits``: a shorter one makes
    the decoder read past its end."""
    bits *= 1 - 1e-9  # float rounding must never refuse a valid stream
    return 8 + 4 * math.ceil(max(0.0, bits - 33) / _RANS_WORD_GROWTH)


class RansStreamError(ValueError):
    """A rANS stream that is not the encoder's output for the symbols it decodes to."""


class RansLog:
    """The symbols a rANS decoder produced, in stream order, with their tables and CDF
    indexes. :meth:`check` re-encodes them: a valid stream is exactly those bytes."""

    #: Larger decoded values cannot come from our encoder (CompressAI's bypass coding of
    #: them would overflow), and re-encoding them could make CompressAI's encoder loop:
    #: it counts 4-bit bypass chunks while ``raw_val >> 4n`` is not 0, and ``raw_val`` =
    #: 2·|symbol − offset| (+1) reaching 2^28 makes the shift 32 bits (masked to 0 on x86):
    #: an endless loop. A symbol of −253,930,400 (< 2^28) decoded from a forged 16×16
    #: P payload did that; 2^26 leaves the offsets (a table's length at most) the margin.
    MAX_SYMBOL = 1 << 26

    def __init__(self) -> None:
        self._parts: list[tuple[RansTables, list[Tensor], list[Tensor]]] = []

    def add(self, tables: RansTables, symbols: Tensor, indexes: Tensor) -> None:
        if self._parts and self._parts[-1][0] is tables:  # one encode call per run of one table set
            self._parts[-1][1].append(symbols.reshape(-1))
            self._parts[-1][2].append(indexes.reshape(-1))
        else:
            self._parts.append((tables, [symbols.reshape(-1)], [indexes.reshape(-1)]))

    def check(self, data: bytes) -> None:
        """Raise :class:`RansStreamError` unless ``data`` is exactly the encoding of the
        logged symbols."""
        encoder = BufferedRansEncoder()
        for tables, symbols, indexes in self._parts:
            values = torch.cat(symbols).cpu()
            if values.numel() and int(values.to(torch.int64).abs().max()) >= self.MAX_SYMBOL:
                raise RansStreamError("it decodes to out-of-range symbols (corrupted or forged)")
            tables.encode(encoder, values, torch.cat(indexes).cpu())
        expected = encoder.flush()
        if expected == data:
            return
        if len(expected) < len(data) and data.startswith(expected):
            raise RansStreamError(f"{len(data) - len(expected)} bytes follow the end of its rANS stream")
        raise RansStreamError("its bytes are not the rANS coding of the symbols they decode to "
                              "(corrupted or forged)")
