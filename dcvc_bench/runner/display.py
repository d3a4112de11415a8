"""What `dcvc-bench run` shows while it works.

On a terminal, a rich Live view: per running step its position (i of N), stage/GOP/λ, an
epoch bar with ETA, loss, BPP, PSNR, LR and the last evaluation; step starts and ends
scroll above it. Elsewhere (a log file, CI) plain lines: a step's start, one line per
epoch, its evaluations, its end — never one per iteration. Both are fed the trainer's
events (shared/DESIGN.md) and are safe to call from several track threads.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

from dcvc_bench.curriculum import Step
from dcvc_bench.curriculum.iframe_spec import VQ_TYPES
from dcvc_bench.health import Collapse, collapses


def human_size(n: float) -> str:
    """Bytes as B/KB/MB/GB (1024-based), for checkpoint tables."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def eval_summary(event: dict[str, Any]) -> str:
    """``PSNR 31.20 dB, BPP 0.1234, MS-SSIM 0.9712`` from an eval event (or ledger copy)."""
    text = f"PSNR {_num(event.get('psnr'), '.2f')} dB, BPP {_num(event.get('bpp'), '.4f')}"
    if isinstance(event.get("ms_ssim"), (int, float)):
        text += f", MS-SSIM {event['ms_ssim']:.4f}"
    return text


@dataclass
class StepView:
    """What is known of one running step, updated from its events."""

    step: Step
    position: int                     # 1-based among all steps of the run
    total: int
    start: str
    attempt: int
    epochs_done: int = 0
    iters_per_epoch: int | None = None
    iter: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)   # the last train event
    last_eval: dict[str, Any] | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)   # for latent health
    started: float = field(default_factory=time.time)
    seconds_per_iter: float | None = None    # training speed within the current epoch
    seconds_per_epoch: float | None = None   # wall time of the last whole epoch (eval included)
    _speed_mark: tuple[float, int, int] | None = None  # (t, epoch, iter) of an epoch's first train event
    _epoch_started: float | None = None

    @property
    def label(self) -> str:
        return f"[{self.position}/{self.total}] {self.step.id}"

    @property
    def header(self) -> str:
        lmbda = self.step.lambda_label
        return self.step.label + (f", λ {lmbda}" if lmbda != "-" else "")

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        t = float(event["t"]) if isinstance(event.get("t"), (int, float)) else time.time()
        if kind == "step_start":
            self.epochs_done = int(event.get("start_epoch") or 0)
            self.iters_per_epoch = event.get("iters_per_epoch") or self.iters_per_epoch
            self.iter, self._epoch_started = 0, t
        elif kind == "train":
            self.metrics = event
            self.epochs_done = int(event.get("epoch") or 0)
            self.iters_per_epoch = event.get("iters_per_epoch") or self.iters_per_epoch
            self.iter = int(event.get("iter") or 0)
            mark = self._speed_mark
            if mark is None or mark[1] != self.epochs_done:
                self._speed_mark = (t, self.epochs_done, self.iter)
            elif self.iter > mark[2]:
                self.seconds_per_iter = (t - mark[0]) / (self.iter - mark[2])
        elif kind == "eval":
            self.last_eval = event
            self.evals.append(event)
        elif kind == "checkpoint" and event.get("kind") == "latest":
            epoch = int(event.get("epoch") or self.epochs_done)
            if epoch > self.epochs_done:
                if self._epoch_started is not None:
                    self.seconds_per_epoch = t - self._epoch_started
                self._epoch_started = t
            self.epochs_done, self.iter = epoch, 0

    def eta(self) -> tuple[float | None, float | None]:
        """(seconds left in this epoch, seconds left in this step), when measurable. A
        whole epoch's wall time (evaluation included) is used once one was seen."""
        if self.epochs_done >= self.step.epochs:
            return 0.0, 0.0
        if self.seconds_per_iter is None or not self.iters_per_epoch:
            return None, None
        left_in_epoch = max(self.iters_per_epoch - self.iter, 0)
        epoch_left = left_in_epoch * self.seconds_per_iter
        later = self.step.epochs - self.epochs_done - 1
        if self.seconds_per_epoch is not None:
            return epoch_left, (later + left_in_epoch / self.iters_per_epoch) * self.seconds_per_epoch
        return epoch_left, epoch_left + later * self.iters_per_epoch * self.seconds_per_iter

    def collapsed(self) -> list[Collapse]:
        """Latents collapsed at the step's newest evaluation (:mod:`dcvc_bench.health`)."""
        return collapses(self.evals, self.step.stage)

    def metrics_line(self) -> str:
        m = self.metrics
        if not m:
            return "waiting for the first iterations..."
        return (f"loss {_num(m.get('loss'), '.4f')}  bpp {_num(m.get('bpp'), '.4f')}  "
                f"psnr {_num(m.get('psnr'), '.2f')} dB  lr {_num(m.get('lr'), '.2e')}  {self._rate_note()}")

    def _rate_note(self) -> str:
        if self.step.is_iframe and self.step.i_frame_type in VQ_TYPES:
            return "(bpp: uniform, indices × layers × log2 K over the pixels)"
        return proxy_note(self.last_eval)


def proxy_note(last_eval: dict[str, Any] | None) -> str:
    """Training's bpp is the likelihood proxy: say so, with its bias at the last evaluation."""
    proxy = (last_eval or {}).get("train_proxy")
    bias = proxy.get("bias_percent") if isinstance(proxy, dict) else None
    measured = f", {bias:+.1f} % vs coded at the last eval" if isinstance(bias, (int, float)) else ""
    return f"(bpp: training likelihood{measured})"


class Display:
    """Shared state and lines; subclasses decide how a line and the views are shown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.views: dict[str, StepView] = {}

    # -- to override ------------------------------------------------------------------
    def line(self, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop drawing (the Live view leaves its last frame on screen)."""

    # -- called by the runner -----------------------------------------------------------
    def message(self, text: str) -> None:
        self.line(text)

    def step_skipped(self, step: Step, position: int, total: int, reason: str) -> None:
        self.line(f"[{position}/{total}] {step.id}: skip ({reason})")

    def step_started(self, step: Step, position: int, total: int, start: str, attempt: int) -> None:
        view = StepView(step, position, total, start, attempt)
        with self._lock:
            self.views[step.id] = view
        again = f", attempt {attempt}" if attempt > 1 else ""
        self.line(f"{view.label}: {view.header}, {step.epochs} epoch(s){again}; start: {start}")

    def step_event(self, step: Step, event: dict[str, Any]) -> None:
        with self._lock:
            view = self.views.get(step.id)
            if view is None:
                return
            before = view.epochs_done
            view.apply(event)
        kind = event.get("event")
        if kind == "eval":
            self.line(f"{view.label}: eval after epoch {event.get('epoch')}: {eval_summary(event)}")
            for collapse in view.collapsed():
                self.line(f"{view.label}: WARNING {collapse.warning()}")
        elif kind == "checkpoint" and event.get("kind") == "latest" and view.epochs_done > before:
            self.epoch_done(view)

    def epoch_done(self, view: StepView) -> None:
        """One line per finished epoch (the Live view shows progress continuously instead)."""

    def step_ended(self, step: Step, status: str, detail: str = "") -> None:
        with self._lock:
            view = self.views.pop(step.id, None)
        took = f" after {fmt_duration(time.time() - view.started)}" if view else ""
        label = view.label if view else step.id
        self.line(f"{label}: {status}{took}" + (f": {detail}" if detail else ""))


class PlainDisplay(Display):
    """Plain lines, flushed: readable in a log file."""

    def __init__(self, stream: IO[str] | None = None):
        super().__init__()
        self.stream = stream or sys.stdout
        self._write_lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._write_lock:
            print(text, file=self.stream, flush=True)

    def epoch_done(self, view: StepView) -> None:
        _, step_left = view.eta()
        eta = f"  ETA step {fmt_duration(step_left)}" if step_left is not None else ""
        self.line(f"{view.label}: epoch {view.epochs_done}/{view.step.epochs}  {view.metrics_line()}{eta}")


class LiveDisplay(Display):
    """A rich Live view redrawn 4 times a second from the shared state."""

    def __init__(self, title: str, console: Any = None):
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.console = console or Console()
        self._live = Live(get_renderable=self._render, console=self.console,
                          refresh_per_second=4, transient=False, redirect_stdout=False,
                          redirect_stderr=False)
        self._live.start()

    def line(self, text: str) -> None:
        if self._live.is_started:
            self._live.refresh()  # printing redraws the view: draw the current one, not the last
        self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._live.stop()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            views = list(self.views.values())
        if not views:
            return Text("")
        parts: list[Any] = []
        for view in views:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column()
            grid.add_row(Text(f"{self.title} step {view.position} of {view.total}", style="bold"),
                         Text(f"{view.step.id}  {view.header}  start: {view.start}"
                              + (f"  attempt {view.attempt}" if view.attempt > 1 else "")))
            epoch = min(view.epochs_done + 1, view.step.epochs)
            total = view.iters_per_epoch or 1
            bar = ProgressBar(total=total, completed=min(view.iter, total), width=30)
            epoch_left, step_left = view.eta()
            progress = Table.grid(padding=(0, 1))
            progress.add_row(bar, Text(f"{view.iter}/{view.iters_per_epoch or '?'} it  "
                                       f"ETA epoch {fmt_duration(epoch_left)}, step {fmt_duration(step_left)}"))
            grid.add_row(Text(f"epoch {epoch}/{view.step.epochs}"), progress)
            grid.add_row(Text("train"), Text(view.metrics_line()))
            if view.last_eval is not None:
                grid.add_row(Text("last eval"), Text(f"epoch {view.last_eval.get('epoch')}: "
                                                     f"{eval_summary(view.last_eval)}"))
            for collapse in view.collapsed():
                grid.add_row(Text("warning", style="bold red"), Text(collapse.warning(), style="red"))
            parts.append(grid)
        return Group(*parts)


def make_display(title: str, stream: IO[str] | None = None) -> Display:
    """The Live view on a terminal, plain lines otherwise."""
    stream = stream or sys.stdout
    if stream is sys.stdout and stream.isatty():
        return LiveDisplay(title)
    return PlainDisplay(stream)
