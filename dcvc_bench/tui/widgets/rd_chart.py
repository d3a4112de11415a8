"""RD curves: quality (PSNR, MS-SSIM or SSIM) against BPP, one line per codec, drawn by
textual-plotext like the training charts (imported when the first curve is shown)."""

from __future__ import annotations

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

    def show(self, curves: tuple[RDCurve, ...], metric: str, label: str, anchor: str | None = None) -> Text:
        """Draw the curves; returns their legend (a marker in each curve's colour, its
        name and its kind of bits), for a line outside the plot where it hides nothing.
        ``label`` names the quality axis (the MS-SSIM variant, say)."""
        fmt = METRICS[metric][1]
        lines = []
        for curve in curves:
            points = [(p.bpp, getattr(p, metric)) for p in curve.points]
            points = sorted((x, y) for x, y in points if x is not None and y is not None)
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
        plt.xlabel("BPP")
        for n, (_, xs, ys) in enumerate(lines):
            colour = COLOURS[n % len(COLOURS)][0]
            plt.plot(xs, ys, marker="braille", color=colour)
            plt.scatter(xs, ys, marker=MARKERS[n % len(MARKERS)], color=colour)
        ys = [y for _, _, values in lines for y in values]
        low, top = min(ys), max(ys)
        ticks = [low, (low + top) / 2, top] if top > low else [low]
        plt.yticks(ticks, [format(t, fmt) for t in ticks])
        xs = [x for _, values, _ in lines for x in values]
        pad = (max(xs) - min(xs)) * 0.05 or max(xs) * 0.05 or 0.01
        plt.xlim(max(min(xs) - pad, 0.0), max(xs) + pad)
        plot.refresh()
        return legend

    def _plot_widget(self) -> PlotextPlot:
        if self._plot is None:
            from textual_plotext import PlotextPlot

            self._plot = PlotextPlot()
            self.mount(self._plot)
        return self._plot
