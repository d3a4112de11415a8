"""Showing and storing evaluation results: rich tables and CSV (atomic writes). The
documents themselves (``eval/*.json``) and their fields: :mod:`dcvc_bench.evaldoc`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Optional

from dcvc_bench.checkpoints import atomic_write_bytes
from dcvc_bench.evaldoc import EvalDocument

PIPE_WIDTH = 160


def console() -> Any:
    """A rich console; wide when writing to a file or pipe (tables would wrap at 80)."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=PIPE_WIDTH)


def copy_file(src: Path, dst: Path) -> None:
    atomic_write_bytes(dst, Path(src).read_bytes())


def plot_title(doc: EvalDocument) -> str:
    s = doc["settings"]
    clips = ", ".join(f"{c['name']} ({c['width']}x{c['height']}, {c['frames']} frames)" for c in doc["clips"][:4])
    if len(doc["clips"]) > 4:
        clips += f" and {len(doc['clips']) - 4} more"
    ip = {-1: "one I-frame", 1: "all intra"}.get(s.get("intra_period"), f"intra period {s.get('intra_period')}")
    return f"{clips}; {ip}"


# --------------------------------------------------------------------------- CSV

CSV_COLUMNS = ("codec", "curve", "kind", "bits", "clip", "frames", "width", "height", "bpp", "psnr", "ssim", "ms_ssim",
               "ms_ssim_label", "lpips", "uniform_bpp", "entropy_bpp", "fid", "i_frames", "i_bpp", "i_psnr",
               "i_payload_bpp", "i_uniform_bpp", "i_entropy_bpp", "p_frames", "p_bpp", "p_psnr",
               "p1_bpp", "p1_psnr", "p2_bpp", "p2_psnr", "p3_bpp", "p3_psnr", "bpp_estimate", "rate_gap_percent",
               "enc_ms_per_frame", "dec_ms_per_frame", "stream_bytes", "command")


def _row(result: dict[str, Any], clip: str, summary: dict[str, Any], info: Optional[dict[str, Any]]) -> dict[str, Any]:
    row = {"codec": result["id"], "curve": result["curve"], "kind": result["kind"], "bits": result["bits"],
           "clip": clip, "frames": summary["frames"],
           "width": info["width"] if info else "", "height": info["height"] if info else "",
           "bpp": summary["bpp"], "psnr": summary["psnr"], "ssim": summary.get("ssim"), "ms_ssim": summary["ms_ssim"],
           "uniform_bpp": (summary.get("rates_bpp") or {}).get("uniform"),
           "entropy_bpp": (summary.get("rates_bpp") or {}).get("entropy"), "fid": summary.get("fid"),
           "ms_ssim_label": info["ms_ssim"] if info else "", "lpips": summary["lpips"],
           "i_frames": summary["i_frame"]["count"], "i_bpp": summary["i_frame"]["bpp"],
           "i_psnr": summary["i_frame"]["psnr"], "i_payload_bpp": summary["i_frame"].get("payload_bpp"),
           "i_uniform_bpp": (summary["i_frame"].get("rates_bpp") or {}).get("uniform"),
           "i_entropy_bpp": (summary["i_frame"].get("rates_bpp") or {}).get("entropy"),
           "p_frames": summary["p_frame"]["count"],
           "p_bpp": summary["p_frame"]["bpp"], "p_psnr": summary["p_frame"]["psnr"],
           "bpp_estimate": summary.get("bpp_estimate"), "rate_gap_percent": summary.get("rate_gap_percent"),
           "enc_ms_per_frame": summary.get("enc_ms_per_frame"), "dec_ms_per_frame": summary.get("dec_ms_per_frame"),
           "stream_bytes": summary.get("stream_bytes"), "command": summary.get("command_display")}
    for k, first in enumerate(summary["p_first3"][:3], start=1):
        row[f"p{k}_bpp"], row[f"p{k}_psnr"] = first["bpp"], first["psnr"]
    return {k: ("" if v is None else v) for k, v in row.items()}


def write_csv(doc: EvalDocument, path: Path) -> None:
    """One row per (RD point, clip) plus an ``overall`` row per RD point."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    infos = {c["name"]: c for c in doc["clips"]}
    for result in doc["results"]:
        for clip, summary in result["clips"].items():
            writer.writerow(_row(result, clip, summary, infos.get(clip)))
        writer.writerow(_row(result, "overall", result["overall"], None))
    atomic_write_bytes(path, buffer.getvalue().encode())


# --------------------------------------------------------------------------- terminal


def _f(value: Optional[float], fmt: str, missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, fmt)


def _pair(part: Optional[dict[str, Any]]) -> str:
    if not part or part.get("psnr") is None:
        return "—"
    return f"{part['psnr']:.2f} / {part['bpp']:.4f}"


def print_document(doc: EvalDocument, out: Any) -> None:
    """Tables: rate and quality, frame types and timing, RD points and BD figures."""
    from rich.table import Table

    results = doc["results"]
    infos = {c["name"]: c for c in doc["clips"]}
    multi_clip = len(doc["clips"]) > 1
    real_learned = any(r["kind"] != "baseline" and r["bits"] == "real" and r["overall"].get("bpp_estimate") is not None
                       for r in results)

    table = Table(title=f"dcvc-bench eval — {doc['mode']} ({len(doc['clips'])} clip"
                        f"{'s' if multi_clip else ''}; overall = mean over clips)", title_justify="left")
    for col, justify in (("codec", "left"), ("clip", "left"), ("frames", "right"), ("bits", "left"),
                         ("BPP", "right"), ("PSNR dB", "right"), ("SSIM", "right"), ("MS-SSIM", "right"),
                         ("LPIPS", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    if real_learned:
        table.add_column("est. BPP", justify="right")
        table.add_column("real vs est.", justify="right")
    for result in results:
        rows = list(result["clips"].items()) if multi_clip else []
        rows.append(("overall" if multi_clip else next(iter(result["clips"])), result["overall"]))
        for i, (clip, s) in enumerate(rows):
            label = infos.get(clip, {}).get("ms_ssim", "MS-SSIM")
            ms = _f(s["ms_ssim"], ".4f") + ("*" if label != "MS-SSIM" and clip in infos else "")
            cells = [result["id"] if i == 0 else "", clip, str(s["frames"]), result["bits"],
                     _f(s["bpp"], ".4f"), _f(s["psnr"], ".2f"), _f(s.get("ssim"), ".4f"), ms,
                     _f(s["lpips"], ".4f", "n/a")]
            if real_learned:
                cells += [_f(s.get("bpp_estimate"), ".4f"),
                          _f(s.get("rate_gap_percent"), "+.2f", "—") + ("%" if s.get("rate_gap_percent") is not None else "")]
            style = "bold" if clip == "overall" else None
            table.add_row(*cells, style=style)
        table.add_section()
    out.print(table)
    if any(r["overall"]["p_frame"]["count"] or r["overall"].get("enc_ms_per_frame") is not None for r in results):
        _print_frames(results, multi_clip, out)
    if any(r["overall"].get("rates_bpp") or r["overall"].get("fid") is not None for r in results):
        _print_rates(results, out)
    if any(r["kind"] != "iframe" and r["overall"]["i_frame"].get("rates_bpp") for r in results):
        _print_iframes(results, out)
    for line in footnotes(doc):
        out.print(line, highlight=False, soft_wrap=True)
    print_rd(doc, out)


def _print_frames(results: list[dict[str, Any]], multi_clip: bool, out: Any) -> None:
    from rich.table import Table

    frames = Table(title="frame types and timing (PSNR dB / BPP)", title_justify="left")
    for col in ("codec", "clip", "I-frames", "P-frames", "P1", "P2", "P3", "enc ms/frame", "dec ms/frame"):
        frames.add_column(col, justify="left" if col in ("codec", "clip") else "right")
    for result in results:
        rows = list(result["clips"].items()) if multi_clip else []
        rows.append(("overall" if multi_clip else next(iter(result["clips"])), result["overall"]))
        for i, (clip, s) in enumerate(rows):
            firsts = [_pair(p) for p in s["p_first3"]] + ["—"] * (3 - len(s["p_first3"]))
            frames.add_row(result["id"] if i == 0 else "", clip,
                           f"{s['i_frame']['count']}× {_pair(s['i_frame'])}",
                           f"{s['p_frame']['count']}× {_pair(s['p_frame'])}", *firsts,
                           _f(s.get("enc_ms_per_frame"), ".1f"), _f(s.get("dec_ms_per_frame"), ".1f"),
                           style="bold" if clip == "overall" else None)
        frames.add_section()
    out.print(frames)


def _print_rates(results: list[dict[str, Any]], out: Any) -> None:
    """Per RD point (overall): the bits, the estimate, the codec's other rates and FID."""
    from rich.table import Table

    names = list(dict.fromkeys(k for r in results for k in (r["overall"].get("rates_bpp") or {})))

    def repeats(name: str) -> bool:  # the same figure as BPP or est. BPP on every row: not shown again
        return all(any(v is not None and (r["overall"].get("rates_bpp") or {}).get(name) is not None
                       and abs(v - r["overall"]["rates_bpp"][name]) <= 1e-9 * max(1.0, abs(v))
                       for v in (r["overall"]["bpp"], r["overall"].get("bpp_estimate"))) for r in results)

    names = [n for n in names if not repeats(n)]
    table = Table(title="rates per point (BPP over original pixels, overall) and FID", title_justify="left")
    for col in ("codec", "bits", "BPP", "est. BPP", *(f"{n} BPP" for n in names), "PSNR dB", "FID"):
        table.add_column(col, justify="left" if col in ("codec", "bits") else "right")
    for r in results:
        o = r["overall"]
        rates = o.get("rates_bpp") or {}
        table.add_row(r["id"], r["bits"], _f(o["bpp"], ".4f"), _f(o.get("bpp_estimate"), ".4f"),
                      *(_f(rates.get(n), ".4f") for n in names), _f(o["psnr"], ".2f"), _f(o.get("fid"), ".3f", "n/a"))
    out.print(table)


def _print_iframes(results: list[dict[str, Any]], out: Any) -> None:
    """Per video RD point (overall) whose I-frame codec has other rates: the I-frames'
    bits (real, their payload without framing, the estimate) beside those rates, so that
    payload ≤ uniform can be read per point (e.g. per RVQ depth)."""
    from rich.table import Table

    rows = [r for r in results if r["kind"] != "iframe" and r["overall"]["i_frame"].get("rates_bpp")]
    real = any(r["bits"] == "real" for r in rows)
    names = list(dict.fromkeys(k for r in rows for k in r["overall"]["i_frame"]["rates_bpp"]))
    names = [n for n in ("uniform", "entropy") if n in names] or names
    cols = ["point", "bits", *(["I real BPP", "payload BPP", "est. BPP"] if real else ["I BPP"]),
            *(f"{n} BPP" for n in names), "I PSNR dB"]
    table = Table(title="I-frames per point (BPP over the I-frames' original pixels, overall; payload = real "
                        "without the stream's and the I-frame codec's framing)", title_justify="left")
    for col in cols:
        table.add_column(col, justify="left" if col in ("point", "bits") else "right")
    above = []
    for r in rows:
        i = r["overall"]["i_frame"]
        rates = i["rates_bpp"]
        bits = [_f(i["bpp"], ".4f")]
        if real:
            bits += [_f(i.get("payload_bpp"), ".4f"), _f(i.get("bpp_estimate"), ".4f")]
        table.add_row(r["id"], r["bits"], *bits, *(_f(rates.get(n), ".4f") for n in names), _f(i["psnr"], ".2f"))
        payload, uniform = i.get("payload_bpp"), rates.get("uniform")
        if payload is not None and uniform is not None and payload > uniform:
            above.append(f"{r['id']} ({payload:.4f} > {uniform:.4f})")
    out.print(table)
    checked = [r for r in rows if r["overall"]["i_frame"].get("payload_bpp") is not None
               and r["overall"]["i_frame"]["rates_bpp"].get("uniform") is not None]
    if above:
        out.print("I-frame payload above the uniform rate at: " + ", ".join(above) + " (indices packed at "
                  "log2 K bits are rounded up to a whole byte)", highlight=False)
    elif checked:
        out.print(f"I-frame payload ≤ uniform BPP at all {len(checked)} point{'s' if len(checked) > 1 else ''}",
                  highlight=False)


def footnotes(doc: EvalDocument) -> list[str]:
    """What a reader must know to read the numbers right."""
    if doc["settings"].get("color") == "yuv420":  # type: ignore[typeddict-item]
        lines = ["PSNR: YUV 4:2:0, per plane, PSNR_avg = (6·Y + U + V) / 8 of per-frame PSNRs (DCVC convention); "
                 "learned codecs' RGB output converted back to 4:2:0 with the matrix the source was read with (BT.709 full range by default). BPP: bits over original pixels."]
    else:
        lines = ["PSNR: RGB, mean of per-frame PSNR (DCVC convention). BPP: bits over original pixels."]
    kinds = {(r["kind"], r["bits"]) for r in doc["results"]}
    if ("learned", "real") in kinds:
        lines.append("learned codecs: every frame really coded; the stream was decoded again and reproduced the "
                     "encoder's frames exactly; est. BPP = the exact cost of the coded symbols (what `eval` without --real "
                     "reports); real − est. = stream header, frame framing and the rANS flush")
    if ("learned", "estimated") in kinds:
        lines.append("learned codecs: bits ESTIMATED as the exact cost of the symbols the real coder would write "
                     "(no bitstream; real coding adds framing and the rANS flush); use --real for coded bits")
    reduced = [c for c in doc["clips"] if c["ms_ssim"] != "MS-SSIM"]
    for c in reduced:
        lines.append(f"* {c['name']} ({c['width']}x{c['height']}) is too small for 5-scale MS-SSIM: {c['ms_ssim']}")
    if any(c.get("ssim", "SSIM") != "SSIM" for c in doc["clips"]):
        lines.append("SSIM: " + ", ".join(f"{c['name']} {c['ssim']}" for c in doc["clips"] if c.get("ssim", "SSIM") != "SSIM"))
    if not doc["lpips"]["available"]:
        lines.append(f"LPIPS {doc['lpips']['reason']}")
    else:
        for c in doc["clips"]:
            if c["lpips"].startswith("unavailable"):
                lines.append(f"LPIPS for {c['name']}: {c['lpips']}")
    fid = doc.get("fid")
    if fid:
        lines.append(fid["reason"] or fid["convention"])
        lines += list(dict.fromkeys(r["overall"]["fid_reason"] for r in doc["results"]  # e.g. clips shorter than planned
                                    if r["overall"].get("fid_reason") not in (None, fid["reason"])))
    base = doc.get("baselines")
    if base:
        lines.append(f"baselines: {base['colour_path']}; {base['structure']}; bits = {base['bits']}")
        ceilings = [f"{c['name']} {c['colour_roundtrip_psnr']:.2f} dB" for c in doc["clips"]
                    if c.get("colour_roundtrip_psnr") is not None]
        if ceilings:
            lines.append("colour conversion alone (no coding) costs the baselines: " + ", ".join(ceilings))
        lines.append("baseline enc/dec ms/frame: ffmpeg wall time, colour conversion and process start-up included")
        shown = set()
        for r in doc["results"]:
            if r["kind"] == "baseline" and r["id"] not in shown:
                shown.add(r["id"])
                first = next(iter(r["clips"].values()))
                lines.append(f"[dim]{r['id']}: {first['command_display']}  (< {first['command_input']})[/dim]")
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    return lines


def print_rd(doc: EvalDocument, out: Any) -> None:
    """RD points per curve and BD figures against the anchor."""
    from rich.table import Table

    rd = doc.get("rd")
    if not rd or not (len(rd["curves"]) > 1 or any(len(c["points"]) > 1 for c in rd["curves"])):
        return
    yuv = doc["settings"].get("color") == "yuv420"
    table = Table(title="RD points" + (" (YUV 4:2:0: PSNR and MS-SSIM are (6·Y + U + V) / 8)" if yuv else ""),
                  title_justify="left")
    with_fid = any(p.get("fid") is not None for c in rd["curves"] for p in c["points"])
    for col in ("curve", "point", "bits", "BPP", "PSNR dB", "SSIM", "MS-SSIM", "LPIPS", *(["FID"] if with_fid else [])):
        table.add_column(col, justify="left" if col in ("curve", "point", "bits") else "right")
    for curve in rd["curves"]:
        for i, p in enumerate(curve["points"]):
            table.add_row(curve["name"] if i == 0 else "", p["label"], curve["bits"], _f(p["bpp"], ".4f"),
                          _f(p["psnr"], ".2f"), _f(p.get("ssim"), ".4f"), _f(p["ms_ssim"], ".4f"),
                          _f(p["lpips"], ".4f", "n/a"), *([_f(p.get("fid"), ".3f", "n/a")] if with_fid else []))
        table.add_section()
    out.print(table)
    if not rd["bd"]:
        if rd["anchor"] is None and len(rd["curves"]) > 1:
            out.print("BD figures: no anchor (run --baselines, or pick a curve with --anchor)")
        return
    bd = Table(title=f"Bjøntegaard deltas vs {rd['anchor']} ({rd['bd_method']} interpolation; "
                     "negative BD-rate = fewer bits than the anchor)", title_justify="left")
    for col in ("codec", "BD-rate (PSNR)", "BD-PSNR", "BD-rate (MS-SSIM dB)", "note"):
        bd.add_column(col, justify="left" if col in ("codec", "note") else "right")
    for row in rd["bd"]:
        who = row["codec"] if row["anchor"] == rd["anchor"] else f"{row['codec']} vs {row['anchor']}"
        bd.add_row(who, _f(row["bd_rate_psnr"], "+.2f", "n/a") + ("%" if row["bd_rate_psnr"] is not None else ""),
                   _f(row["bd_psnr"], "+.3f", "n/a") + (" dB" if row["bd_psnr"] is not None else ""),
                   _f(row["bd_rate_ms_ssim"], "+.2f", "n/a") + ("%" if row["bd_rate_ms_ssim"] is not None else ""),
                   row["note"] or "")
    out.print(bd)
    if rd.get("plot"):
        out.print(f"RD plot: {rd['plot']}", highlight=False)
    kinds = {c["bits"] for c in rd["curves"]}
    if len(kinds) > 1:
        out.print("note: curves mix estimated and real bits; compare with --real for coded bits", highlight=False)


__all__ = ["console", "copy_file", "footnotes", "plot_title", "print_document", "print_rd", "write_csv"]


def provenance_lines(doc: EvalDocument) -> list[str]:
    """What was evaluated: the checkpoint(s) and the clip set (paths relative to the run
    folder when inside it, else to the current folder when inside it)."""
    import os

    from dcvc_bench.evaldoc import index_entry

    entry = index_entry(doc, "", None)
    here = os.getcwd()

    def shown(path: str) -> str:
        if not os.path.isabs(path):
            path = os.path.join(doc["run"], path) if doc.get("run") else path
        rel = os.path.relpath(path, here)
        return path if rel.startswith("..") else rel

    lines = []
    if entry["checkpoints"]:
        lines.append("checkpoints: " + ", ".join(shown(c) for c in entry["checkpoints"]))
    clips = [shown(c) for c in entry["clips"]]
    folders = sorted({os.path.dirname(c) or "." for c in clips})
    frames = sorted({c["frames"] for c in doc["clips"]})
    each = f"{frames[0]} frames each" if len(frames) == 1 else f"{frames[0]}-{frames[-1]} frames"
    if len(folders) == 1:
        names = ", ".join(os.path.basename(c) for c in clips)
        lines.append(f"clips: {len(clips)} in {folders[0]}/ ({names}), {each}")
    else:
        lines.append(f"clips: {len(clips)} ({', '.join(clips)}), {each}")
    return lines


def print_anchor(doc: EvalDocument, console) -> None:
    """The ``--anchor-json`` table: BD-rate per class and averaged, per curve."""
    section = doc.get("anchor_json")  # type: ignore[misc]
    if not section:
        return
    from rich.table import Table

    classes = list(dict.fromkeys(c for row in section["comparisons"] for c in row["classes"]))
    table = Table(title=f"BD-rate vs {section['name']} ({section['metric']}, {section['method']}, per class)",
                  title_justify="left")
    table.add_column("curve")
    for c in classes:
        table.add_column(c, justify="right")
    table.add_column("average", justify="right")

    def pct(v):
        return "n/a" if v is None else f"{v:+.2f} %"

    for row in section["comparisons"]:
        table.add_row(row["test"], *[pct(row["classes"].get(c, {}).get("bd_rate")) for c in classes],
                      pct(row["average"]))
    console.print(table)
