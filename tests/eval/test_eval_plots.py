"""The RD PNG you can read: a log BPP axis by default (linear on request), a marker and a
colour of its own per codec, later curves drawn on top with smaller markers, and a zoom on
the baselines' range when the codecs sit far apart. Read from the matplotlib figure."""

from __future__ import annotations

import copy

import pytest

from dcvc_bench.eval.plots import baseline_zoom, plot_rd, rd_figure


def _pt(bpp, psnr, ssim=None):
    return {"label": f"{bpp}", "bpp": bpp, "psnr": psnr, "ssim": ssim, "ms_ssim": None, "lpips": None}


FAR = {"curves": [
    {"name": "smoke", "kind": "learned", "bits": "real", "points": [_pt(1.18, 13.1, 0.41), _pt(1.41, 14.4, 0.46)]},
    {"name": "x265", "kind": "baseline", "bits": "real",
     "points": [_pt(0.0102, 28.9, 0.8), _pt(0.0205, 31.8, 0.86), _pt(0.0398, 34.9, 0.91), _pt(0.0702, 37.8, 0.94)]},
    {"name": "x264", "kind": "baseline", "bits": "real",
     "points": [_pt(0.011, 28.6, 0.79), _pt(0.0212, 31.6, 0.855), _pt(0.041, 34.7, 0.905), _pt(0.069, 37.9, 0.941)]},
]}


def _codec_lines(ax):
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_bpp_axis_is_logarithmic_by_default_and_linear_on_request():
    fig = rd_figure(FAR)
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    assert all("log scale" in ax.get_xlabel() for ax in fig.axes)
    linear = rd_figure(FAR, log_bpp=False)
    assert all(ax.get_xscale() == "linear" for ax in linear.axes)


def test_every_codec_has_its_own_marker_and_colour_and_is_in_the_legend():
    curves = copy.deepcopy(FAR)
    for i in range(5):  # more codecs than a colour cycle of three would hold
        curves["curves"].append({"name": f"c{i}", "kind": "learned", "bits": "estimated",
                                 "points": [_pt(0.5 + i / 10, 20 + i)]})
    fig = rd_figure(curves)
    ax = fig.axes[0]
    lines = _codec_lines(ax)
    names = [c["name"] if c["bits"] == "real" else f"{c['name']} (estimated bits)" for c in curves["curves"]]
    assert list(lines) == names
    assert len({line.get_marker() for line in lines.values()}) == len(names)
    assert len({line.get_color() for line in lines.values()}) == len(names)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    # drawn in order, each on top of the one before with a smaller marker: a covered point stays visible
    z = [line.get_zorder() for line in lines.values()]
    sizes = [line.get_markersize() for line in lines.values()]
    assert z == sorted(z) and len(set(z)) == len(z)
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_far_apart_codecs_get_a_zoom_on_the_baselines_range():
    assert baseline_zoom(FAR) == (0.0102, 0.0702)
    fig = rd_figure(FAR)
    assert len(fig.axes) == 4  # PSNR and SSIM, all codecs and zoomed
    zoom = [ax for ax in fig.axes if "zoom" in ax.get_title()]
    assert len(zoom) == 2
    for ax in zoom:
        lo, hi = ax.get_xlim()
        assert lo < 0.0102 and 0.0702 < hi < 0.2  # the baselines' range, not the learned codec's
        assert list(_codec_lines(ax)) == ["x265", "x264"]
        assert all(len(line.get_xdata()) == 4 for line in _codec_lines(ax).values())


def test_no_zoom_when_the_curves_overlap(tmp_path):
    near = copy.deepcopy(FAR)
    near["curves"][0]["points"] = [_pt(0.03, 30.0), _pt(0.05, 33.0)]
    assert baseline_zoom(near) is None
    assert not any("zoom" in ax.get_title() for ax in rd_figure(near).axes)
    path = plot_rd(near, tmp_path / "rd.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("log_bpp", [True, False])
def test_a_png_is_written(tmp_path, log_bpp):
    assert plot_rd(FAR, tmp_path / "rd.png", title="t", log_bpp=log_bpp).read_bytes()[:4] == b"\x89PNG"
