"""The selected step at a glance: what it is, its epoch bar with ETAs, how it starts, its
last numbers. Lines wrap at word boundaries, never cut; on a small terminal (``compact``)
the panel leaves out what the tree and the charts show (λ, the ledger's note, the start's
detail, LR, frames/s and the bpp terms: charts 3 to 5)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from dcvc_bench.curriculum import StartKind
from dcvc_bench.curriculum.start_words import start_words
from dcvc_bench.tui.format import STATE_GLYPHS, duration, num
from dcvc_bench.tui.views import StepProgress

BAR_WIDTH = 16


class ProgressPanel(Vertical):
    """The step; its epoch bar and ETAs; how it starts; its last metrics."""

    def compose(self) -> ComposeResult:
        yield Static(id="step-title")
        yield Static(id="epoch-line")
        yield Static(id="step-start")
        yield Static(id="step-numbers")

    def show(self, progress: StepProgress, compact: bool = False) -> None:
        row, step = progress.row, progress.row.step
        glyph, colour = STATE_GLYPHS.get(row.state, ("?", None))
        title = self.query_one("#step-title", Static)
        what = " · ".join(step.parts)
        if compact:
            title.update(Content.from_markup(f"[{'$' + colour if colour else 'dim'}]$glyph $state[/]  [b]$id[/] · $what",
                                             glyph=glyph, state=row.state, id=step.id, what=what))
        else:
            title.update(Content.from_markup(
                f"[{'$' + colour if colour else 'dim'}]$glyph $state[/]  [b]$id[/] · $what · λ $lam  [dim]$note[/]",
                glyph=glyph, state=row.state, id=step.id, what=what, lam=step.lambda_label, note=row.note))
        title.tooltip = row.note or None
        self.query_one("#epoch-line", Static).update(_epoch_line(progress))
        start = _start_line(progress, compact)
        self.query_one("#step-start", Static).update(start)
        self.query_one("#step-start", Static).display = bool(start.plain)
        self.query_one("#step-numbers", Static).update(_numbers(progress, compact))


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
    return Content.assemble(f"epoch {progress.epoch}/{progress.row.step.epochs} ", _bar(progress.iter, ipe),
                            f" {its} · {timing}")


def _start_line(progress: StepProgress, compact: bool) -> Content:
    row = progress.row
    if row.state == "skipped":
        return Content("")
    verb = "from" if compact else "started from" if row.state in ("done", "running") else "starts from"
    known = {k.value: k for k in StartKind}
    text = row.start_text
    if compact and row.start in known:
        text = start_words(known[row.start], row.step.reset_learning_rate)
    return Content.from_markup("[dim]$verb[/] $start", verb=verb, start=text)


def _numbers(progress: StepProgress, compact: bool) -> Content:
    numbers = _last_numbers(progress.last, compact)
    if not progress.warnings:
        return numbers
    return Content.assemble(numbers, *(Content.from_markup("\n[$error]⚠ $text[/]", text=w) for w in progress.warnings))


def _last_numbers(last: dict | None, compact: bool) -> Content:
    if last is None:
        return Content.from_markup("[dim]no training events yet[/]")
    values = dict(loss=num(last.get("loss"), ".4g"), psnr=num(last.get("psnr"), ".2f"), mse=num(last.get("mse"), ".2e"),
                  bpp=num(last.get("bpp"), ".4f"), y=num(last.get("bpp_y"), ".4f"), z=num(last.get("bpp_z"), ".4f"),
                  mvy=num(last.get("bpp_mv_y"), ".4f"), mvz=num(last.get("bpp_mv_z"), ".4f"),
                  lr=num(last.get("lr"), ".1e"), fps=num(last.get("frames_per_s"), ".1f"))
    if compact:
        return Content.from_markup("[dim]last:[/] loss [b]$loss[/] · PSNR [b]$psnr[/] dB · bpp [b]$bpp[/]", **values)
    return Content.from_markup(
        "[dim]last:[/] loss [b]$loss[/] · PSNR [b]$psnr[/] dB · bpp [b]$bpp[/] · LR $lr · $fps frames/s\n"
        "[dim]MSE $mse · bpp y $y · z $z · mv_y $mvy · mv_z $mvz[/]", **values)
    return Content.from_markup(
        "[dim]last:[/] loss\u00a0[b]$loss[/] · PSNR\u00a0[b]$psnr[/]\u00a0dB · bpp\u00a0[b]$bpp[/] · LR\u00a0$lr · "
        "$fps\u00a0frames/s · MSE\u00a0$mse\n[dim]bpp terms: y\u00a0$y · z\u00a0$z · mv_y\u00a0$mvy · "
        "mv_z\u00a0$mvz[/]", **values)
    return Content.from_markup(
        "[dim]last:[/] loss [b]$loss[/] · PSNR [b]$psnr[/] dB · bpp [b]$bpp[/] · LR $lr · $fps frames/s · "
        "MSE $mse\n[dim]bpp terms: y $y · z $z · mv_y $mvy · mv_z $mvz[/]", **values)
