"""Autoregressive latent coding with rANS: a wavefront coder and its per-position reference.

DCVC codes each latent y with a Gaussian whose (means, scales) come from the hyperprior
features and a 5×5 type-"A" masked convolution over the already-decoded latents. Position
(r, c) then depends on (r, c−1), (r, c−2) and on rows r−1, r−2 up to column c+2, so every
position with the same ``t = c + 3r`` is independent of the others: the coder visits the
latent wave by wave (W + 3(H−1) sequential steps instead of H·W). The slope 3 is derived
from the layer's mask, not assumed.

Bit-exactness is the design constraint. Encoder and decoder must compute the same
(means, scales) to the last bit, or the decoder reads other CDFs than the encoder wrote
and the frame decodes to garbage. Both sides therefore run the same function,
:meth:`ContextCoder._params`, on a gathered ``[n_positions, taps·C]`` matrix (only the
mask's 12 causal taps are gathered: a masked-out tap adds nothing but time), one matmul
per layer for all of a step's positions. A BLAS picks other kernels (gemv, small-M
paths) for a few rows, which round differently, so a step of fewer than
:data:`ROW_BLOCK` positions is padded to that many rows by repeating one; from there on,
MKL's sgemm rounds each row the same whatever the row count (checked on this machine for
4 to 1024 rows; ``test_one_matmul_per_wave_computes_what_16_row_blocks_did`` checks it
against the earlier arithmetic, blocks of exactly 16 rows, whose streams therefore still
decode). The per-position reference calls the same function with one position (16
rows), so it computes bit-identical parameters and therefore produces the same symbols,
CDF indexes and bytes (tested). Everything a step indexes is gathered once per latent
(:meth:`ContextCoder._plan`); the encoder computes the CDF indexes once, after the loop.

Why the wavefront is about 15×, not 25× (the steps' ratio at 1080p), faster than that
reference on a CPU: the matmuls dominate both and are compute-bound from 4 rows up
(one-row gemv is ~7× cheaper per row than 16-row sgemm), so the reference's cost is 16
rows per position and the wavefront's about 1.09 rows per position (the small waves'
padding), at ~15 % better per-row throughput: ~16·1.15/1.09 ≈ 17× at most.

The coders write into and read from a rANS stream they are given, so one stream can carry
several tensors (a P-frame's four share one: one final-state flush instead of four). A
latent's symbols are in wave order, positions in a wave by row, channels innermost; the
encoder emits them in that order with one call whatever order it computed them in, the
decoder decodes one wave (or one position) at a time, one ``decode_stream`` call each
(handed only the CDF tables that step uses: see :meth:`RansTables.decode`). :class:`RansTables` holds any
CompressAI entropy model's CDF tables in the form the coder takes.

Symbols are ``round(y − mean)``, ``y_hat = symbol + mean`` and CDF indexes are
``GaussianConditional.build_indexes`` of the scales, as in CompressAI's ``_compress_ar``.

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

import contextlib
import math
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()  # compressai imports torchvision; see dcvc_bench/compat.py

from compressai.ans import BufferedRansEncoder, RansDecoder  # noqa: E402
from compressai.entropy_models import EntropyModel, GaussianConditional  # noqa: E402
from compressai.layers import MaskedConv2d  # noqa: E402

__all__ = ["ROW_BLOCK", "ContextCoder", "RansLog", "RansStreamError", "RansTables", "coding_settings",
           "latent_from_bytes", "latent_to_bytes", "rans_min_bytes", "raster_schedule", "wave_schedule"]

#: The fewest rows a matmul gets: a step with fewer positions is padded to this many.
ROW_BLOCK = 16


@contextlib.contextmanager
def coding_settings(threads: int) -> Iterator[None]:
    """Deterministic numerics for real coding, restored on exit: a fixed thread count (the
    kernels' work split, hence float rounding, can depend on it), no TF32, deterministic
    cuDNN, no autocast, no gradients."""
    saved = (torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        with torch.no_grad(), torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cuda.matmul.allow_tf32 = saved[1]
        torch.backends.cudnn.allow_tf32 = saved[2]
        torch.backends.cudnn.deterministic = saved[3]
        torch.backends.cudnn.benchmark = saved[4]


def wave_schedule(height: int, width: int, slope: int = 3) -> list[Tensor]:
    """Raster indices of the positions of each (non-empty) wave ``t = c + slope·r``, rows
    ascending: the coding steps, and concatenated, the stream order."""
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    wave = cols + slope * rows
    order = torch.argsort(wave * height + rows)  # by wave, then by row: the stream order
    counts = torch.bincount(wave).tolist()
    return [group for group in torch.split(order, counts) if group.numel()]  # narrow latents skip waves


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

    def encode(self, encoder: BufferedRansEncoder, symbols: Tensor, indexes: Tensor) -> None:
        encoder.encode_with_indexes(symbols.reshape(-1).tolist(), indexes.reshape(-1).tolist(),
                                    self.cdfs, self.lengths, self.offsets)

    def decode(self, decoder: RansDecoder, indexes: Tensor, log: RansLog | None = None) -> Tensor:
        """The next ``indexes.numel()`` symbols, shaped like ``indexes`` (recorded in
        ``log`` when given, to check the stream afterwards). CompressAI converts every
        table it is handed on every call (27k integers for DCVC's Gaussian, about as long
        as decoding a thousand symbols), so the call gets only the tables these indexes
        use, renumbered: the same tables per symbol, hence the same symbols."""
        used, local = torch.unique(indexes.reshape(-1), return_inverse=True)
        used = used.tolist()
        values = decoder.decode_stream(local.tolist(), [self.cdfs[i] for i in used],
                                       [self.lengths[i] for i in used], [self.offsets[i] for i in used])
        symbols = torch.tensor(values, dtype=torch.int32, device=indexes.device).reshape(indexes.shape)
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
    #: them would overflow), and re-encoding them could make CompressAI's encoder loop.
    MAX_SYMBOL = 1 << 28

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


def raster_schedule(height: int, width: int) -> list[Tensor]:
    """One position per step in raster order: the order of CompressAI's ``_compress_ar``."""
    return list(torch.arange(height * width).split(1))


class ContextCoder:
    """Codes one latent (1×C×H×W) given its hyperprior features with a model's masked
    context layer, entropy-parameters network (1×1 convs: a per-position MLP) and
    Gaussian conditional, whose CDF tables must be built (``update(force=True)``).

    The coder takes the weights and CDF tables as they are when it is built: build it
    after loading weights and ``update(force=True)``. ``encode``/``decode`` take a schedule
    (:func:`wave_schedule` or :func:`raster_schedule`); the bytes do not depend on it.
    ``row_block`` is the fewest rows a matmul gets; encoder and decoder must use the same
    (the benchmark sets 1 to time the fastest one-position-at-a-time arithmetic).
    """

    def __init__(self, context_prediction: MaskedConv2d, entropy_parameters: nn.Sequential,
                 gaussian: GaussianConditional, row_block: int = ROW_BLOCK):
        self.row_block = row_block
        mask = context_prediction.mask[0, 0]
        k_h, k_w = mask.shape
        if context_prediction.stride != (1, 1) or context_prediction.padding != (k_h // 2, k_w // 2):
            raise ValueError("the context model must be a 'same' convolution with stride 1")
        self.pad_y, self.pad_x = k_h // 2, k_w // 2
        taps = mask.nonzero().tolist()
        if any(dy > self.pad_y or (dy == self.pad_y and dx >= self.pad_x) for dy, dx in taps):
            raise ValueError("the context model's mask is not causal (type 'A')")
        #: t = c + slope·r orders the positions: above-right taps reach slope−1 columns ahead.
        self.slope = 1 + max([dx - self.pad_x for dy, dx in taps if dy < self.pad_y] + [0])
        self.taps = taps
        channels = context_prediction.in_channels
        weight = context_prediction.weight.detach() * context_prediction.mask
        ys, xs = zip(*taps)
        # [2C, C, taps] -> [2C, taps·C]: tap-major rows, matching the gathered patches.
        self.ctx_weight = weight[:, :, list(ys), list(xs)].permute(0, 2, 1).reshape(weight.shape[0], -1).contiguous()
        self.ctx_bias = context_prediction.bias.detach().clone()
        self.channels = channels
        self.layers: list[tuple[Tensor, Tensor] | nn.Module] = []
        for layer in entropy_parameters:
            if isinstance(layer, nn.Conv2d):
                if layer.kernel_size != (1, 1) or layer.stride != (1, 1) or layer.groups != 1:
                    raise ValueError("entropy_parameters must be 1×1 convolutions and activations")
                self.layers.append((layer.weight.detach().flatten(1).contiguous(), layer.bias.detach().clone()))
            elif isinstance(layer, (nn.LeakyReLU, nn.ReLU)):
                self.layers.append(layer)
            else:
                raise ValueError(f"entropy_parameters: unsupported layer {type(layer).__name__}")
        self.gaussian = gaussian
        self.tables = RansTables(gaussian)
        self.scale_bounds = gaussian.scale_table[:-1].contiguous()
        self.scale_floor = gaussian.lower_bound_scale.bound.detach().clone()

    # -- shared arithmetic ----------------------------------------------------------------

    def _plan(self, hyper: Tensor, shape: tuple[int, int], schedule: list[Tensor]) -> _Plan:
        """Everything a coding loop indexes, gathered once for the whole schedule (one op
        each, not one per step): per step, the flat indices of its (padded) rows' causal
        taps into the padded decoded latents, their hyperprior rows, and where its
        positions' ``y_hat`` go."""
        height, width = shape
        if hyper.dim() != 4 or hyper.shape[0] != 1 or tuple(hyper.shape[2:]) != (height, width):
            raise ValueError(f"hyperprior features {tuple(hyper.shape)} do not fit a {height}×{width} latent")
        padded_w = width + 2 * self.pad_x
        rows = torch.arange(height).repeat_interleave(width)
        cols = torch.arange(width).repeat(height)
        base = ((rows + self.pad_y) * padded_w + cols + self.pad_x).to(hyper.device)
        offsets = torch.tensor([(dy - self.pad_y) * padded_w + (dx - self.pad_x) for dy, dx in self.taps],
                               device=hyper.device)
        sizes = [p.numel() for p in schedule]
        block = self.row_block
        padded_sizes = [max(n, block) for n in sizes]
        positions = torch.cat(schedule).to(hyper.device)
        # Step i's rows: its positions, the last one repeated up to the block's height.
        n = torch.tensor(sizes, device=hyper.device)
        m = torch.tensor(padded_sizes, device=hyper.device)
        step = torch.repeat_interleave(torch.arange(len(sizes), device=hyper.device), m)
        local = torch.arange(int(m.sum()), device=hyper.device) - (torch.cumsum(m, 0) - m)[step]
        first = torch.cumsum(n, 0) - n
        padded = positions[first[step] + torch.minimum(local, n[step] - 1)]
        taps = (base[padded, None] + offsets).reshape(-1)
        hyper_flat = hyper[0].permute(1, 2, 0).reshape(height * width, -1)
        y_hat_flat = hyper.new_zeros((height + 2 * self.pad_y) * padded_w, self.channels)
        return _Plan(sizes=sizes, positions=positions, base=base, y_hat_flat=y_hat_flat,
                     taps=taps.split([k * len(self.taps) for k in padded_sizes]),
                     hyper=hyper_flat[padded].split(padded_sizes), targets=base[positions].split(sizes))

    def _params(self, y_hat_flat: Tensor, taps: Tensor, hyper: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """(means, scales), each [n, C], of one step's ``n`` positions: ``taps`` and
        ``hyper`` are its rows, padded to :attr:`row_block` rows when fewer (see
        :meth:`_plan`), evaluated in one matmul per layer."""
        patches = y_hat_flat.index_select(0, taps).view(hyper.shape[0], -1)
        h = torch.cat((hyper, F.linear(patches, self.ctx_weight, self.ctx_bias)), dim=1)
        for layer in self.layers:
            h = F.linear(h, *layer) if isinstance(layer, tuple) else layer(h)
        means, scales = h[:n].chunk(2, dim=1)  # DCVC's order (see DCVC._code_latent)
        return means, scales

    def _indexes(self, scales: Tensor) -> Tensor:
        """``GaussianConditional.build_indexes`` in one op instead of one per table entry:
        the index is the number of table entries (all but the last) below the bounded
        scale. Exact comparisons, so equal to it bit for bit (tested)."""
        bounded = torch.maximum(scales, self.scale_floor)  # GaussianConditional.lower_bound_scale
        return torch.bucketize(bounded, self.scale_bounds).int()

    def _unpad(self, plan: _Plan, shape: tuple[int, int]) -> Tensor:
        height, width = shape
        latent = plan.y_hat_flat[plan.base].reshape(height, width, self.channels)
        return latent.permute(2, 0, 1).unsqueeze(0).contiguous()

    # -- coding -------------------------------------------------------------------------

    def encode(self, encoder: BufferedRansEncoder, y: Tensor, hyper: Tensor, schedule: list[Tensor]) -> Tensor:
        """Code ``y`` (1×C×H×W) into ``encoder``; returns ``y_hat`` exactly as
        :meth:`decode` rebuilds it. ``schedule`` must cover every position once, each
        after its causal neighbours (both schedules here do)."""
        symbols, indexes, y_hat = self.symbols(y, hyper, schedule)
        self.tables.encode(encoder, symbols, indexes)
        return y_hat

    def symbols(self, y: Tensor, hyper: Tensor, schedule: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """What :meth:`encode` writes, without writing it: the symbols and CDF indexes
        in stream order (int32, CPU) and ``y_hat``. ``tables.code_length`` of the first
        two is the exact cost of the latent. The CDF indexes are computed once, after
        the loop (they feed nothing inside it)."""
        height, width = y.shape[2:]
        plan = self._plan(hyper, (height, width), schedule)
        y_rows = y[0].permute(1, 2, 0).reshape(height * width, self.channels)[plan.positions].split(plan.sizes)
        y_hat_flat, step_symbols, step_scales = plan.y_hat_flat, [], []
        for n, taps, hyper_rows, target, y_step in zip(plan.sizes, plan.taps, plan.hyper, plan.targets, y_rows):
            means, scales = self._params(y_hat_flat, taps, hyper_rows, n)
            sym = torch.round(y_step - means).int()  # GaussianConditional.quantize(.., "symbols", means)
            y_hat_flat.index_copy_(0, target, sym.type_as(means) + means)
            step_symbols.append(sym)
            step_scales.append(scales)
        # Rows in schedule order -> raster -> stream (wave) order.
        order = plan.positions.new_empty(height * width)
        order[plan.positions] = torch.arange(height * width, device=order.device)
        stream = order[torch.cat(wave_schedule(height, width, self.slope)).to(order.device)]
        symbols = torch.cat(step_symbols)[stream].cpu()
        indexes = self._indexes(torch.cat(step_scales)[stream]).cpu()
        return symbols, indexes, self._unpad(plan, (height, width))

    def min_bits(self, shape: tuple[int, int]) -> float:
        """A lower bound on the rANS bits a latent of ``shape`` takes (any table may code
        any position: the bound of the cheapest)."""
        return shape[0] * shape[1] * self.channels * min(self.tables.min_bits())

    def decode(self, decoder: RansDecoder, hyper: Tensor, shape: tuple[int, int], schedule: list[Tensor],
               log: RansLog | None = None) -> Tensor:
        """Read ``y_hat`` (1×C×H×W) from ``decoder``, positioned where :meth:`encode`
        wrote it. ``schedule`` must visit the positions in stream order:
        :func:`wave_schedule`, or its positions one at a time (the per-position
        reference). One ``decode_stream`` call per step, for all its symbols."""
        plan = self._plan(hyper, shape, schedule)
        y_hat_flat = plan.y_hat_flat
        for n, taps, hyper_rows, target in zip(plan.sizes, plan.taps, plan.hyper, plan.targets):
            means, scales = self._params(y_hat_flat, taps, hyper_rows, n)
            sym = self.tables.decode(decoder, self._indexes(scales), log)
            y_hat_flat.index_copy_(0, target, sym.type_as(means) + means)
        return self._unpad(plan, shape)


class _Plan(NamedTuple):
    """A schedule's gathered indices and rows (see :meth:`ContextCoder._plan`)."""

    sizes: list[int]             # positions per step
    positions: Tensor            # raster index of each position, in schedule order
    base: Tensor                 # padded flat index of each raster position
    y_hat_flat: Tensor           # decoded latents, padded, position-major (filled in by the loop)
    taps: tuple[Tensor, ...]     # per step: flat tap indices of its padded rows into y_hat_flat
    hyper: tuple[Tensor, ...]    # per step: hyperprior rows of its padded rows
    targets: tuple[Tensor, ...]  # per step: where its positions' y_hat go in y_hat_flat


def latent_to_bytes(coder: ContextCoder, y: Tensor, hyper: Tensor, schedule: list[Tensor]) -> tuple[bytes, Tensor]:
    """One latent in a stream of its own (benchmarks, tests): the bytes and ``y_hat``."""
    encoder = BufferedRansEncoder()
    y_hat = coder.encode(encoder, y, hyper, schedule)
    return encoder.flush(), y_hat


def latent_from_bytes(coder: ContextCoder, data: bytes, hyper: Tensor, shape: tuple[int, int],
                      schedule: list[Tensor]) -> Tensor:
    """Inverse of :func:`latent_to_bytes`."""
    decoder = RansDecoder()
    decoder.set_stream(data)
    return coder.decode(decoder, hyper, shape, schedule)
