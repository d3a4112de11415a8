"""`dcvc-bench bench iframe`: estimate/encode/decode ms per frame of an I-frame codec,
untrained networks said to be so; options that do not fit the type refused in one line.
Figures are printed, never asserted."""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.models.iframe.vq import RVQCodec, fit_index_counts, save_vq_checkpoint
from dcvc_bench.models.iframe.vq_config import CONFIG_DIR

runner = CliRunner()
TINY_RVQ = CONFIG_DIR / "tiny_rvq_f2.json"


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def bench(*args):
    return runner.invoke(app, ["bench", "iframe", "--size", "40x24", "--frames", "1", "--repeats", "2", *map(str, args)])


def figures(text: str) -> dict[str, float]:
    found = dict(re.findall(r"(estimate|encode|decode) ([0-9.]+) ms", text))
    assert set(found) == {"estimate", "encode", "decode"}, text
    return {k: float(v) for k, v in found.items()}


def test_untrained_vq_network_is_timed_and_says_so(tmp_path):
    result = bench("--type", "rvq", "--config", TINY_RVQ, "--layers", "3")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "rvq-f2-K16-L3 (UNTRAINED network" in result.stdout and "timings only" in result.stdout
    assert all(v > 0 for v in figures(result.stdout).values())
    assert "uniform 3.0000" in result.stdout  # 3 layers × log2 16 bits per 2×2 pixels
    assert "decoded frame equals the estimate's reconstruction: yes" in result.stdout

    codec = RVQCodec.untrained(TINY_RVQ)
    ckpt = save_vq_checkpoint(tmp_path / "rvq.pth", codec.model, fit_index_counts(codec.model, [torch.rand(1, 3, 32, 32)]))
    result = bench("--type", "rvq", "--config", TINY_RVQ, "--checkpoint", ckpt)
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"rvq-f2-K16-L8 (checkpoint {ckpt})" in result.stdout and "UNTRAINED" not in result.stdout
    figures(result.stdout)


@pytest.mark.parametrize("args, needle", [
    (["--type", "rvq"], "--type rvq without --checkpoint needs --config"),
    (["--type", "opencv", "--layers", "2"], "--layers does not apply to --type opencv"),
    (["--type", "vqgan", "--config", CONFIG_DIR / "tiny_vqgan_f8.json", "--layers", "2"], "--layers does not apply"),
    (["--type", "rvq", "--config", TINY_RVQ, "--layers", "9"], "trained with 8"),
    (["--type", "nope"], "unknown I-frame type"),
])
def test_bad_options_are_one_line(args, needle):
    result = bench(*args)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
