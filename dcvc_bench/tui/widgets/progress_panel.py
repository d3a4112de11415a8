"""The selected step at a glance: what it is, its epoch bar with ETAs, its last numbers."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from dcvc_bench.tui.format import STATE_GLYPHS, duration, num
from dcvc_bench.tui.views import StepProgress

BAR_WIDTH = 16


class ProgressPanel(Vertical):
    """Three lines: the step; its epoch bar, ETAs and how it starts; its last metrics."""

    def compose(self) -> ComposeResult:
        yield Static(id="step-title")
        yield Static(id="epoch-line")
        yield Static(id="step-numbers")

    def show(self, progress: StepProgress) -> None:
        row, step = progress.row, progress.row.step
        glyph, colour = STATE_GLYPHS.get(row.state, ("?", None))
        title = self.query_one("#step-title", Static)
        title.update(Content.from_markup(
            f"[{'$' + colour if colour else 'dim'}]$glyph $state[/]  [b]$id[/] · $what · λ $lam"
            "  [dim]$note[/]",
            glyph=glyph, state=row.state, id=step.id, what=" · ".join(step.parts), lam=step.lambda_label,
            note=row.note))
        title.tooltip = row.note or None
        self.query_one("#epoch-line", Static).update(_epoch_line(progress))
        self.query_one("#step-numbers", Static).update(_numbers(progress))


def _bar(done: int, total: int | None) -> Content:
    filled = round(BAR_WIDTH * min(done / total, 1.0)) if total else 0
    return Content.from_markup("[$success]$filled[/][dim]$left[/]", filled="━" * filled,
                               left="━" * (BAR_WIDTH - filled))


def _epoch_line(progress: StepProgress) -> Content:
    ipe = progress.iters_per_epoch
    its = f"{progress.iter}/{ipe} it" if ipe else "- it"
    state = progress.row.state
    if state == "running" and progress.eta_epoch_s is not None:
        timing = f"ETA epoch {duration(progress.eta_epoch_s)}, step {duration(progress.eta_step_s)}"
    elif state == "running":
        timing = "ETA after two reports"
    elif progress.took_s is not None:
        timing = f"trained {duration(progress.took_s)}"
    else:
        timing = "not started"
    if state == "skipped":
        return Content.from_markup("[dim]skipped by user: never launched · [b]k[/] runs it again[/]")
    verb = "started from" if state in ("done", "running") else "starts from"
    return Content.assemble(
        f"epoch {progress.epoch}/{progress.row.step.epochs} ", _bar(progress.iter, ipe),
        Content.from_markup(" $its · $timing · [dim]$verb[/] $start", its=its, timing=timing, verb=verb,
                            start=progress.row.start_text))


def _numbers(progress: StepProgress) -> Content:
    numbers = _last_numbers(progress.last)
    if not progress.warnings:
        return numbers
    return Content.assemble(numbers, *(Content.from_markup("\n[$error]⚠ $text[/]", text=w) for w in progress.warnings))


def _last_numbers(last: dict | None) -> Content:
    if last is None:
        return Content.from_markup("[dim]no training events yet[/]")
    return Content.from_markup(
        "[dim]last:[/] loss [b]$loss[/] · PSNR [b]$psnr[/] dB · bpp [b]$bpp[/] · LR $lr · $fps frames/s · "
        "MSE $mse · [dim]bpp y $y z $z mv_y $mvy mv_z $mvz[/]",
        loss=num(last.get("loss"), ".4g"), psnr=num(last.get("psnr"), ".2f"), mse=num(last.get("mse"), ".2e"),
        bpp=num(last.get("bpp"), ".4f"), y=num(last.get("bpp_y"), ".4f"), z=num(last.get("bpp_z"), ".4f"),
        mvy=num(last.get("bpp_mv_y"), ".4f"), mvz=num(last.get("bpp_mv_z"), ".4f"),
        lr=num(last.get("lr"), ".1e"), fps=num(last.get("frames_per_s"), ".1f"))
