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
:meth:`ContextCoder._steps`, on a gathered ``[n_positions, taps·C]`` matrix (only the
mask's 12 causal taps are gathered: a masked-out tap adds nothing but time), one matmul
per layer for all of a step's positions. A BLAS picks other kernels (gemv, small-M
paths) for a few rows, which round differently, so a step of fewer than
:data:`ROW_BLOCK` positions is padded to that many rows by repeating one; from there on,
MKL's sgemm rounds each row the same whatever the row count (checked on this machine for
4 to 1024 rows; ``test_one_matmul_per_wave_computes_what_16_row_blocks_did`` checks it
against the earlier arithmetic, blocks of exactly 16 rows, whose streams therefore still
decode; rechecked 2026-12-01: every row of 4 to 2000-row matmuls equals its 16-row
result, 1 to 3 rows differ). The per-position reference runs the same loop with one
position per step (16 rows), so it computes bit-identical parameters and therefore
produces the same symbols, CDF indexes and bytes (tested). Everything a step indexes is
gathered once per latent into rows the loop writes into (:meth:`ContextCoder._plan`:
no allocation, concatenation or Python-side indexing per step); the encoder computes
the CDF indexes once, after the loop.

Why the wavefront is about 12–16×, not 25× (the steps' ratio at 1080p), faster than
that reference on this CPU (``bench codec`` on 68×120 latents, README): the matmuls
are most of both, compute-bound from 4 rows up, and the reference must pay 16 rows per
position where the wavefront pays 1.09 (the small waves' padding). Measured on this
2-core AVX2 EPYC, 1 thread, the four layers of ``y`` (best of 40 interleaved runs):
16 rows 277 µs (17.3 µs a row), 40 rows 581 µs (14.5), 64 rows 866 µs (13.5); summed
over the 321 waves of a 68×120 latent about 139 ms against 8160 × 277 µs = 2.26 s for
the reference: 16.3× for the matmuls, and 20× only if every wave had 64 rows or more.
The rest — the one rANS call of the encoder (about 40 ms of CompressAI's C++ and list
conversion for 783k symbols), the decoder's per-symbol rANS and list work — costs the
two coders the same, so it lowers the ratio; only the per-step dispatch (about 25× as
many steps for the reference) raises it.

The coders write into and read from a rANS stream they are given, so one stream can carry
several tensors (a P-frame's four share one: one final-state flush instead of four). A
latent's symbols are in wave order, positions in a wave by row, channels innermost; the
encoder emits them in that order with one call whatever order it computed them in, the
decoder decodes one wave (or one position) at a time, one ``decode_stream`` call each
(handed only the CDF tables that step uses: see :meth:`RansTables.decode`).
:class:`~dcvc_bench.codec.rans.RansTables` holds any CompressAI entropy model's CDF
tables in the form the coder takes.

Symbols are ``round(y − mean)``, ``y_hat = symbol + mean`` and CDF indexes are
``GaussianConditional.build_indexes`` of the scales, as in CompressAI's ``_compress_ar``.
The rANS tables, stream bounds and stream check live in :mod:`dcvc_bench.codec.rans`.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, NamedTuple

import torch
from torch import Tensor, nn

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()  # compressai imports torchvision; see dcvc_bench/compat.py

from compressai.ans import BufferedRansEncoder, RansDecoder  # noqa: E402
from compressai.entropy_models import GaussianConditional  # noqa: E402
from compressai.layers import MaskedConv2d  # noqa: E402

from dcvc_bench.codec.rans import RansLog, RansStreamError, RansTables, rans_min_bytes  # noqa: E402  (re-exported)

__all__ = ["ROW_BLOCK", "ContextCoder", "RansLog", "RansStreamError", "RansTables", "coding_settings",
           "latent_from_bytes", "latent_to_bytes", "rans_min_bytes", "raster_schedule", "wave_schedule"]

#: The fewest rows a matmul gets: a step with fewer positions is padded to this many.
ROW_BLOCK = 16

#: torch.index_select unwrapped: torch_geometric (imported with compressai) replaces it
#: with a Python function that costs more than the gather of a step.
_index_select = torch._C._VariableFunctions.index_select

#: From this many values on, :meth:`ContextCoder._indexes` uses its bucket table, not a
#: binary search (below, the few ops' dispatch costs more than the search).
_LOOKUP_MIN = 4096


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
        #: (weight, bias) of each 1×1 conv, or the activation as an in-place function (a
        #: module call costs more than the activation of a step's rows).
        self.layers: list[tuple[Tensor, Tensor] | Callable[[Tensor], Tensor]] = []
        for layer in entropy_parameters:
            if isinstance(layer, nn.Conv2d):
                if layer.kernel_size != (1, 1) or layer.stride != (1, 1) or layer.groups != 1:
                    raise ValueError("entropy_parameters must be 1×1 convolutions and activations")
                self.layers.append((layer.weight.detach().flatten(1).contiguous(), layer.bias.detach().clone()))
            elif isinstance(layer, nn.LeakyReLU):
                self.layers.append(functools.partial(torch._C._nn.leaky_relu_, negative_slope=layer.negative_slope))
            elif isinstance(layer, nn.ReLU):
                self.layers.append(torch.relu_)
            else:
                raise ValueError(f"entropy_parameters: unsupported layer {type(layer).__name__}")
        if not self.layers or not isinstance(self.layers[-1], tuple):
            raise ValueError("entropy_parameters must end with a 1×1 convolution")
        self.gaussian = gaussian
        self.tables = RansTables(gaussian)
        self.scale_bounds = gaussian.scale_table[:-1].contiguous()
        self.scale_floor = gaussian.lower_bound_scale.bound.detach().clone()
        self._buckets = self._bucket_table()

    # -- shared arithmetic ----------------------------------------------------------------

    def _plan(self, hyper: Tensor, shape: tuple[int, int], schedule: list[Tensor]) -> _Plan:
        """Everything a coding loop indexes, gathered once for the whole schedule (one op
        each, not one per step) into buffers the loop writes into (no allocation per
        step): the steps' rows stacked, each step padded to :attr:`row_block` rows by
        repeating its last position; per row the flat indices of its causal taps into the
        padded decoded latents and its hyperprior features (the first half of the
        entropy-parameters input, whose second half the context layer fills in)."""
        height, width = shape
        if hyper.dim() != 4 or hyper.shape[0] != 1 or tuple(hyper.shape[2:]) != (height, width):
            raise ValueError(f"hyperprior features {tuple(hyper.shape)} do not fit a {height}×{width} latent")
        device = hyper.device
        padded_w = width + 2 * self.pad_x
        rows = torch.arange(height).repeat_interleave(width)
        cols = torch.arange(width).repeat(height)
        base = ((rows + self.pad_y) * padded_w + cols + self.pad_x).to(device)
        offsets = torch.tensor([(dy - self.pad_y) * padded_w + (dx - self.pad_x) for dy, dx in self.taps],
                               device=device)
        sizes = [p.numel() for p in schedule]
        padded_sizes = [max(n, self.row_block) for n in sizes]
        positions = torch.cat(schedule).to(device)
        # Step i's rows: its positions, the last one repeated up to the block's height.
        n = torch.tensor(sizes, device=device)
        m = torch.tensor(padded_sizes, device=device)
        step = torch.repeat_interleave(torch.arange(len(sizes), device=device), m)
        row_starts = torch.cumsum(m, 0) - m
        local = torch.arange(int(m.sum()), device=device) - row_starts[step]
        first = torch.cumsum(n, 0) - n
        padded = positions[first[step] + torch.minimum(local, n[step] - 1)]
        taps = (base[padded, None] + offsets).reshape(-1)
        hyper_flat = hyper[0].permute(1, 2, 0).reshape(height * width, -1)
        inputs = hyper.new_empty(padded.numel(), hyper_flat.shape[1] + self.ctx_weight.shape[0])
        inputs[:, :hyper_flat.shape[1]] = hyper_flat[padded]
        real = (row_starts[:, None] + torch.arange(max(sizes), device=device))[
            torch.arange(max(sizes), device=device) < n[:, None]]  # the unpadded rows, schedule order
        y_hat_flat = hyper.new_zeros((height + 2 * self.pad_y) * padded_w, self.channels)
        return _Plan(sizes=sizes, padded_sizes=padded_sizes, row_starts=row_starts.tolist(),
                     pos_starts=first.tolist(), positions=positions, base=base, y_hat_flat=y_hat_flat,
                     taps=taps, inputs=inputs, outputs=hyper.new_empty(padded.numel(), 2 * self.channels),
                     real_rows=real, targets=base[positions].split(sizes))

    def _steps(self, plan: _Plan) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        """Evaluate the steps in order, yielding for each ``(n, first position, means,
        scales)`` ([n, C] views into the plan's output rows); the caller writes the step's
        ``y_hat`` before asking for the next step. Each layer is one matmul for all of a
        step's rows (``addmm`` into preallocated rows: ``F.linear``'s arithmetic, bit for
        bit)."""
        channels, n_taps = self.channels, len(self.taps)
        m_max = max(plan.padded_sizes)
        patches = plan.inputs.new_empty(m_max * n_taps, channels)
        buffers = [plan.inputs.new_empty(m_max, layer[0].shape[0]) if isinstance(layer, tuple) else None
                   for layer in self.layers[:-1]]
        ctx_weight, ctx_bias, inputs, outputs = self.ctx_weight.t(), self.ctx_bias, plan.inputs, plan.outputs
        hyper_width = inputs.shape[1] - ctx_weight.shape[1]
        last = len(self.layers) - 1
        y_hat_flat, taps = plan.y_hat_flat, plan.taps
        for n, m, start, first in zip(plan.sizes, plan.padded_sizes, plan.row_starts, plan.pos_starts):
            _index_select(y_hat_flat, 0, taps[start * n_taps:(start + m) * n_taps], out=patches[:m * n_taps])
            h = inputs[start:start + m]
            torch.addmm(ctx_bias, patches[:m * n_taps].view(m, -1), ctx_weight, out=h[:, hyper_width:])
            for k, layer in enumerate(self.layers):
                if isinstance(layer, tuple):
                    out = outputs[start:start + m] if k == last else buffers[k][:m]
                    h = torch.addmm(layer[1], h, layer[0].t(), out=out)
                else:
                    h = layer(h)
            yield n, first, h[:n, :channels], h[:n, channels:]  # DCVC's order (see DCVC._code_latent)

    def _indexes(self, scales: Tensor) -> Tensor:
        """``GaussianConditional.build_indexes`` in a few ops instead of one per table
        entry: the index is the number of table entries (all but the last) below the
        bounded scale. Exact comparisons, so equal to it bit for bit (tested). Large
        inputs skip the binary search (``bucketize``, about 35 ns a value here): the top
        16 bits of a positive float name a bucket of relative width 2^-7 holding at most
        one table entry, so a lookup of the count below the bucket plus one comparison
        with that entry is the count (:meth:`_bucket_table`)."""
        bounded = torch.maximum(scales, self.scale_floor)  # GaussianConditional.lower_bound_scale
        if bounded.numel() < _LOOKUP_MIN or self._buckets is None:
            return torch.bucketize(bounded, self.scale_bounds, out_int32=True)
        below, entries = self._buckets
        count = below[(bounded.view(torch.int32) >> 16) & 0x7FFF]  # NaN: its sign bit is dropped
        return count + (entries[count] < bounded)

    def _bucket_table(self) -> tuple[Tensor, Tensor] | None:
        """For :meth:`_indexes`: per bucket (the top 16 bits of a positive float32), the
        number of table entries below its lowest value, and the entries padded with +inf;
        None when the table does not fit that scheme (two entries in one bucket, or a
        floor that lets non-positive scales through)."""
        if not float(self.scale_floor) > 0:
            return None
        edges = (torch.arange(1 << 15, dtype=torch.int32) << 16).view(torch.float32).to(self.scale_bounds.device)
        below = torch.bucketize(edges, self.scale_bounds, out_int32=True)
        if bool((below[1:] - below[:-1]).gt(1).any()):
            return None
        entries = torch.cat((self.scale_bounds, self.scale_bounds.new_full((1,), float("inf"))))
        return below, entries

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
        y_rows = y[0].permute(1, 2, 0).reshape(height * width, self.channels)[plan.positions]
        coded = torch.empty_like(y_rows)  # the symbols, as floats, in schedule order
        step_hat = y_rows.new_empty(max(plan.sizes), self.channels)
        y_hat_flat = plan.y_hat_flat
        for (n, first, means, _), target in zip(self._steps(plan), plan.targets):
            sym = coded[first:first + n]
            # GaussianConditional.quantize(.., "symbols", means); + 0.0 turns a -0.0 into
            # the 0.0 that the integer symbol the decoder reads converts to.
            torch.sub(y_rows[first:first + n], means, out=sym).round_().add_(0.0)
            y_hat_flat.index_copy_(0, target, torch.add(sym, means, out=step_hat[:n]))
        scales = plan.outputs[plan.real_rows, self.channels:]
        stream = torch.cat(wave_schedule(height, width, self.slope)).to(plan.positions.device)
        if not torch.equal(plan.positions, stream):  # rows in schedule order -> raster -> stream order
            order = plan.positions.new_empty(height * width)
            order[plan.positions] = torch.arange(height * width, device=order.device)
            coded, scales = coded[order[stream]], scales[order[stream]]
        return coded.int().cpu(), self._indexes(scales).cpu(), self._unpad(plan, (height, width))

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
        step_hat = plan.inputs.new_empty(max(plan.sizes), self.channels)
        y_hat_flat = plan.y_hat_flat
        for (n, _, means, scales), target in zip(self._steps(plan), plan.targets):
            sym = self.tables.decode(decoder, self._indexes(scales), log)
            y_hat_flat.index_copy_(0, target, torch.add(sym, means, out=step_hat[:n]))
        return self._unpad(plan, shape)


class _Plan(NamedTuple):
    """A schedule's gathered indices and rows (see :meth:`ContextCoder._plan`)."""

    sizes: list[int]             # positions per step
    padded_sizes: list[int]      # rows per step (at least row_block)
    row_starts: list[int]        # each step's first row in the stacked rows
    pos_starts: list[int]        # each step's first position in schedule order
    positions: Tensor            # raster index of each position, in schedule order
    base: Tensor                 # padded flat index of each raster position
    y_hat_flat: Tensor           # decoded latents, padded, position-major (filled in by the loop)
    taps: Tensor                 # per row: flat tap indices into y_hat_flat (row-major, taps innermost)
    inputs: Tensor               # per row: entropy-parameters input, hyperprior half filled in
    outputs: Tensor              # per row: (means, scales), filled in by the loop
    real_rows: Tensor            # the rows of the positions (not padding), schedule order
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
