"""`dcvc-bench eval --real`: every frame coded by dcvc_bench.codec.video, bits from the
stream, the estimate beside it and their gap, encode/decode time per frame."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.codec import video

from test_eval_estimate import make_run, one_torch_thread  # noqa: F401 (autouse fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs_real"), frames=4)


def test_real_mode_reports_coded_bits_the_estimate_and_the_gap(run, tmp_path):
    out = tmp_path / "real.json"
    result = runner.invoke(app, ["eval", "--checkpoint", str(run), "--real", "--intra-period", "3",
                                 "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["mode"] == "real"
    for r in doc["results"]:
        assert r["bits"] == "real"
        clip = r["clips"]["synth_000"]
        # every byte of the stream is counted, header included, over the original pixels
        assert clip["bits"] == 8 * clip["stream_bytes"]
        assert clip["bpp"] == pytest.approx(8 * clip["stream_bytes"] / (4 * 96 * 64))
        assert clip["header_bits"] > 0
        assert [f["kind"] for f in clip["per_frame"]] == ["I", "P", "P", "I"]
        assert all(f["est_bits"] > 0 and f["enc_ms"] > 0 and f["dec_ms"] > 0 for f in clip["per_frame"])
        assert all(0 < f["payload_bits"] < f["bits"] for f in clip["per_frame"])
        assert clip["rate_gap_percent"] == pytest.approx((clip["bpp"] / clip["bpp_estimate"] - 1) * 100)
        assert clip["enc_ms_per_frame"] > 0 and clip["dec_ms_per_frame"] > 0
        assert r["source"]["model_identity"]
    assert "real vs est." in result.stdout and "reproduced the encoder's frames" in " ".join(result.stdout.split())
    assert (run / "eval" / "latest.json").is_file()
    assert json.loads((run / "eval" / "latest.json").read_text())["mode"] == "real"
