"""RD curves as a PNG (matplotlib, Agg canvas: no display, no global pyplot state).

One panel per metric (BPP vs PSNR, vs SSIM and MS-SSIM, and vs LPIPS and FID when they
were measured), one line per codec; curves with estimated bits are dashed so they are
never mistaken for coded ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from dcvc_bench.checkpoints import atomic_write_bytes

_PANELS = (("psnr", "PSNR (RGB, dB)"), ("ssim", "SSIM"), ("ms_ssim", "MS-SSIM"), ("lpips", "LPIPS (lower is better)"),
           ("fid", "FID (lower is better)"))


def plot_rd(rd: dict[str, Any], path: str | Path, title: Optional[str] = None) -> Path:
    """Write the RD curves of ``rd`` (``{"curves": [{"name", "bits", "points"}]}``) to
    ``path`` as a PNG (atomically) and return the path."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(key, label) for key, label in _PANELS
              if any(p.get(key) is not None for c in rd["curves"] for p in c["points"])]
    fig = Figure(figsize=(5.2 * len(panels), 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        for curve in rd["curves"]:
            pts = [(p["bpp"], p[key]) for p in curve["points"] if p.get(key) is not None and p.get("bpp") is not None]
            if not pts:
                continue
            estimated = curve.get("bits") == "estimated"
            name = f"{curve['name']} (estimated bits)" if estimated else curve["name"]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", markersize=4,
                    linestyle="--" if estimated else "-", label=name)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(rd.get("ms_ssim_label") or label if key == "ms_ssim" else label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
