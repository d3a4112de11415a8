"""BD-rate / BD-PSNR through the bjontegaard package: known answers and honest refusals."""

from __future__ import annotations

import pytest

from dcvc_bench.eval.bdrate import bd_delta, ms_ssim_db, rd_deltas

ANCHOR = [(0.05, 30.1), (0.1, 32.4), (0.2, 34.9), (0.4, 37.2)]


def test_bd_rate_of_a_codec_against_itself_is_zero():
    result = bd_delta(ANCHOR, ANCHOR)
    assert result["bd_rate"] == pytest.approx(0.0, abs=1e-9)
    assert result["bd_quality"] == pytest.approx(0.0, abs=1e-9)
    assert result["overlap"] == 1.0 and result["note"] is None


def test_uniformly_ten_percent_cheaper_codec_is_minus_ten_percent():
    cheaper = [(rate * 0.9, psnr) for rate, psnr in ANCHOR]
    result = bd_delta(ANCHOR, cheaper)
    assert result["bd_rate"] == pytest.approx(-10.0, abs=1e-6)
    assert result["bd_quality"] > 0  # same rate buys more PSNR
    # and the anchor is ~11.1 % more expensive than the cheaper codec
    assert bd_delta(cheaper, ANCHOR)["bd_rate"] == pytest.approx(100 / 0.9 - 100, abs=1e-6)


def test_point_order_does_not_matter_and_counts_may_differ():
    shuffled = [ANCHOR[2], ANCHOR[0], ANCHOR[3], ANCHOR[1]]
    two = [(0.09, 32.0), (0.3, 36.0)]
    assert bd_delta(shuffled, two)["bd_rate"] == pytest.approx(bd_delta(ANCHOR, two)["bd_rate"])


@pytest.mark.parametrize("test_points, reason", [
    ([(0.1, 33.0)], "needs at least 2"),
    ([(0.1, 33.0), (0.2, 32.0)], "not monotonic"),
    ([(0.1, 50.0), (0.2, 52.0)], "disjoint"),
    ([(0.1, 33.0), (0.1, 34.0)], "same rate"),
])
def test_undefined_bd_is_none_with_a_reason(test_points, reason):
    result = bd_delta(ANCHOR, test_points, "x265", "mine")
    assert result["bd_rate"] is None and result["bd_quality"] is None
    assert reason in result["note"]


def test_narrow_overlap_is_flagged_but_computed():
    result = bd_delta(ANCHOR, [(0.15, 34.0), (0.6, 40.0)])
    assert result["bd_rate"] is not None and result["overlap"] < 0.75
    assert "overlap only" in result["note"]


def test_rd_deltas_against_an_anchor_curve_names_each_codec():
    def curve(name, scale):
        return {"name": name, "points": [{"bpp": r * scale, "psnr": q, "ms_ssim": 1 - 10 ** (-q / 40)}
                                         for r, q in ANCHOR]}

    rows = rd_deltas([curve("x265", 1.0), curve("mine", 0.9), curve("x264", 1.2)], "x265")
    by_codec = {r["codec"]: r for r in rows}
    assert set(by_codec) == {"mine", "x264"}
    assert by_codec["mine"]["bd_rate_psnr"] == pytest.approx(-10.0, abs=1e-6)
    assert by_codec["x264"]["bd_rate_psnr"] == pytest.approx(20.0, abs=1e-6)
    assert by_codec["mine"]["bd_rate_ms_ssim"] == pytest.approx(-10.0, abs=1e-6)
    assert by_codec["mine"]["anchor"] == "x265" and by_codec["mine"]["method"] == "akima"


def test_ms_ssim_db_scale():
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(0.9) == pytest.approx(10.0)


def test_pchip_method_is_bd_metrics_and_needs_three_points():
    """--bd-method pchip: bd-metric's BD_RATE(..., piecewise=1), as compare_bd_rate.py calls it."""
    from bd_metric.bjontegaard_metric import BD_RATE

    test = [(0.055, 30.5), (0.11, 32.6), (0.19, 35.3), (0.42, 37.0)]
    got = bd_delta(ANCHOR, test, method="pchip")
    expected = BD_RATE([r for r, _ in ANCHOR], [q for _, q in ANCHOR], [r for r, _ in test], [q for _, q in test], 1)
    assert got["bd_rate"] == pytest.approx(expected, abs=1e-12)
    assert bd_delta(ANCHOR, [(rate * 0.9, psnr) for rate, psnr in ANCHOR], method="pchip")["bd_rate"] == \
        pytest.approx(-10.0, abs=1e-9)
    assert "needs at least 3" in bd_delta(ANCHOR, ANCHOR[:2], method="pchip")["note"]
