"""The rows the TUI's tables and tree show, made from the runner's answers (ledger,
decisions) and the files on disk: a step's state and start, its evaluations, its
checkpoints. Pure Python (no Textual, no torch); :class:`~dcvc_bench.tui.model.RunModel`
calls these under its lock."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable

from dcvc_bench.checkpoints import KINDS, parse_iframe_checkpoint_name
from dcvc_bench.curriculum import StartKind, Step, describe_start
from dcvc_bench.curriculum.steps import IFRAME_SCOPE
from dcvc_bench.evaldoc import as_float, as_int
from dcvc_bench.runner.resume import Action, Decision
from dcvc_bench.runner.status import RunView, slurm_cell
from dcvc_bench.tui.readers import CheckpointFile
from dcvc_bench.tui.views import CheckpointRow, EvalRow, StepRow


def step_row(view: RunView, step: Step, decision: Decision) -> StepRow:
    record = view.ledger.get(step.id)
    if decision.user_skipped:
        return StepRow(step, "skipped", record.epochs_done if record is not None else 0, "-",
                       "nothing: skipped by user, never launched", "skipped by user")
    word = view.status_word(step)
    state = next((w for w in ("interrupted", "running") if word.startswith(w)), word)
    row = _step_row(step, decision, record, state)
    job = slurm_cell(record, view.live_jobs.get(step.id))  # a Slurm step: its job id and Slurm state, first in its note
    if job == "-":
        return row
    return dataclasses.replace(row, note=f"Slurm job {job}" + (f"; {row.note}" if row.note else ""))


def _step_row(step: Step, decision: Decision, record: Any, state: str) -> StepRow:
    if state == "done" and decision.action is Action.RUN:
        state = "will re-run"
    epochs_done = record.epochs_done if record is not None else 0
    if decision.action is Action.RUN and state != "running" and decision.start is not None:
        note = decision.reason + (f"; {decision.note}" if decision.note else "") \
            + (f"; cannot start: missing {decision.missing}" if decision.missing else "")
        return StepRow(step, state, epochs_done, decision.start.value, decision.how(), note)
    kind = record.start_kind if record is not None else None
    known = kind in {k.value for k in StartKind}
    text = describe_start(step, StartKind(kind)) if known else "-"
    return StepRow(step, state, epochs_done, kind if known else "-", text,  # type: ignore[arg-type]
                   record.message if record is not None else "")


def eval_rows(step: Step, event: dict[str, Any]) -> Iterable[EvalRow]:
    if step.is_iframe:
        yield from _iframe_eval_rows(step, event)
        return
    sources = [("normal", event)]
    if isinstance(event.get("ema"), dict):
        sources.append(("EMA", event["ema"]))
    for model, src in sources:
        i_frame = src.get("i_frame") if isinstance(src.get("i_frame"), dict) else {}
        p_frame = src.get("p_frame") if isinstance(src.get("p_frame"), dict) else {}
        yield EvalRow(step.id, step.phase_id, as_int(event.get("epoch")), model, as_float(src.get("psnr")),
                      as_float(src.get("bpp")), as_float(src.get("ms_ssim")), as_float(src.get("rd_loss")),
                      as_float(i_frame.get("psnr")), as_float(i_frame.get("bpp")), as_float(p_frame.get("psnr")),
                      as_float(p_frame.get("bpp")))


def _iframe_eval_rows(step: Step, event: dict[str, Any]) -> Iterable[EvalRow]:
    """An I-frame step's evaluation: one row per RVQ depth evaluated (``L2`` ... with the
    uniform BPP; the deepest, the depth trained, carries the step's RD loss), or one row."""
    epoch = as_int(event.get("epoch"))
    depths = [d for d in (event.get("depths") or []) if isinstance(d, dict)]
    if not depths:
        yield EvalRow(step.id, step.phase_id, epoch, "normal", as_float(event.get("psnr")), as_float(event.get("bpp")),
                      as_float(event.get("ms_ssim")), as_float(event.get("rd_loss")), None, None, None, None)
        return
    deepest = max(as_int(d.get("layers")) or 0 for d in depths)
    for d in depths:
        layers = as_int(d.get("layers"))
        yield EvalRow(step.id, step.phase_id, epoch, f"L{layers}", as_float(d.get("psnr")),
                      as_float(d.get("bpp_uniform")), None,
                      as_float(event.get("rd_loss")) if layers == deepest else None, None, None, None, None)


def codebook_lines(events: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """Codebook use (% of entries used) per RVQ layer against epochs, from an I-frame
    step's ``codebook`` events: one line ``L1``, ``L2``... per layer."""
    lines: dict[str, tuple[list[float], list[float]]] = {}
    for event in events:
        epoch = as_float(event.get("epoch"))
        for layer in event.get("layers") or []:
            usage = as_float(layer.get("usage")) if isinstance(layer, dict) else None
            index = as_int(layer.get("layer")) if isinstance(layer, dict) else None
            if epoch is None or usage is None or index is None:
                continue
            xs, ys = lines.setdefault(f"L{index + 1}", ([], []))
            xs.append(epoch)
            ys.append(usage)
    return lines


def start_source(decision: Decision) -> str | None:
    source = decision.start_flags.get("resume") or decision.start_flags.get("load_pretrained")
    return os.path.abspath(source) if source else None


def checkpoint_sort_key(f: CheckpointFile, order: dict[str, int]) -> tuple[int, int, int]:
    iframe = parse_iframe_checkpoint_name(f.path.name)  # I-frame steps: by step, then kind
    if f.archived_for is not None:
        group = order.get(f.archived_for, 0) if f.archived_for.startswith(f"{IFRAME_SCOPE}-") else f.stage or 0
        return group, 1, order.get(f.archived_for, 0)
    if iframe is not None:
        return order.get(f"{IFRAME_SCOPE}-{iframe[1]}", 0), 0, KINDS.index(f.kind) if f.kind in KINDS else len(KINDS)
    return f.stage or 0, 0, KINDS.index(f.kind) if f.kind in KINDS else len(KINDS)


def checkpoint_row(f: CheckpointFile, prefix: str, now: float, source: str | None) -> CheckpointRow:
    meta = f.meta or {}
    name = f"{f.archived_for}/final.pth" if f.archived_for else f.path.name.removeprefix(prefix)
    epoch = f"{meta.get('epoch')}/{meta.get('epochs')}" if f.meta is not None else "?"
    return CheckpointRow(name, f.kind, f.stage, as_int(meta.get("gop_size")), str(meta.get("step_id") or "?"),
                         epoch, as_float(meta.get("loss")), f.size, max(now - f.mtime, 0.0), f.problem,
                         source is not None and os.path.abspath(f.path) == source)
