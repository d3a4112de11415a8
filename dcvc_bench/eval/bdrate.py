"""Bjøntegaard deltas from published packages, never hand-rolled.

BD-rate: the average bitrate difference (%) of a test curve against an anchor at equal
quality, integrated over the quality range both curves cover (negative = the test codec
needs fewer bits). BD-PSNR: the average PSNR difference (dB) at equal rate. Two methods
(:data:`BD_METHODS`), recorded with every result:

- ``akima`` (the default of `dcvc-bench eval`): the ``bjontegaard`` package (FAU-LMS)
  with Akima interpolation (its recommended method; piecewise-linear with two points);
- ``pchip``: the ``bd-metric`` package's ``BD_RATE(..., piecewise=1)`` / ``BD_PSNR``,
  exactly what microsoft/DCVC's ``compare_bd_rate.py`` calls: log-rate against quality
  interpolated by PCHIP on the sorted points, sampled at 100 points over the common
  quality range and integrated with the trapezoid rule. Like ``compare_bd_rate.py`` it
  needs at least 3 points per curve. The default for DCVC-format comparisons
  (``--anchor-json``), so figures line up with published tables.

A BD figure is only defined for curves whose quality rises strictly with rate; curves
with fewer than two points, non-monotonic curves and curves that do not overlap get no
number (``None``) and a ``note`` that says why, instead of an extrapolated value.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

BD_METHOD = "akima"
BD_METHODS = ("akima", "pchip")
#: Fewest points a curve needs per method (compare_bd_rate.py asks 3 of its curves).
_MIN_POINTS = {"akima": 2, "pchip": 3}


def _import_bjontegaard():
    try:
        import bjontegaard
    except ImportError as exc:  # a declared dependency: only a broken install gets here
        from dcvc_bench.errors import UserError

        raise UserError(f"BD-rate needs the bjontegaard package ({exc}); pip install bjontegaard") from None
    return bjontegaard


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the dB scale (-10·log10(1 - MS-SSIM)) used for MS-SSIM BD-rates."""
    return -10.0 * math.log10(max(1.0 - value, 1e-10))


def _curve(points: Sequence[tuple[float, float]], name: str,
           least: int = 2) -> tuple[list[float], list[float], str | None]:
    """Points sorted by rate; a reason string when they cannot carry a BD figure."""
    clean = [(float(r), float(q)) for r, q in points if r is not None and q is not None]
    if len(clean) < least:
        return [], [], f"{name} has {len(clean)} RD point{'s' if len(clean) != 1 else ''} (needs at least {least})"
    if any(not (math.isfinite(r) and math.isfinite(q)) or r <= 0 for r, q in clean):
        return [], [], f"{name} has a non-finite or non-positive RD point"
    clean.sort()
    rates = [r for r, _ in clean]
    quality = [q for _, q in clean]
    if any(b <= a for a, b in zip(rates, rates[1:])):
        return [], [], f"{name} has two points at the same rate"
    if any(b <= a for a, b in zip(quality, quality[1:])):
        return [], [], f"{name} is not monotonic (quality does not rise with rate)"
    return rates, quality, None


def check_method(method: str) -> str:
    """``--bd-method`` as given, or a one-line UserError."""
    if method not in BD_METHODS:
        from dcvc_bench.errors import UserError

        raise UserError(f"--bd-method {method!r}: use {' or '.join(BD_METHODS)}")
    return method


def _pchip(ra: list[float], qa: list[float], rt: list[float], qt: list[float]) -> tuple[float, float]:
    """bd-metric's piecewise (PCHIP) BD-rate and BD-PSNR, as compare_bd_rate.py calls them."""
    try:
        from bd_metric.bjontegaard_metric import BD_PSNR, BD_RATE
    except ImportError as exc:  # a declared dependency: only a broken install gets here
        from dcvc_bench.errors import UserError

        raise UserError(f"--bd-method pchip needs the bd-metric package ({exc}); pip install bd-metric") from None
    return float(BD_RATE(ra, qa, rt, qt, 1)), float(BD_PSNR(ra, qa, rt, qt, 1))


def bd_delta(anchor: Sequence[tuple[float, float]], test: Sequence[tuple[float, float]],
             anchor_name: str = "anchor", test_name: str = "test", method: str = BD_METHOD) -> dict[str, Any]:
    """BD-rate (%) and BD-quality (dB, e.g. BD-PSNR) of ``test`` against ``anchor``;
    points are (rate, quality) pairs, e.g. (BPP, PSNR); ``method`` one of
    :data:`BD_METHODS`. Returns ``bd_rate``, ``bd_quality`` (None when undefined),
    ``overlap`` (fraction of the union of quality ranges both cover) and ``note`` (why a
    value is missing, or a low-overlap warning)."""
    check_method(method)
    ra, qa, why_a = _curve(anchor, anchor_name, _MIN_POINTS[method])
    rt, qt, why_t = _curve(test, test_name, _MIN_POINTS[method])
    if why_a or why_t:
        return {"bd_rate": None, "bd_quality": None, "overlap": None, "note": why_a or why_t}
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    overlap = max(hi - lo, 0.0) / (max(qa[-1], qt[-1]) - min(qa[0], qt[0]))
    if overlap <= 0:
        return {"bd_rate": None, "bd_quality": None, "overlap": 0.0,
                "note": f"{test_name} and {anchor_name} cover disjoint quality ranges "
                        f"({qt[0]:.2f}–{qt[-1]:.2f} vs {qa[0]:.2f}–{qa[-1]:.2f}); BD is undefined"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is reported by us, below (bd-metric: polyfit's RankWarning)
        if method == "pchip":
            rate, quality = _pchip(ra, qa, rt, qt)
        else:
            bj = _import_bjontegaard()
            rate = float(bj.bd_rate(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0))
            quality = float(bj.bd_psnr(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0))
    note = None
    if overlap < 0.75:
        note = f"quality ranges overlap only {overlap:.0%}: BD figures rest on a narrow range"
    return {"bd_rate": rate if math.isfinite(rate) else None,
            "bd_quality": quality if math.isfinite(quality) else None, "overlap": overlap, "note": note}


def rd_deltas(curves: Sequence[dict[str, Any]], anchor: str, method: str = BD_METHOD) -> list[dict[str, Any]]:
    """BD figures of every curve against the anchor curve (named ``anchor``).

    ``curves``: ``{"name", "points": [{"bpp", "psnr", "ms_ssim", ...}]}``. For each other
    curve: ``bd_rate_psnr`` (%), ``bd_psnr`` (dB), ``bd_rate_ms_ssim`` (%, on the dB
    scale of MS-SSIM) and notes.
    """
    by_name = {c["name"]: c for c in curves}
    if anchor not in by_name:
        raise KeyError(anchor)
    base = by_name[anchor]
    out = []
    for curve in curves:
        if curve["name"] == anchor:
            continue
        psnr = bd_delta([(p["bpp"], p["psnr"]) for p in base["points"]],
                        [(p["bpp"], p["psnr"]) for p in curve["points"]], anchor, curve["name"], method)

        def msdb(p: dict[str, Any]) -> float | None:
            return ms_ssim_db(p["ms_ssim"]) if p.get("ms_ssim") is not None else None

        ms = bd_delta([(p["bpp"], msdb(p)) for p in base["points"]],
                      [(p["bpp"], msdb(p)) for p in curve["points"]], anchor, curve["name"], method)
        notes = [f"{what}: {n}" for what, n in (("PSNR", psnr["note"]), ("MS-SSIM dB", ms["note"])) if n]
        out.append({"codec": curve["name"], "anchor": anchor, "bd_rate_psnr": psnr["bd_rate"],
                    "bd_psnr": psnr["bd_quality"], "bd_rate_ms_ssim": ms["bd_rate"],
                    "overlap_psnr": psnr["overlap"], "method": method,
                    "note": "; ".join(dict.fromkeys(notes)) or None})
    return out
