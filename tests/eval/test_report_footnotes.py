"""The first footnote under `eval`'s tables names the colour space the PSNR was measured
in: RGB by default, the 6:1:1 YUV 4:2:0 average with --color yuv420."""

from __future__ import annotations

import pytest

from dcvc_bench.eval.report import footnotes


def _doc(color: str | None) -> dict:
    settings = {} if color is None else {"color": color}
    return {"settings": settings, "results": [], "clips": [], "lpips": {"available": True}}


@pytest.mark.parametrize("color,says,never", [
    (None, "PSNR: RGB", "YUV 4:2:0"),
    ("rgb", "PSNR: RGB", "YUV 4:2:0"),
    ("yuv420", "PSNR: YUV 4:2:0, per plane, PSNR_avg = (6·Y + U + V) / 8", "PSNR: RGB"),
])
def test_the_psnr_footnote_names_the_colour_space(color, says, never):
    first = footnotes(_doc(color))[0]
    assert first.startswith(says) and never not in first
