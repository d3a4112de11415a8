"""RD curves as a PNG (matplotlib, Agg canvas: no display, no global pyplot state).

One panel per metric (BPP vs PSNR, vs SSIM and MS-SSIM, and vs LPIPS and FID when they
were measured), one line per codec; curves with estimated bits are dashed so they are
never mistaken for coded ones.

Readable when codecs sit far apart (a learned codec at 1.4 BPP beside x265/x264 at
0.01-0.07 BPP):

- the BPP axis is logarithmic by default (``log_bpp=False``, `eval --linear-bpp`, for a
  linear one);
- every codec has its own colour and its own marker, listed in the legend; markers get
  smaller and hollower in drawing order (later curves on top), so a point drawn over
  another one leaves the one below visible as a ring around it;
- when the baselines' BPP range and the other codecs' do not overlap (and are more than
  2x apart), a second row of panels zooms on the baselines' points alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dcvc_bench.checkpoints import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_PANELS = (("psnr", "PSNR (RGB, dB)"), ("ssim", "SSIM"), ("ms_ssim", "MS-SSIM"), ("lpips", "LPIPS (lower is better)"),
           ("fid", "FID (lower is better)"))
#: One marker per codec (filled shapes that stay distinct at small sizes), in curve order.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "8", "d")
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
            "#bcbd22")
FAR_APART = 2.0  # the zoom row appears when the baselines' and the others' BPP ranges are this far apart


def _points(curve: dict[str, Any], key: str) -> list[tuple[float, float]]:
    return [(p["bpp"], p[key]) for p in curve["points"]
            if p.get(key) is not None and p.get("bpp") is not None and p["bpp"] > 0]


def baseline_zoom(rd: dict[str, Any]) -> Optional[tuple[float, float]]:
    """The BPP range to zoom on (the baselines'), or None when the curves are not far apart."""
    base = [p["bpp"] for c in rd["curves"] if c.get("kind") == "baseline" for p in c["points"] if p.get("bpp")]
    other = [p["bpp"] for c in rd["curves"] if c.get("kind") != "baseline" for p in c["points"] if p.get("bpp")]
    if not base or not other:
        return None
    lo, hi = min(base), max(base)
    if min(other) > hi * FAR_APART or max(other) * FAR_APART < lo:
        return lo, hi
    return None


def _style(index: int, count: int) -> dict[str, Any]:
    # Later curves are drawn on top with smaller markers: a covered point shows as a ring.
    size = 9.0 - 4.0 * index / max(count - 1, 1)
    colour = _COLOURS[index % len(_COLOURS)]
    return {"marker": MARKERS[index % len(MARKERS)], "markersize": size, "color": colour,
            "markeredgecolor": colour, "markerfacecolor": colour if index % 2 == 0 else "white",
            "markeredgewidth": 1.3, "zorder": 2 + index, "linewidth": 1.2}


def _bpp_axis(ax: Any, log_bpp: bool) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xlabel("bits per pixel (log scale)" if log_bpp else "bits per pixel")
    if log_bpp:
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        narrow = hi / lo < 20  # about a decade or less: more labelled ticks, so the axis can still be read
        subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0) if narrow else (1.0, 2.0, 5.0)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _zoom_limits(rd: dict[str, Any], key: str, span: tuple[float, float], log_bpp: bool) -> tuple[tuple, tuple]:
    lo, hi = span
    if log_bpp:
        pad = (math.log10(hi) - math.log10(lo) or 0.2) * 0.12
        xlim = (10 ** (math.log10(lo) - pad), 10 ** (math.log10(hi) + pad))
    else:
        pad = (hi - lo or hi * 0.2) * 0.08
        xlim = (max(lo - pad, 0.0), hi + pad)
    ys = [y for c in rd["curves"] for x, y in _points(c, key) if xlim[0] <= x <= xlim[1]]
    y_lo, y_hi = min(ys), max(ys)
    y_pad = (y_hi - y_lo or abs(y_hi) * 0.05 or 0.05) * 0.1
    return xlim, (y_lo - y_pad, y_hi + y_pad)


def rd_figure(rd: dict[str, Any], title: Optional[str] = None, *, log_bpp: bool = True) -> "Figure":
    """The RD figure of ``rd`` (``{"curves": [{"name", "kind", "bits", "points"}]}``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(key, label) for key, label in _PANELS if any(_points(c, key) for c in rd["curves"])]
    zoom = baseline_zoom(rd)
    rows = 2 if zoom else 1
    fig = Figure(figsize=(5.2 * len(panels), 4.4 * rows + 0.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, len(panels), squeeze=False)
    count = len(rd["curves"])
    for row in range(rows):
        for ax, (key, label) in zip(grid[row], panels):
            for index, curve in enumerate(rd["curves"]):
                pts = _points(curve, key)
                if row == 1 and zoom is not None and not any(zoom[0] <= x <= zoom[1] for x, _ in pts):
                    continue  # the zoom shows (and its legend lists) the codecs in its range
                if not pts:
                    continue
                estimated = curve.get("bits") == "estimated"
                name = f"{curve['name']} (estimated bits)" if estimated else curve["name"]
                ax.plot([x for x, _ in pts], [y for _, y in pts], linestyle="--" if estimated else "-",
                        label=name, **_style(index, count))
            ax.set_ylabel(rd.get("ms_ssim_label") or label if key == "ms_ssim" else label)
            ax.grid(True, which="major", alpha=0.3)
            if row == 1 and zoom is not None:
                xlim, ylim = _zoom_limits(rd, key, zoom, log_bpp)
                if log_bpp:
                    ax.set_xscale("log")
                ax.set_xlim(*xlim)
                ax.set_ylim(*ylim)
                ax.set_title(f"zoom: the baselines' BPP range ({zoom[0]:.3g}-{zoom[1]:.3g})", fontsize=9)
            elif zoom is not None:
                ax.set_title("all codecs", fontsize=9)
            _bpp_axis(ax, log_bpp)
    grid[0][0].legend(fontsize=8)
    if zoom is not None:
        grid[1][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_rd(rd: dict[str, Any], path: str | Path, title: Optional[str] = None, *, log_bpp: bool = True) -> Path:
    """Write the RD curves of ``rd`` to ``path`` as a PNG (atomically) and return the path."""
    import io

    fig = rd_figure(rd, title, log_bpp=log_bpp)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
