"""RD curves: quality (PSNR, MS-SSIM or SSIM) against BPP, one line per codec, drawn by
textual-plotext like the training charts (imported when the first curve is shown)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.widgets import Static

from dcvc_bench.evaldoc import RDCurve

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot

#: Markers and colours of the curves, one per curve in turn (markers are single cells;
#: colours are plotext's bright ANSI colours and the same ones for the legend).
MARKERS = ("●", "■", "▲", "◆", "✚", "✖")
COLOURS = (("cyan+", "bright_cyan"), ("yellow+", "bright_yellow"), ("green+", "bright_green"),
           ("magenta+", "bright_magenta"), ("red+", "bright_red"), ("blue+", "bright_blue"))
#: metric key -> (axis label, tick format)
METRICS = {"psnr": ("PSNR dB", ".2f"), "ms_ssim": ("MS-SSIM", ".3f"), "ssim": ("SSIM", ".3f")}


class RDChart(Container):
    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._plot: PlotextPlot | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="chart-empty")

    def show(self, curves: tuple[RDCurve, ...], metric: str, label: str, anchor: str | None = None,
             log_bpp: bool = True) -> Text:
        """Draw the curves; returns their legend (a marker in each curve's colour, its
        name and its kind of bits), for a line outside the plot where it hides nothing.
        ``label`` names the quality axis (the MS-SSIM variant, say); ``log_bpp``: a
        log-scale BPP axis, so that codecs far apart in rate are all readable. Every
        curve's lines are drawn first and the markers last; a marker that would land on a
        cell another curve's marker holds moves one cell right, so none hides another."""
        fmt = METRICS[metric][1]
        lines = []
        for curve in curves:
            points = [(p.bpp, getattr(p, metric)) for p in curve.points]
            points = sorted((x, y) for x, y in points if x is not None and y is not None and (x > 0 or not log_bpp))
            if points:
                lines.append((curve, [x for x, _ in points], [y for _, y in points]))
        legend = Text()
        for n, (curve, _, _) in enumerate(lines):
            what = ", ".join(w for w in (curve.bits, "anchor" if curve.name == anchor else "") if w)
            name = f"{curve.name} ({what})" if what else curve.name
            legend.append(f"{MARKERS[n % len(MARKERS)]} {name}", style=COLOURS[n % len(COLOURS)][1])
            legend.append("  ")
        empty = self.query_one(".chart-empty", Static)
        empty.display = not lines
        if not lines:
            empty.update(Content.from_markup("[dim]no $label points[/]", label=label))
            if self._plot is not None:
                self._plot.display = False
            return legend
        plot = self._plot_widget()
        plot.display = True
        plt = plot.plt
        plt.clear_figure()
        plt.xlabel("BPP (log scale)" if log_bpp else "BPP")
        scale = math.log10 if log_bpp else (lambda v: v)
        all_x = [x for _, values, _ in lines for x in values]
        all_y = [y for _, _, values in lines for y in values]
        low, top = min(all_y), max(all_y)
        x_low, x_high = _x_range(all_x, log_bpp)
        for n, (_, xs, ys) in enumerate(lines):
            plt.plot([scale(x) for x in xs], ys, marker="braille", color=COLOURS[n % len(COLOURS)][0])
        cells = (max(self.size.width - 8, 10), max(self.size.height - 4, 4))  # the plot area, about
        series = [([scale(x) for x in xs], ys) for _, xs, ys in lines]
        for n, placed in enumerate(place_markers(series, (scale(x_low), scale(x_high)), (low, top), cells)):
            plt.scatter(placed, lines[n][2], marker=MARKERS[n % len(MARKERS)], color=COLOURS[n % len(COLOURS)][0])
        ticks = [low, (low + top) / 2, top] if top > low else [low]
        plt.yticks(ticks, [format(t, fmt) for t in ticks])
        if log_bpp:
            marks = _log_ticks(x_low, x_high)
            plt.xticks([math.log10(v) for v in marks], [f"{v:g}" for v in marks])
        plt.xlim(scale(x_low), scale(x_high))
        plot.refresh()
        return legend

    def _plot_widget(self) -> PlotextPlot:
        if self._plot is None:
            from textual_plotext import PlotextPlot

            self._plot = PlotextPlot()
            self.mount(self._plot)
        return self._plot


def _x_range(xs: list[float], log_bpp: bool) -> tuple[float, float]:
    """The BPP axis' ends: the points with a margin (a factor on a log axis)."""
    low, high = min(xs), max(xs)
    if log_bpp:
        if high <= low:
            return low / 1.5, high * 1.5
        margin = (high / low) ** 0.05
        return low / margin, high * margin
    pad = (high - low) * 0.05 or high * 0.05 or 0.01
    return max(low - pad, 0.0), high + pad


def _log_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """1-2-5 ticks inside [low, high] (fewer when there are too many)."""
    ticks: list[float] = []
    for mantissas in ((1, 2, 5), (1, 2, 3, 5, 7)):  # the finer set when the range is short
        ticks = []
        exponent = math.floor(math.log10(low))
        while 10 ** exponent <= high * 10:
            ticks += [float(f"{m * 10 ** exponent:.6g}") for m in mantissas if low <= m * 10 ** exponent <= high]
            exponent += 1
        if len(ticks) >= 3:
            break
    while len(ticks) > most:
        ticks = ticks[::2]
    return ticks or [float(f"{low:.2g}"), float(f"{high:.2g}")]


def place_markers(series: list[tuple[list[float], list[float]]], x_range: tuple[float, float],
                  y_range: tuple[float, float], cells: tuple[int, int]) -> list[list[float]]:
    """Where each curve's markers go (x, in axis units) so that no two share a cell of a
    ``cells`` (columns, rows) plot: a marker whose cell another one holds (drawn earlier)
    moves right, one cell at a time, until it has one of its own."""
    (x_low, x_high), (low, top), (cols, rows) = x_range, y_range, cells
    cell_x = ((x_high - x_low) / cols) or 1.0
    cell_y = ((top - low) / rows) or 1.0
    taken: set[tuple[int, int]] = set()
    out = []
    for xs, ys in series:
        placed = []
        for x, y in zip(xs, ys):
            column, row = round((x - x_low) / cell_x), round((y - low) / cell_y)
            moved = column
            while (moved, row) in taken:
                moved += 1
            taken.add((moved, row))
            placed.append(x + (moved - column) * cell_x)
        out.append(placed)
    return out
