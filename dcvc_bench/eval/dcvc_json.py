"""Results in microsoft/DCVC's JSON format, both ways.

Writing (:func:`dcvc_results`, :func:`write_beside`)
    One file per RD curve (a learned track set, x265, x264), laid out as DCVC's
    ``test_video.py`` writes and as the published VTM-17.0 anchor
    (``anchors/vtm_17.0_yuv420_LB_allf_ip0.json``) is: ``{class: {sequence: {rate: {...}}}}``
    with the anchor's keys in its order (:data:`ANCHOR_KEYS`): ``frame_pixel_num``,
    ``i_frame_num``, ``p_frame_num``, ``ave_{i,p,all}_frame_{bpp,psnr,msssim,psnr_y,...}``,
    ``test_time``, ``qp``, ``ds_name``, ``seq_name``. Figures are per-frame means as
    DCVC's ``generate_log_json`` makes them (bits of the I- / P- / all frames over their
    count x pixels, the stream header counted on the first frame; per-frame PSNR /
    MS-SSIM averaged; a part with no frame is 0). In YUV 4:2:0 mode ``psnr`` / ``msssim``
    are the 6:1:1 averages; in RGB mode they are RGB figures and the per-plane keys are
    left out (as DCVC does for RGB content). The class is the dataset config's class
    (``--dataset-config``), else ``clips``. Rate keys: a baseline's QP (``"022"``, like
    the anchor); a learned curve's points in order of rate (``"000"``, ``"001"``, ...
    like test_video.py's rate index). microsoft/DCVC's ``compare_bd_rate.py`` reads these.

Reading and comparing (:func:`load`, :func:`class_points`, :func:`compare`)
    What ``compare_bd_rate.py`` does, per class: rate points in the file's key order
    (sorted as strings); at each, the class's sequences averaged weighted by their frame
    counts (``mean_over_rate_point``); BD-rate of a test against the anchor per class on
    ``ave_{frame_type}_frame_bpp`` vs ``ave_{frame_type}_frame_{metric}`` (default all
    frames, ``psnr``) with its BD method (``pchip``, bd-metric's ``BD_RATE(..., 1)``) or
    Akima; the classes' plain mean. One difference, on purpose: sequences are matched by
    name (a trailing ``.yuv`` ignored) and a class's anchor points are averaged over the
    sequences the test has, so that a partial evaluation is set beside the same
    sequences; anchor sequences the test lacks and test sequences the anchor lacks are
    listed (``missing``), never dropped silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from dcvc_bench.errors import UserError

#: The keys of a rate point in the published VTM-17.0 anchor file, in its order.
ANCHOR_KEYS = (
    "frame_pixel_num", "i_frame_num", "p_frame_num",
    "ave_i_frame_bpp", "ave_i_frame_psnr", "ave_i_frame_msssim", "ave_i_frame_psnr_y", "ave_i_frame_psnr_u",
    "ave_i_frame_psnr_v", "ave_i_frame_msssim_y", "ave_i_frame_msssim_u", "ave_i_frame_msssim_v",
    "test_time",
    "ave_p_frame_bpp", "ave_p_frame_psnr", "ave_p_frame_msssim", "ave_p_frame_psnr_y", "ave_p_frame_psnr_u",
    "ave_p_frame_psnr_v", "ave_p_frame_msssim_y", "ave_p_frame_msssim_u", "ave_p_frame_msssim_v",
    "ave_all_frame_bpp", "ave_all_frame_psnr", "ave_all_frame_msssim", "ave_all_frame_psnr_y",
    "ave_all_frame_psnr_u", "ave_all_frame_psnr_v", "ave_all_frame_msssim_y", "ave_all_frame_msssim_u",
    "ave_all_frame_msssim_v",
    "qp", "ds_name", "seq_name",
)
#: compare_bd_rate.py's --distortion_metrics.
METRICS = ("psnr", "msssim", "psnr_y", "psnr_u", "psnr_v", "msssim_y", "msssim_u", "msssim_v")
FRAME_TYPES = ("all", "i", "p")
DEFAULT_CLASS = "clips"
_OURS = {"psnr": "psnr", "msssim": "ms_ssim", "psnr_y": "psnr_y", "psnr_u": "psnr_u", "psnr_v": "psnr_v",
         "msssim_y": "ms_ssim_y", "msssim_u": "ms_ssim_u", "msssim_v": "ms_ssim_v"}


# --------------------------------------------------------------------------- writing


def sequence_record(per_frame: Sequence[dict[str, Any]], pixels: int, *, header_bits: float = 0.0,
                    qp: Any = None, ds_name: str, seq_name: str) -> dict[str, Any]:
    """One sequence at one rate point, as DCVC's ``generate_log_json`` writes it, with
    the anchor's keys (per-plane keys only when every frame has them)."""
    yuv = all("psnr_y" in f for f in per_frame)
    names = ["psnr", "msssim"] + (["psnr_y", "psnr_u", "psnr_v", "msssim_y", "msssim_u", "msssim_v"] if yuv else [])
    parts = {"i": [f for f in per_frame if f["kind"] == "I"], "p": [f for f in per_frame if f["kind"] != "I"],
             "all": list(per_frame)}
    first_bits = {id(per_frame[0]): header_bits} if per_frame else {}

    def bits(f: dict[str, Any]) -> float:
        return float(f["bits"]) + first_bits.get(id(f), 0.0)

    values: dict[str, Any] = {"frame_pixel_num": pixels, "i_frame_num": len(parts["i"]),
                              "p_frame_num": len(parts["p"])}
    for part, frames in parts.items():
        n = len(frames)
        values[f"ave_{part}_frame_bpp"] = sum(bits(f) for f in frames) / (n * pixels) if n else 0
        for m in names:
            vals = [f.get(_OURS[m]) for f in frames]
            values[f"ave_{part}_frame_{m}"] = (sum(vals) / n if n and None not in vals else 0)  # type: ignore[arg-type]
    times = [f.get("enc_ms", 0.0) + f.get("dec_ms", 0.0) for f in per_frame]
    values["test_time"] = sum(times) / 1000.0 if all("enc_ms" in f for f in per_frame) else 0
    values.update({"qp": qp, "ds_name": ds_name, "seq_name": seq_name})
    return {k: values[k] for k in ANCHOR_KEYS if k in values}


def _rate_keys(results: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each result's rate key: a baseline's QP (``"022"``), else its rank by rate."""
    if all(r["kind"] == "baseline" and isinstance(r["source"].get("value"), int) for r in results):
        return {r["id"]: f"{r['source']['value']:03d}" for r in results}
    ordered = sorted(results, key=lambda r: (r["overall"]["bpp"] is None, r["overall"]["bpp"] or 0.0))
    return {r["id"]: f"{i:03d}" for i, r in enumerate(ordered)}


def dcvc_results(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{curve name: DCVC-format results} of an eval document (each curve's points keyed
    by :func:`_rate_keys`; clips grouped by their dataset class)."""
    infos = {c["name"]: c for c in doc.get("clips", [])}
    by_curve: dict[str, list[dict[str, Any]]] = {}
    for r in doc.get("results", []):
        by_curve.setdefault(r["curve"] or r["id"], []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for curve, results in by_curve.items():
        keys = _rate_keys(results)
        data: dict[str, Any] = {}
        for r in results:
            for clip, summary in r["clips"].items():
                info = infos.get(clip, {})
                cls = info.get("dataset", DEFAULT_CLASS)
                pixels = int(info.get("width", 0)) * int(info.get("height", 0))
                qp = r["source"].get("value") if r["kind"] == "baseline" else r["source"].get("quality_index")
                data.setdefault(cls, {}).setdefault(clip, {})[keys[r["id"]]] = sequence_record(
                    summary.get("per_frame", []), pixels, header_bits=float(summary.get("header_bits") or 0.0),
                    qp=qp, ds_name=cls, seq_name=clip)
        for cls in data:
            for clip in data[cls]:
                data[cls][clip] = dict(sorted(data[cls][clip].items()))
        out[curve] = data
    return out


def slug(name: str) -> str:
    """A curve name as a file-name part: ``r0 (EMA)`` -> ``r0-EMA``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-") or "curve"


def write_beside(doc: dict[str, Any], main: Path) -> dict[str, str]:
    """Write each curve's DCVC-format results beside ``main`` (the eval document):
    ``<main stem>-<curve>.dcvc.json`` (a name no reader's ``*-real.json`` or ``*-rd.json``
    matches). Returns {what: path}."""
    from dcvc_bench.checkpoints import atomic_write_bytes, json_safe

    written: dict[str, str] = {}
    for curve, data in dcvc_results(doc).items():
        if not data:
            continue
        path = main.with_name(f"{main.stem}-{slug(curve)}.dcvc.json")
        # in the file's own order (classes and sequences as evaluated, the anchor's key order)
        atomic_write_bytes(path, (json.dumps(json_safe(data), indent=2) + "\n").encode())
        written[f"dcvc {curve}"] = str(path)
    return written


# --------------------------------------------------------------------------- reading


def load(path: Path, what: str = "--anchor-json") -> dict[str, Any]:
    """A DCVC-format results file ({class: {sequence: {rate: {...}}}}), checked; a bad
    file is one line naming it and the key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"{what} {path}: expected DCVC's results format, {{class: {{sequence: {{rate: {{...}}}}}}}}")
    for cls, seqs in data.items():
        if not isinstance(seqs, dict):
            raise UserError(f"{what} {path}: {cls}: expected an object of sequences")
        for seq, rates in seqs.items():
            if not isinstance(rates, dict) or not rates:
                raise UserError(f"{what} {path}: {cls}.{seq}: expected an object of rate points")
            for rate, rec in rates.items():
                if not isinstance(rec, dict):
                    raise UserError(f"{what} {path}: {cls}.{seq}.{rate}: expected an object")
                for key in ("i_frame_num", "p_frame_num", "ave_i_frame_bpp", "ave_p_frame_bpp", "ave_all_frame_bpp"):
                    if not isinstance(rec.get(key), (int, float)) or isinstance(rec.get(key), bool):
                        raise UserError(f"{what} {path}: {cls}.{seq}.{rate}.{key}: missing or not a number")
    return data


def _norm(name: str) -> str:
    return name[:-4] if name.lower().endswith(".yuv") else name


def mean_over_rate_point(records: Sequence[dict[str, Any]], metric: str, frame_type: str) -> tuple[float, float]:
    """(BPP, distortion) of one rate point over sequences, weighted by frame counts as
    compare_bd_rate.py's ``mean_over_rate_point`` (a missing figure counts as 0)."""
    n_key = {"i": ("i_frame_num",), "p": ("p_frame_num",), "all": ("i_frame_num", "p_frame_num")}[frame_type]
    weights = [sum(r[k] for k in n_key) for r in records]
    total = sum(weights)
    bpp = sum(r[f"ave_{frame_type}_frame_bpp"] * w for r, w in zip(records, weights))
    dist = sum((r.get(f"ave_{frame_type}_frame_{metric}") or 0) * w for r, w in zip(records, weights))
    if frame_type != "all":
        total = total or 1
    return bpp / total, dist / total


def class_points(data: dict[str, Any], cls: str, sequences: Sequence[str], metric: str = "psnr",
                 frame_type: str = "all") -> list[tuple[str, float, float]]:
    """A class's curve from ``sequences`` of it: (rate key, BPP, distortion) per rate
    point, in compare_bd_rate.py's order (each sequence's keys sorted, first seen first)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for seq in sequences:
        for rate in sorted(data[cls][seq]):
            groups.setdefault(rate, []).append(data[cls][seq][rate])
    return [(rate, *mean_over_rate_point(recs, metric, frame_type)) for rate, recs in groups.items()]


def _match(anchor: dict[str, Any], test: dict[str, Any], cls: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(pairs of (anchor name, test name), anchor sequences the test lacks, test sequences
    the anchor lacks) of one class, matched by name."""
    a = {_norm(s): s for s in anchor.get(cls, {})}
    t = {_norm(s): s for s in test.get(cls, {})}
    pairs = [(a[k], t[k]) for k in t if k in a]
    return pairs, [a[k] for k in a if k not in t], [t[k] for k in t if k not in a]


def compare(anchor: dict[str, Any], test: dict[str, Any], *, metric: str = "psnr", frame_type: str = "all",
            method: str = "pchip", anchor_name: str = "anchor", test_name: str = "test") -> dict[str, Any]:
    """BD-rate (%) of ``test`` against ``anchor`` per class (the classes both have) and
    averaged over classes, as compare_bd_rate.py computes it (see the module docstring);
    ``missing`` lists unmatched sequences per class and classes either side lacks."""
    from dcvc_bench.eval.bdrate import bd_delta, check_method

    check_method(method)
    if metric not in METRICS:
        raise UserError(f"--anchor-metric {metric!r}: use one of {', '.join(METRICS)}")
    classes: dict[str, Any] = {}
    missing: dict[str, Any] = {"classes_not_in_anchor": [c for c in test if c not in anchor],
                               "anchor_classes_not_evaluated": [c for c in anchor if c not in test]}
    for cls in test:
        if cls not in anchor:
            continue
        pairs, not_evaluated, not_in_anchor = _match(anchor, test, cls)
        if not pairs:
            classes[cls] = {"bd_rate": None, "sequences": [], "note": "no sequence of this class is in both",
                            "anchor_not_evaluated": not_evaluated, "not_in_anchor": not_in_anchor}
            continue
        a_pts = class_points(anchor, cls, [p[0] for p in pairs], metric, frame_type)
        t_pts = class_points(test, cls, [p[1] for p in pairs], metric, frame_type)
        result = bd_delta([(b, d) for _, b, d in a_pts], [(b, d) for _, b, d in t_pts], anchor_name, test_name, method)
        classes[cls] = {"bd_rate": result["bd_rate"], "bd_quality": result["bd_quality"], "note": result["note"],
                        "sequences": [p[1] for p in pairs], "anchor_not_evaluated": not_evaluated,
                        "not_in_anchor": not_in_anchor,
                        "anchor_points": [{"rate": r, "bpp": b, metric: d} for r, b, d in a_pts],
                        "points": [{"rate": r, "bpp": b, metric: d} for r, b, d in t_pts]}
    rates = [c["bd_rate"] for c in classes.values() if c["bd_rate"] is not None]
    return {"anchor": anchor_name, "test": test_name, "metric": metric, "frame_type": frame_type, "method": method,
            "classes": classes, "average": sum(rates) / len(rates) if rates else None,
            "average_over": [k for k, c in classes.items() if c["bd_rate"] is not None], "missing": missing}


def pooled_curve(data: dict[str, Any], sequences: dict[str, list[str]], metric: str = "psnr",
                 frame_type: str = "all") -> list[tuple[str, float, float]]:
    """One curve over several classes' ``sequences`` ({class: [names]}), frame-weighted
    per rate point like a class (for the RD view)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for cls, names in sequences.items():
        for seq in names:
            for rate in sorted(data[cls][seq]):
                groups.setdefault(rate, []).append(data[cls][seq][rate])
    return [(rate, *mean_over_rate_point(recs, metric, frame_type)) for rate, recs in sorted(groups.items())]


def anchor_section(doc: dict[str, Any], anchor_path: Path, *, name: Optional[str] = None, metric: str = "psnr",
                   method: str = "pchip") -> dict[str, Any]:
    """The ``--anchor-json`` part of an eval document: every curve of ``doc`` compared
    with the anchor file (:func:`compare`), and the anchor's curve over the sequences
    evaluated (``curve``: points for the RD view)."""
    anchor = load(anchor_path)
    name = name or Path(anchor_path).stem
    ours = dcvc_results(doc)
    rows = [compare(anchor, data, metric=metric, method=method, anchor_name=name, test_name=curve)
            for curve, data in ours.items()]
    matched: dict[str, list[str]] = {}
    for data in ours.values():
        for cls in data:
            if cls in anchor:
                pairs, _, _ = _match(anchor, data, cls)
                matched.setdefault(cls, [])
                matched[cls] += [a for a, _ in pairs if a not in matched[cls]]
    points = pooled_curve(anchor, matched, metric) if any(matched.values()) else []
    return {"file": str(Path(anchor_path).resolve()), "name": name, "metric": metric, "method": method,
            "comparisons": rows, "curve": [{"rate": r, "bpp": b, metric: d} for r, b, d in points]}


__all__ = ["ANCHOR_KEYS", "DEFAULT_CLASS", "FRAME_TYPES", "METRICS", "anchor_section", "class_points", "compare",
           "dcvc_results", "load", "mean_over_rate_point", "pooled_curve", "sequence_record", "slug", "write_beside"]
