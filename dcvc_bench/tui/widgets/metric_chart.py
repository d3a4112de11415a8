"""A line chart of training metrics, drawn by textual-plotext (braille lines, axes, ticks
and a legend that fit in a few terminal rows).

plotext is imported when the first chart with data is shown, not at startup: it costs
about 50 ms, and the first paint comes before the watcher has read any event anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.widgets import Static

from dcvc_bench.tui.views import Chart

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot

#: Points per line handed to plotext: more than a wide terminal can show in braille.
MAX_POINTS = 400


class MetricChart(Container):
    """Draws a :class:`~dcvc_bench.tui.model.Chart`; stage starts are vertical lines."""

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._plot: PlotextPlot | None = None
        self._chart: Chart | None = None
        self._drawn_rows = -1

    def on_resize(self) -> None:
        """The ticks depend on the height: draw again when it changed."""
        if self._chart is not None and self.size.height != self._drawn_rows:
            self.show(self._chart)

    def compose(self) -> ComposeResult:
        yield Static(classes="chart-empty")

    def show(self, chart: Chart) -> None:
        self._chart = chart
        self._drawn_rows = self.size.height
        empty = self.query_one(".chart-empty", Static)
        empty.display = chart.empty
        if chart.empty:
            empty.update(Content.from_markup("$title [dim]· no data yet[/]", title=chart.title))
            if self._plot is not None:
                self._plot.display = False
            return
        plot = self._plot_widget()
        plot.display = True
        plt = plot.plt
        plt.clear_figure()
        plt.title(chart.title)
        lines = {label: _thin(xs, ys) for label, (xs, ys) in chart.lines.items() if xs}
        for label, (xs, ys) in lines.items():
            plt.plot(xs, ys, marker="braille", label=label if len(lines) > 1 else None)
        low = min(min(ys) for _, ys in lines.values())
        top = max(max(ys) for _, ys in lines.values())
        for x, label in chart.marks:
            plt.vertical_line(x, color="gray")
            plt.text(label, x, top, color="gray")
        # No more ticks than plot rows, so plotext never has to choose among them (its
        # choice depends on the order it was drawn in: a snapshot would differ).
        rows = self.size.height - 5  # title, top line, x axis and its labels, legend
        ticks = [low, (low + top) / 2, top] if top > low else [low]
        if top > low and rows < 3:
            ticks = [low, top] if rows == 2 else [top]
        plt.yticks(ticks, [format(t, chart.y_format) for t in ticks])
        if chart.x_max is not None:
            plt.xlim(0, chart.x_max)
        plot.refresh()

    def _plot_widget(self) -> PlotextPlot:
        if self._plot is None:
            from textual_plotext import PlotextPlot  # deferred: see the module docstring

            self._plot = PlotextPlot()
            self.mount(self._plot)
        return self._plot


def _thin(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most ``limit`` points: means of equal runs of neighbours."""
    if len(xs) <= limit:
        return xs, ys
    size = -(-len(xs) // limit)
    runs = range(0, len(xs), size)
    return ([sum(xs[i:i + size]) / len(xs[i:i + size]) for i in runs],
            [sum(ys[i:i + size]) / len(ys[i:i + size]) for i in runs])
