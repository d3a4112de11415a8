"""Autoregressive latent coding: the wavefront coder gives the per-position reference's
bytes, decodes exactly, respects causality, and codes close to the ideal code length."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dcvc_bench.codec.ar import (
    ROW_BLOCK,
    ContextCoder,
    coding_settings,
    latent_from_bytes,
    latent_to_bytes,
    raster_schedule,
    wave_schedule,
)
from dcvc_bench.models.video_net import DCVC


@pytest.fixture(scope="module")
def net() -> DCVC:
    torch.manual_seed(0)
    model = DCVC("tiny").eval()
    model.update(force=True)
    return model


def _coders(net: DCVC) -> dict[str, ContextCoder]:
    return {
        "mv_y": ContextCoder(net.auto_regressive_mv, net.entropy_parameters_mv, net.gaussian_conditional_mv),
        "y": ContextCoder(net.auto_regressive, net.entropy_parameters, net.gaussian_conditional),
    }


def _latent(coder: ContextCoder, height: int, width: int, seed: int, spread: float = 4.0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(1, coder.channels, height, width, generator=gen) * spread
    hyper = torch.randn(1, 2 * coder.channels, height, width, generator=gen) * 2.0
    return y, hyper


# (20, 60) and (19, 51) have waves of more than ROW_BLOCK positions (one matmul of 17-20 rows).
@pytest.mark.parametrize("height,width,seed", [(1, 1, 0), (1, 9, 1), (7, 1, 2), (5, 8, 3), (9, 4, 4), (13, 6, 5),
                                               (1, 45, 6), (45, 1, 7), (20, 60, 8), (19, 51, 9)])
@pytest.mark.parametrize("which", ["mv_y", "y"])
def test_wavefront_gives_the_per_position_bytes_and_decodes_exactly(net, which, height, width, seed):
    coder = _coders(net)[which]
    y, hyper = _latent(coder, height, width, seed)
    waves = wave_schedule(height, width, coder.slope)
    with coding_settings(2):
        data, y_hat = latent_to_bytes(coder, y, hyper, waves)
        ref_data, ref_y_hat = latent_to_bytes(coder, y, hyper, raster_schedule(height, width))
        assert data == ref_data
        assert torch.equal(y_hat, ref_y_hat)
        assert torch.equal(latent_from_bytes(coder, data, hyper, (height, width), waves), y_hat)
        singles = [p.view(1) for p in torch.cat(waves)]
        assert torch.equal(latent_from_bytes(coder, data, hyper, (height, width), singles), y_hat)
    # y_hat is the quantised latent: each value is a whole number of steps from its mean.
    assert (y_hat - y).abs().max() <= 0.5 + 1e-4


@pytest.mark.parametrize("which", ["mv_y", "y"])
def test_one_matmul_per_wave_computes_what_16_row_blocks_did(net, which):
    """The stream format's arithmetic: (means, scales) of every position as the coder
    computed them before waves got one matmul per layer (exactly ROW_BLOCK rows per
    matmul), rebuilt here from y_hat; the symbols, CDF indexes and y_hat must follow from
    them bit for bit, or streams written before would not decode."""
    coder = _coders(net)[which]
    height, width = 37, 64
    y, hyper = _latent(coder, height, width, seed=11)
    with coding_settings(2):
        symbols, indexes, y_hat = coder.symbols(y, hyper, wave_schedule(height, width, coder.slope))
        padded = F.pad(y_hat, (coder.pad_x,) * 2 + (coder.pad_y,) * 2)
        patches = torch.stack([padded[0, :, dy:dy + height, dx:dx + width] for dy, dx in coder.taps])
        patches = patches.permute(2, 3, 0, 1).reshape(height * width, -1)  # raster, tap-major
        hyper_rows = hyper[0].permute(1, 2, 0).reshape(height * width, -1)
        blocks = []
        for start in range(0, height * width, ROW_BLOCK):
            rows = torch.arange(start, start + ROW_BLOCK).clamp(max=height * width - 1)
            h = torch.cat((hyper_rows[rows], F.linear(patches[rows], coder.ctx_weight, coder.ctx_bias)), dim=1)
            for layer in coder.layers:
                h = F.linear(h, *layer) if isinstance(layer, tuple) else layer(h)
            blocks.append(h[: min(ROW_BLOCK, height * width - start)])
        means, scales = torch.cat(blocks).chunk(2, dim=1)
        expected_symbols = torch.round(y[0].permute(1, 2, 0).reshape(height * width, -1) - means).int()
        expected_indexes = net.gaussian_conditional.build_indexes(scales).int()
    order = torch.cat(wave_schedule(height, width, coder.slope))
    assert torch.equal(symbols, expected_symbols[order])
    assert torch.equal(indexes, expected_indexes[order])
    assert torch.equal(y_hat[0].permute(1, 2, 0).reshape(height * width, -1), expected_symbols.float() + means)


def test_slope_and_waves_follow_the_mask(net):
    coder = _coders(net)["y"]
    assert coder.slope == 3 and len(coder.taps) == 12  # DCVC's 5x5 type-A mask
    height, width = 6, 11
    waves = wave_schedule(height, width, coder.slope)
    assert len(waves) == width + 3 * (height - 1)
    wave_of = torch.empty(height * width, dtype=torch.long)
    for index, positions in enumerate(waves):
        wave_of[positions] = index
    assert sorted(torch.cat(waves).tolist()) == list(range(height * width))
    for pos in range(height * width):
        r, c = divmod(pos, width)
        for dy, dx in coder.taps:  # every causal neighbour inside the latent is in an earlier wave
            rr, cc = r + dy - coder.pad_y, c + dx - coder.pad_x
            if 0 <= rr < height and 0 <= cc < width:
                assert wave_of[rr * width + cc] < wave_of[pos]


def test_indexes_equal_build_indexes(net):
    coder = _coders(net)["y"]
    table = net.gaussian_conditional.scale_table
    scales = torch.cat((table, table * 1.0001, table * 0.9999, torch.rand(500) * 300, torch.tensor([0.0, 0.05, 1e9])))
    assert torch.equal(coder._indexes(scales), net.gaussian_conditional.build_indexes(scales))


def test_indexes_of_many_scales_equal_build_indexes(net):
    """From _LOOKUP_MIN values on, _indexes reads a bucket table instead of searching:
    the same indexes, at the table's entries, a float step either side, and between."""
    from dcvc_bench.codec.ar import _LOOKUP_MIN

    coder = _coders(net)["y"]
    assert coder._buckets is not None  # DCVC's scale table fits the bucket scheme
    table = net.gaussian_conditional.scale_table
    up, down = torch.nextafter(table, torch.tensor(float("inf"))), torch.nextafter(table, torch.tensor(0.0))
    gen = torch.Generator().manual_seed(3)
    scales = torch.cat((table, up, down, torch.rand(20_000, generator=gen) * 300, torch.tensor([0.0, 0.05, 1e9, -1.0])))
    assert scales.numel() >= _LOOKUP_MIN
    assert torch.equal(coder._indexes(scales).long(), net.gaussian_conditional.build_indexes(scales).long())
    grid = scales.reshape(-1)[:20_000].reshape(200, 100)[:, ::2]  # a strided view, as the coder's scales are
    assert torch.equal(coder._indexes(grid).long(), net.gaussian_conditional.build_indexes(grid).long())


@pytest.mark.parametrize("spread", [False, True])
def test_rans_decode_hands_over_only_the_tables_it_needs_and_reads_the_same_symbols(net, spread):
    """RansTables.decode renumbers the tables it hands CompressAI: the span from the least
    to the greatest index, or, when that span holds too many table integers (the least
    and the greatest table at once), exactly the used tables."""
    from compressai.ans import BufferedRansEncoder, RansDecoder

    from dcvc_bench.codec.rans import _SPAN_BUDGET

    tables = _coders(net)["y"].tables
    gen = torch.Generator().manual_seed(4)
    n_tables = len(tables.cdfs)
    if spread:
        indexes = torch.tensor([0, n_tables - 1], dtype=torch.int32)[torch.randint(0, 2, (3, 500), generator=gen)]
        assert sum(tables.lengths) > _SPAN_BUDGET
    else:
        indexes = torch.randint(3, 9, (3, 500), generator=gen, dtype=torch.int32)
    symbols = torch.randint(-12, 13, (3, 500), generator=gen, dtype=torch.int32)
    encoder = BufferedRansEncoder()
    tables.encode(encoder, symbols, indexes)
    decoder = RansDecoder()
    decoder.set_stream(encoder.flush())
    decoded = torch.cat([tables.decode(decoder, indexes[i]) for i in range(3)]).reshape(3, 500)
    assert decoded.dtype == torch.int32 and torch.equal(decoded, symbols)


def test_rans_bytes_are_close_to_the_ideal_code_length():
    """The bytes cost what the Gaussian model says the symbols cost (rANS, 16-bit CDFs).
    The last entropy-parameters layer is scaled so the scales (about 2) fit the latent."""
    torch.manual_seed(1)
    model = DCVC("tiny").eval()
    last = model.entropy_parameters[-1]
    with torch.no_grad():
        last.weight.mul_(0.05)
        last.bias[: last.bias.numel() // 2] = 0.0
        last.bias[last.bias.numel() // 2:] = 2.0
    model.update(force=True)
    coder = _coders(model)["y"]
    y, hyper = _latent(coder, 16, 20, seed=9, spread=2.0)
    with coding_settings(2):
        data, y_hat = latent_to_bytes(coder, y, hyper, wave_schedule(16, 20, coder.slope))
        context = F.conv2d(y_hat, model.auto_regressive.weight * model.auto_regressive.mask,
                           model.auto_regressive.bias, padding=2)
        means, scales = model.entropy_parameters(torch.cat((hyper, context), dim=1)).chunk(2, dim=1)
        likelihoods = model.gaussian_conditional._likelihood(y_hat, scales, means)
    ideal = float(-torch.log2(likelihoods).sum())
    assert ideal > 10_000
    assert math.isclose(8 * len(data), ideal, rel_tol=0.01, abs_tol=64)
