"""RD curves and Bjøntegaard figures of an evaluation's results: one curve per codec
(its points sorted by rate), the anchor the BD figures are measured against, and the
refusals that must come before anything is evaluated. The BD math is
:mod:`dcvc_bench.eval.bdrate`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from dcvc_bench.errors import UserError
from dcvc_bench.evaldoc import ClipInfo, RDCurveDoc, RDSection, ResultDoc, rd_point

if TYPE_CHECKING:
    from dcvc_bench.eval.evaluators import Evaluator


def rd_section(results: Sequence[ResultDoc], anchor: Optional[str], *, require_anchor: bool,
               method: Optional[str] = None) -> Optional[RDSection]:
    """RD curves (one per codec, points sorted by rate) and BD figures against the anchor
    (``method``: one of :data:`~dcvc_bench.eval.bdrate.BD_METHODS`, default Akima)."""
    from dcvc_bench.eval.bdrate import BD_METHOD, rd_deltas

    method = method or BD_METHOD

    curves: dict[str, RDCurveDoc] = {}
    for r in results:
        curve = curves.setdefault(r["curve"], {"name": r["curve"], "kind": r["kind"], "bits": r["bits"], "points": []})
        curve["points"].append(rd_point(r))
    for curve in curves.values():
        curve["points"].sort(key=lambda p: p["bpp"])
    listed = list(curves.values())
    if not listed:
        return None
    names = [c["name"] for c in listed]
    if anchor is not None and anchor not in names:
        if require_anchor:
            raise UserError(f"--anchor {anchor!r}: no such curve; curves are {', '.join(names)}")
        anchor = None
    bd = rd_deltas(listed, anchor, method) if anchor is not None and len(listed) > 1 else []  # type: ignore[arg-type]
    return {"anchor": anchor, "bd_method": method, "curves": listed, "bd": bd}


def ms_ssim_label(clips: Sequence[ClipInfo]) -> str:
    """The MS-SSIM variant of a set of clips: one label when they share it."""
    labels = sorted({c["ms_ssim"] for c in clips})
    return labels[0] if len(labels) == 1 else "MS-SSIM (scales vary by clip size)"


def check_anchor(anchor: Optional[str], curves: Sequence[str]) -> None:
    """Refuse an ``--anchor`` that names no curve before anything is evaluated."""
    names = list(dict.fromkeys(curves))
    if anchor is not None and anchor not in names:
        raise UserError(f"--anchor {anchor!r}: no such curve; curves are {', '.join(names)}")


def check_plottable(plot_out: Optional[Path], evaluators: Sequence[Evaluator]) -> None:
    """``--plot`` needs at least two RD points: refuse before evaluating anything."""
    if plot_out is not None and len(evaluators) < 2:
        raise UserError("--plot: one RD point makes no curve; evaluate several tracks or add --baselines")


def default_anchor(results: Sequence[ResultDoc], requested: Optional[str],
                   learned: Optional[str] = None) -> Optional[str]:
    """``--anchor`` when given; else x265 when it ran, else the first baseline, else
    ``learned`` (e.g. the deepest RVQ depth's curve), else none."""
    if requested:
        return requested
    curves = [r["curve"] for r in results if r["kind"] == "baseline"]
    if "x265" in curves:
        return "x265"
    return curves[0] if curves else learned

