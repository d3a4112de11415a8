"""`dcvc-bench eval`: learned codecs (estimated or really coded) and x265/x264 baselines
on the same clips, per clip and overall, with RD curves and BD-rates. The driver:

- what is evaluated and on which clips: :mod:`dcvc_bench.eval.targets`;
- one evaluator per RD point (estimation, ``--real``, baselines): :mod:`~dcvc_bench.eval.evaluators`;
- metrics and THE summariser (per clip, overall, the rule for missing figures):
  :mod:`~dcvc_bench.eval.scoring`; FID per RD point: :mod:`~dcvc_bench.eval.fid`;
- RD curves and BD figures: :mod:`~dcvc_bench.eval.rd` (math in :mod:`~dcvc_bench.eval.bdrate`);
- the result document: :mod:`dcvc_bench.evaldoc`; tables and CSV: :mod:`~dcvc_bench.eval.report`.

Results go to the terminal, to ``--json``/``--csv`` and to the run folder's ``eval/``
(``<timestamp>-<mode>.json`` + ``latest.json``; with RD curves also ``rd.json`` and
``rd.png``; then ``index.json``, the history of every eval there) for the TUI.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np
import torch

from dcvc_bench.codec.timing import Stopwatch, load_note
from dcvc_bench.errors import UserError
from dcvc_bench.eval.evaluators import Evaluator, baseline_evaluator, learned_evaluators
from dcvc_bench.eval.rd import check_anchor, check_plottable, default_anchor, ms_ssim_label, rd_section
from dcvc_bench.eval.scoring import Scorer, mean, summarize_clip, summarize_overall
from dcvc_bench.eval.targets import (Clip, EvalOptions, EvalRequest, Target, check_counts, clip_frame_count,
                                     latest_run, load_source, parse_depths, resolve_clips, resolve_device,
                                     resolve_targets)
from dcvc_bench.evaldoc import (ClipInfo, EvalDocument, ResultDoc, eval_document, lpips_doc,
                                result_doc, settings_doc)

if TYPE_CHECKING:
    from dcvc_bench.eval.fid import FIDScorer

__all__ = ["eval_command", "evaluate", "fid_scorer", "run_eval", "write_outputs"]


def fid_scorer(req: EvalOptions, device: torch.device, clips: Sequence[Clip], color: str = "rgb") -> FIDScorer:
    """FID as ``--fid/--no-fid --fid-weights --fid-dims`` ask, planned for ``clips``: the
    network loaded when the weights are here and enough frames will be evaluated; with
    ``--fid``, no weights or too few frames is one line, before anything is evaluated.
    Not in YUV 4:2:0 mode (scored per plane; ``--fid`` there is refused)."""
    from dcvc_bench.eval.fid import FIDScorer

    if color == "yuv420":
        if req.fid:
            raise UserError("--fid: FID is an RGB metric; --color yuv420 scores per plane: drop --fid or --color yuv420")
        fid = FIDScorer(req.fid_weights, req.fid_dims, device, enabled=False)
        fid.reason = "FID not computed in --color yuv420 (scored per plane)"
        return fid
    fid = FIDScorer(req.fid_weights, req.fid_dims, device, enabled=req.fid)
    frames: Optional[int] = req.frames
    bound = sum((c.frames if c.frames is not None else (frames or 10 ** 9)) for c in clips)
    fid.plan(bound, exact=lambda: sum(clip_frame_count(c, frames) for c in clips))
    return fid


def evaluate(evaluators: Sequence[Evaluator], clips: Sequence[Clip], frames: Optional[int], scorer: Scorer,
             ffmpeg: Optional[str] = None,
             echo: Callable[[str], None] = lambda s: None,
             color: str = "rgb") -> tuple[list[ClipInfo], list[ResultDoc]]:
    """Run every evaluator on every clip (each clip decoded once, then freed).
    Each evaluator scores through ``scorer.for_point(its id)``, so that the scorer's FID
    (if any) sees every frame it scores. ``frames`` None: all of each clip; a clip's own
    condition (``Clip.frames``, ``intra_period``) comes first. ``color`` "yuv420": scored
    against each clip's source planes (:meth:`Scorer.with_planes`). Returns (clip
    descriptions, per-evaluator results with per-clip and overall figures, FID on the
    overall)."""
    from dcvc_bench.eval.metrics import ms_ssim_setting, ssim_setting

    clip_info: list[ClipInfo] = []
    per_eval: dict[str, dict[str, dict]] = {ev.id: {} for ev in evaluators}
    for clip in clips:
        loaded = load_source(clip, frames, color)
        frames_u8 = loaded.frames_u8
        clip_scorer = scorer.with_planes(loaded.planes, loaded.bit_depth)
        t, _, h, w = frames_u8.shape
        _, lpips_reason = scorer.lpips_for(h, w)
        if color == "yuv420":
            lpips_reason = "not computed in --color yuv420 (scored per plane)"
            clip_scorer.lpips = None
        info: ClipInfo = {"name": clip.name, "path": str(clip.path.resolve()), "width": w, "height": h, "frames": t,
                          "ms_ssim": ms_ssim_setting(h, w)["label"], "ssim": ssim_setting(h, w)["label"],
                          "lpips": lpips_reason or "LPIPS (alex)"}
        if clip.dataset is not None:
            info["dataset"] = clip.dataset
        if clip.intra_period is not None:
            info["intra_period"] = clip.intra_period
        if color == "yuv420":
            info["bit_depth"] = loaded.bit_depth
        if ffmpeg is not None and color != "yuv420":
            from dcvc_bench.eval import baselines as bl

            ceiling = scorer.clip(frames_u8, torch.from_numpy(np.ascontiguousarray(
                bl.colour_roundtrip(ffmpeg, frames_u8.permute(0, 2, 3, 1).numpy()).transpose(0, 3, 1, 2))))
            info["colour_roundtrip_psnr"] = mean(m["psnr"] for m in ceiling)
        clip_info.append(info)
        scorer.originals(clip.name, frames_u8)
        own = {"intra_period": clip.intra_period} if clip.intra_period is not None else {}
        for ev in evaluators:
            echo(f"{clip.name} ({w}x{h}, {t} frames): {ev.id}")
            records, header_bits, extra = ev.run(clip.name, frames_u8, clip_scorer.for_point(ev.id), **own)
            summary = summarize_clip(records, h * w, header_bits)
            summary.update(extra)
            summary["per_frame"] = records
            per_eval[ev.id][clip.name] = summary
        del frames_u8, loaded, clip_scorer
    results = [result_doc(ev.id, ev.curve, ev.kind, ev.bits, ev.source,
                          summarize_overall(list(per_eval[ev.id].values())), per_eval[ev.id],  # type: ignore[arg-type]
                          fid=scorer.fid_result(ev.id))
               for ev in evaluators]
    return clip_info, results


def _curve_name(target: Target, ema: bool) -> str:
    base = target.run_dir.name if target.run_dir is not None else "learned"
    return f"{base} (EMA)" if ema else base


def _clips_of(req: EvalRequest, run_dir: Optional[Path]) -> list[Clip]:
    """The clips to evaluate, each with its own test condition when a preset or dataset
    config sets one (:mod:`dcvc_bench.eval.conditions`)."""
    from dcvc_bench.eval.conditions import check_preset, choose, load_dataset_config

    preset = check_preset(req.conditions)
    if req.dataset_config is not None:
        if req.videos is not None:
            raise UserError("--dataset-config names the sequences: drop --videos or --dataset-config")
        clips = []
        for seq in load_dataset_config(req.dataset_config):
            frames = choose(req.frames, preset, seq.frames, "frames")
            ip = choose(req.intra_period, preset, seq.intra_period, "intra_period")
            check_counts(1 if frames is None else frames, ip)  # type: ignore[arg-type]
            clips.append(Clip(seq.name, seq.path, dataset=seq.dataset, frames=frames, all_frames=frames is None,
                              intra_period=ip, width=seq.width, height=seq.height))
        return clips
    return resolve_clips(req.videos, run_dir)


def run_eval(req: EvalRequest, echo: Callable[[str], None] = lambda s: None) -> EvalDocument:
    """Evaluate as asked and return the result document; nothing is printed or written here."""
    from dcvc_bench.eval import baselines as bl
    from dcvc_bench.eval.bdrate import check_method
    from dcvc_bench.eval.conditions import check_preset, choose

    preset = check_preset(req.conditions)
    frames = choose(req.frames, preset, None, "frames")
    intra_period = choose(req.intra_period, preset, None, "intra_period")
    assert intra_period is not None
    check_counts(1 if frames is None else frames, intra_period)
    if req.color not in ("rgb", "yuv420"):
        raise UserError(f"--color {req.color!r}: use rgb or yuv420")
    bd_method = check_method(req.bd_method or ("pchip" if req.anchor_json else "akima"))
    if req.baselines_only and req.checkpoints:
        raise UserError("--baselines-only evaluates no checkpoint: drop --checkpoint or --baselines-only")
    if req.baselines_only and not req.baselines:
        raise UserError("--baselines-only needs --baselines x265,x264")
    if not req.baselines and (req.qp or req.crf):
        raise UserError("--qp/--crf set the baselines' rate points: add --baselines x265,x264")
    depths = parse_depths(req.rvq_layers)
    if depths and req.baselines_only:
        raise UserError("--rvq-layers sets the RVQ depths of checkpoints: drop it or --baselines-only")
    if req.anchor_json is not None:
        from dcvc_bench.eval.dcvc_json import METRICS, load

        load(req.anchor_json)  # a bad anchor file is refused before anything is evaluated
        if req.anchor_metric not in METRICS:
            raise UserError(f"--anchor-metric {req.anchor_metric!r}: use one of {', '.join(METRICS)}")
    points, ffmpeg = [], None
    if req.baselines:
        points = bl.parse_points(req.baselines, req.preset, req.qp, req.crf)
        ffmpeg = bl.find_ffmpeg(req.ffmpeg)
        bl.check_encoders(ffmpeg, sorted({p.codec for p in points}))
    device = resolve_device(req.device)

    targets: list[Target] = []
    notes: list[str] = []
    run_dir: Optional[Path] = None
    if req.baselines_only:
        if req.videos is None and req.dataset_config is None:
            run_dir = latest_run(req.runs_dir)
    else:
        try:
            targets, notes = resolve_targets(req.checkpoints, req.runs_dir)
        except UserError as exc:
            if req.baselines and req.videos is not None and not req.checkpoints:
                raise UserError(f"{exc}; or, to evaluate only the baselines on {req.videos}, "
                                "add --baselines-only") from None
            raise
        run_dir = next((t.run_dir for t in targets if t.run_dir is not None), None)
    clips = _clips_of(req, run_dir)

    learned_curves = [_curve_name(t, req.ema) for t in targets]
    if depths:
        learned_curves = [f"{c} L{d}" for c in learned_curves for d in depths]
    check_anchor(req.anchor, [*learned_curves, *(p.codec for p in points)])
    fid = fid_scorer(replace(req, frames=frames), device, clips, req.color)
    scorer = Scorer.create(device, fid)
    evaluators: list[Evaluator] = []
    for target in targets:
        for ev in learned_evaluators(target, req.ema, intra_period, device, real=req.real,
                                     curve=_curve_name(target, req.ema), depths=depths):
            if any(e.id == ev.id for e in evaluators):
                ev.id = f"{ev.id} ({target.path.name})"
            evaluators.append(ev)
    evaluators += [baseline_evaluator(ffmpeg, p, intra_period) for p in points]
    check_plottable(req.plot_out, evaluators)

    watch = Stopwatch()
    clip_info, results = evaluate(evaluators, clips, frames, scorer, ffmpeg, echo, color=req.color)
    notes = notes + _timing_notes(results, watch)
    mode = "real" if req.real else ("baselines" if req.baselines_only else "estimate")
    # Depth curves without a baseline: BD-rates of every depth against the deepest one.
    anchor = default_anchor(results, req.anchor, f"{_curve_name(targets[0], req.ema)} L{depths[-1]}" if depths else None)
    rd = rd_section(results, anchor, require_anchor=req.anchor is not None, method=bd_method)
    if rd is not None:
        rd["ms_ssim_label"] = ms_ssim_label(clip_info)
    settings = settings_doc(frames=frames if frames is not None else max(c["frames"] for c in clip_info),
                            intra_period=intra_period, real=req.real, ema=req.ema,
                            device=str(device), videos=str(req.videos) if req.videos else None,
                            rvq_layers=depths or None)
    settings.update({"preset": req.conditions, "color": req.color,  # type: ignore[typeddict-unknown-key]
                     "all_frames": frames is None,
                     "dataset_config": str(req.dataset_config.resolve()) if req.dataset_config else None})
    doc = eval_document(
        mode=mode, run=str(run_dir.resolve()) if run_dir else None, settings=settings,
        lpips=lpips_doc(scorer.lpips is not None and req.color == "rgb",
                        scorer.lpips_reason if req.color == "rgb" else "not computed in --color yuv420"),
        fid=fid.describe(),
        baselines=bl.describe_settings(intra_period, req.color) if points else None,
        clips=clip_info, results=results, rd=rd, notes=notes + [n for ev in evaluators for n in ev.notes])
    if req.anchor_json is not None:
        add_anchor(doc, req.anchor_json, req.anchor_name, req.anchor_metric, bd_method)
    return doc


def add_anchor(doc: EvalDocument, path: Path, name: Optional[str], metric: str, method: str) -> None:
    """``--anchor-json``: the DCVC-format anchor compared with every curve per class
    (``doc["anchor_json"]``), its curve over the evaluated sequences and the
    class-averaged BD-rates in the RD section (so the TUI's RD view shows them)."""
    from dcvc_bench.eval.dcvc_json import anchor_section

    section = anchor_section(doc, path, name=name, metric=metric, method=method)
    doc["anchor_json"] = section  # type: ignore[typeddict-unknown-key]
    for row in section["comparisons"]:
        for what, items in (("anchor sequences not evaluated", [f"{c}/{s}" for c, v in row["classes"].items()
                                                               for s in v["anchor_not_evaluated"]]),
                            ("sequences not in the anchor", [f"{c}/{s}" for c, v in row["classes"].items()
                                                            for s in v["not_in_anchor"]]),
                            ("classes not in the anchor", row["missing"]["classes_not_in_anchor"])):
            if items:
                doc["notes"].append(f"--anchor-json {section['name']} vs {row['test']}: {what}: {', '.join(items)}")
    if doc["rd"] is None or not section["curve"]:
        return
    key = "psnr" if metric == "psnr" else None
    doc["rd"]["curves"].append({"name": section["name"], "kind": "anchor", "bits": "real", "points": [
        {"label": f"{section['name']} {p['rate']}", "bpp": p["bpp"], "psnr": p[metric] if key else None, "ssim": None,
         "ms_ssim": None, "lpips": None, "fid": None, "bpp_estimate": None, "rates_bpp": None, "lambda": None,
         "qp": float(p["rate"]) if p["rate"].isdigit() else None, "layers": None}
        for p in sorted(section["curve"], key=lambda p: p["bpp"])]})
    for row in section["comparisons"]:
        per_class = ", ".join(f"{c} {v['bd_rate']:+.2f} %" if v["bd_rate"] is not None else f"{c} n/a"
                              for c, v in row["classes"].items())
        doc["rd"]["bd"].append({"codec": row["test"], "anchor": section["name"],
                                "bd_rate_psnr": row["average"] if metric == "psnr" else None, "bd_psnr": None,
                                "bd_rate_ms_ssim": row["average"] if metric == "msssim" else None,
                                "overlap_psnr": None, "method": method,
                                "note": f"DCVC-format anchor, mean over classes ({per_class})"})


def _timing_notes(results: Sequence[ResultDoc], watch: Stopwatch) -> list[str]:
    """When enc/dec ms were measured (wall clock): this eval's wall and CPU time beside
    them, and a note when the machine is loaded."""
    if not any(r["overall"].get("enc_ms_per_frame") is not None for r in results):
        return []
    cores = os.cpu_count() or 1
    lines = [f"enc/dec ms/frame are wall-clock; this evaluation took {watch.describe()} "
             f"(this process and its ffmpeg children, {cores} cores)"]
    loaded = load_note()
    return lines + ([loaded] if loaded else [])


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    path = folder / f"{stem}{suffix}"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def write_outputs(doc: EvalDocument, req_json: Optional[Path], req_csv: Optional[Path],
                  plot_out: Optional[Path], write_run: bool, *, linear_bpp: bool = False) -> dict[str, str]:
    """Write the result document where asked and into the run folder's ``eval/``
    (then its ``index.json``, see :func:`dcvc_bench.evaldoc.index.update_index`). The PNGs' BPP axis is logarithmic
    unless ``linear_bpp``. Returns {what: path} of everything written."""
    from dcvc_bench.checkpoints import atomic_write_json, json_safe
    from dcvc_bench.eval import report
    from dcvc_bench.evaldoc import rd_document

    written: dict[str, str] = {}
    run = doc.get("run")
    rd = doc.get("rd")
    plottable = rd is not None and (len(rd["curves"]) > 1 or any(len(c["points"]) > 1 for c in rd["curves"]))
    if write_run and run:
        folder = Path(run) / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{timestamp()}-{doc['mode']}"
        main = _unique(folder, stem, ".json")
        if plottable:
            from dcvc_bench.eval.plots import plot_rd

            png = main.with_name(main.stem + "-rd.png")
            plot_rd(rd, png, title=report.plot_title(doc), log_bpp=not linear_bpp)
            report.copy_file(png, folder / "rd.png")
            rd["plot"] = png.name
            rd_doc = rd_document(doc, source=main.name)
            atomic_write_json(main.with_name(main.stem + "-rd.json"), rd_doc)
            atomic_write_json(folder / "rd.json", rd_doc)
            written["rd"] = str(folder / "rd.json")
            written["plot"] = str(png)
        atomic_write_json(main, json_safe(doc))
        atomic_write_json(folder / "latest.json", json_safe(doc))
        written.update(write_dcvc_beside(doc, main))
        written["run"] = str(main)
        written["latest"] = str(folder / "latest.json")
        rd_file = main.with_name(main.stem + "-rd.json")
        from dcvc_bench.evaldoc.index import update_index

        written["index"] = str(update_index(folder, doc, main.name, rd_file.name if plottable else None))
    if plot_out is not None:
        if not plottable:
            raise UserError("--plot: nothing to plot (needs two RD points or two codecs; add --baselines)")
        from dcvc_bench.eval.plots import plot_rd

        plot_rd(rd, plot_out, title=report.plot_title(doc), log_bpp=not linear_bpp)
        written["plot_out"] = str(plot_out)
    if req_json is not None:
        atomic_write_json(req_json, json_safe(doc))
        written.update(write_dcvc_beside(doc, req_json))
        written["json"] = str(req_json)
    if req_csv is not None:
        report.write_csv(doc, req_csv)
        written["csv"] = str(req_csv)
    return written


def write_dcvc_beside(doc: EvalDocument, main: Path) -> dict[str, str]:
    """Each curve's results in microsoft/DCVC's JSON format beside ``main``
    (``<stem>-<curve>.dcvc.json``, :mod:`dcvc_bench.eval.dcvc_json`)."""
    from dcvc_bench.eval.dcvc_json import write_beside

    return write_beside(doc, main)  # type: ignore[arg-type]


def eval_command(req: EvalRequest) -> int:
    """The body of `dcvc-bench eval`: evaluate, print the tables, write the files."""
    from dcvc_bench.eval import report

    console = report.console()
    doc = run_eval(req, echo=lambda line: console.print(f"[dim]{line}[/dim]", highlight=False))
    written = write_outputs(doc, req.json_out, req.csv_out, req.plot_out, req.write_run,
                            linear_bpp=req.linear_bpp)
    report.print_document(doc, console)
    report.print_anchor(doc, console)
    for line in report.provenance_lines(doc):
        console.print(line, highlight=False, markup=False)
    for what, path in written.items():
        console.print(f"wrote {path}", highlight=False)
    return 0
