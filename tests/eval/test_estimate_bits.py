"""Evaluation's estimate is the cost of the symbols the real coder writes: per symbol as
CompressAI's rANS coder codes it (tails by bypass), per P-frame along the real decoded
chain, so a real stream exceeds it only by framing and the rANS flush."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.codec.ar import RansTables, coding_settings

from test_eval_estimate import make_run, one_torch_thread  # noqa: F401 (autouse fixture)

runner = CliRunner()
FLUSH_BITS = 64  # rANS64 final state; bytes go out in 32-bit words


def _reference_bits(symbol: int, index: int, tables: RansTables) -> float:
    """One symbol's cost, written out as CompressAI's rans_interface.cpp codes it."""
    cdf, length, offset = tables.cdfs[index], tables.lengths[index], tables.offsets[index]
    top = length - 2
    value = symbol - offset
    if 0 <= value < top:
        return 16 - math.log2(cdf[value + 1] - cdf[value])
    raw = -2 * value - 1 if value < 0 else 2 * (value - top)
    n_bypass = 0
    while raw >> (4 * n_bypass):
        n_bypass += 1
    return 16 - math.log2(cdf[top + 1] - cdf[top]) + 4 * (n_bypass + n_bypass // 15 + 1)


@pytest.fixture(scope="module")
def tables():
    """The Gaussian conditional's tables as DCVC's ``update(force=True)`` builds them."""
    from compressai.entropy_models import GaussianConditional
    from compressai.models.base import get_scale_table

    gaussian = GaussianConditional(None)
    gaussian.update_scale_table(get_scale_table())
    return RansTables(gaussian)


def test_code_length_is_the_rans_cost_of_each_symbol_tails_included(tables):
    """In-table symbols, both tails (the bypass), the escape slot itself, huge values."""
    from compressai.ans import BufferedRansEncoder

    rng = np.random.default_rng(0)
    n = 4000
    indexes = torch.from_numpy(rng.integers(0, len(tables.cdfs), n)).int()
    spread = torch.tensor([tables.lengths[i] for i in indexes.tolist()]).float()
    symbols = (torch.from_numpy(rng.standard_normal(n)).float() * spread * 0.6).round().int()
    symbols[:50] = torch.tensor([tables.offsets[i] + tables.lengths[i] - 2 for i in indexes[:50].tolist()])  # the escape slot
    # far tails (CompressAI's bypass loop shifts an int32 by 4·n: from raw values of 2^28 it never ends)
    symbols[50:60] = torch.tensor([10 ** 6, -10 ** 6, 10 ** 7, -(10 ** 7), 17, -17, 300, -300, 1, -1])
    ours = tables.code_length(symbols, indexes)
    reference = [_reference_bits(s, i, tables) for s, i in zip(symbols.tolist(), indexes.tolist())]
    assert ours.tolist() == pytest.approx(reference, abs=1e-9)
    outside = sum(not 0 <= s - tables.offsets[i] < tables.lengths[i] - 2
                  for s, i in zip(symbols.tolist(), indexes.tolist()))
    assert outside > 300  # the tails are really exercised
    encoder = BufferedRansEncoder()
    tables.encode(encoder, symbols, indexes)
    real = 8 * len(encoder.flush())
    assert 0 <= real - float(ours.sum()) <= FLUSH_BITS


@pytest.fixture(scope="module")
def natural_clip(tmp_path_factory):
    """A natural-content clip (matplotlib's sample photo, a camera pan), 128×96."""
    import cv2
    import matplotlib.cbook as cbook

    from dcvc_bench.data.synth import _write_clip_atomically

    image = cv2.cvtColor(cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)

    def frames():
        for t in range(4):
            shift = np.float32([[1, 0, -(40 + 2.3 * t)], [0, 1, -(60 + 0.7 * t)]])
            yield cv2.warpAffine(image, shift, (128, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    path = tmp_path_factory.mktemp("natural") / "hopper.mp4"
    _write_clip_atomically(path, frames(), 4, (128, 96))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs_bits"), frames=4)


@pytest.fixture(scope="module")
def loud(run, tmp_path_factory):
    """A checkpoint whose P-frame latents carry information: random weights code every
    P-frame as the same few hundred bits (y and mv_y round to 0), so the analysis
    transforms' last layers are scaled up until most symbols are non-zero."""
    from dcvc_bench.checkpoint_io import load_checkpoint, save_checkpoint

    state = load_checkpoint(next((run / "checkpoints" / "l2048").glob("*final.pth")))
    weights = state["model_state_dict"]
    for name in ("contextualEncoder.8.weight", "mvEncoder.6.weight"):
        weights[name] = weights[name] * 40.0
    path = tmp_path_factory.mktemp("loud") / "model_dcvc_lambda_2048.0_quality_4_stage_4_final.pth"
    save_checkpoint(path, state)
    return path


def test_every_p_frame_costs_its_estimate_plus_the_flush(loud, natural_clip, tmp_path):
    """`eval --real`: payload − estimate is only the rANS flush, on every P-frame."""
    import json

    out = tmp_path / "real.json"
    result = runner.invoke(app, ["eval", "--checkpoint", str(loud), "--real",
                                 "--videos", str(natural_clip), "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    clip = json.loads(out.read_text())["results"][0]["clips"]["hopper"]
    inter = [f for f in clip["per_frame"] if f["kind"] == "P"]
    assert len(inter) == 3 and len({f["payload_bits"] for f in inter}) == 3
    assert all(f["payload_bits"] > 20_000 for f in inter)  # information, not the fixed cost
    for f in inter:
        assert 0 <= f["payload_bits"] - f["est_bits"] <= FLUSH_BITS, f
    intra = clip["per_frame"][0]
    assert intra["payload_bits"] == intra["est_bits"]  # OpenCV JPEG: its estimate is its bytes


def test_encode_prints_the_estimate_eval_prints(loud, natural_clip, tmp_path):
    import json

    checkpoint = loud
    out = tmp_path / "est.json"
    result = runner.invoke(app, ["eval", "--checkpoint", str(checkpoint), "--videos", str(natural_clip),
                                 "--device", "cpu", "--json", str(out), "--frames", "3"])
    assert result.exit_code == 0, (result.output, result.exception)
    estimated = json.loads(out.read_text())["results"][0]["overall"]["bpp"]
    result = runner.invoke(app, ["encode", str(natural_clip), str(tmp_path / "a.dcvc"), "--checkpoint",
                                 str(checkpoint), "--frames", "3"])
    assert result.exit_code == 0, (result.output, result.exception)
    printed = float(re.search(r"estimate ([0-9.]+) bpp", result.output).group(1))
    assert printed == pytest.approx(estimated, abs=1e-4) and f"{estimated:.4f}" in result.output


def test_analyse_is_what_encode_writes(loud, natural_clip):
    """The estimate's symbols are the stream's: encode = analyse + rANS, same x̂."""
    from dcvc_bench.codec.gop import decoded_picture
    from dcvc_bench.codec.video import load_codec
    from dcvc_bench.data.video import read_frames

    codec = load_codec(loud)
    frames = torch.from_numpy(read_frames(natural_clip, 0, 2).transpose(0, 3, 1, 2).copy()).float() / 255
    with coding_settings(codec.threads):
        ref = decoded_picture(codec.iframe.estimate(frames[:1]).x_hat)
        analysis = codec.pframe.analyse(ref, frames[1:2])
        encoding = codec.pframe.encode(ref, frames[1:2])
        decoded = codec.pframe.decode(ref, encoding.data, (96, 128))
    assert torch.equal(analysis.x_hat, encoding.x_hat) and torch.equal(decoded, encoding.x_hat)
    assert analysis.bits() == encoding.bits()
    assert 0 <= 8 * len(encoding.data) - sum(analysis.bits().values()) <= FLUSH_BITS
    # the network's likelihood estimate (training's rate) is another number
    likelihood = float(sum(codec.net(ref, frames[1:2])["bits"].values())[0])
    assert likelihood != pytest.approx(sum(analysis.bits().values()), abs=1.0)
