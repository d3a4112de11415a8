"""The RD view: the RD curves of the latest `dcvc-bench eval` that had some
(``eval/rd.json``): quality against BPP, one line per codec, the points, and the
Bjøntegaard deltas of every codec against the anchor. ``rd.json`` is only rewritten by an
eval with two RD points or more, so it may be older than ``latest.json``: both dates
are shown."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from dcvc_bench.tui.format import cell, num
from dcvc_bench.evaldoc import RDView
from dcvc_bench.evaldoc.views import EvalEntry, overlay
from dcvc_bench.tui.screens.history import HistoryScreen
from dcvc_bench.tui.titles import fit_title, refit
from dcvc_bench.tui.widgets.sized_table import FitTable
from dcvc_bench.tui.model import RunModel
from dcvc_bench.tui.widgets.choice_bar import ChoiceBar
from dcvc_bench.tui.widgets.rd_chart import METRICS, RDChart

#: Seconds between two checks for a new rd.json while this view is open.
REFRESH_S = 0.25
POINT_COLUMNS = ("curve", "point", "bits", "BPP", "PSNR", "SSIM", "MS-SSIM", "LPIPS", "λ / QP")
#: Columns shown only when they tell something: SSIM and LPIPS when some point has a value (documents
#: before SSIM, LPIPS without its weights), bits when the curves differ in it (else the legend says it).
OPTIONAL_COLUMNS = ("bits", "SSIM", "LPIPS")
BD_COLUMNS = (("codec", False), ("BD-rate PSNR", True), ("BD-PSNR", True), ("BD-rate MS-SSIM", True),
              ("overlap", True))
TABLES = ("bd", "points")  # one at a time on a short terminal


class RDScreen(Screen[None]):
    BINDINGS = [Binding("escape,d", "app.pop_screen", "Back"),
                Binding("1", "metric('psnr')", "PSNR", tooltip="PSNR against BPP", show=False),
                Binding("2", "metric('ms_ssim')", "MS-SSIM", tooltip="MS-SSIM against BPP", show=False),
                Binding("3", "metric('ssim')", "SSIM", tooltip="SSIM (single scale) against BPP", show=False),
                Binding("h", "history", "History", tooltip="Every `dcvc-bench eval` of the run, newest first: "
                                                           "pick the one whose RD curves are shown"),
                Binding("o", "overlay", "Overlay", tooltip="Draw another evaluation's curves over these (again: "
                                                           "remove them)"),
                Binding("l", "toggle_log", "BPP axis", tooltip="The BPP axis: log scale (default) or linear"),
                Binding("v", "next_table", "BD/points", show=False,
                        tooltip="On a short terminal: the BD-rates or the RD points")]

    def __init__(self, model: RunModel):
        super().__init__()
        self.model = model
        self.metric = "psnr"
        self.log_bpp = True
        self._version = -1
        self.picked: EvalEntry | None = None    # None: eval/rd.json
        self._picked_rd: RDView | None = None
        self.overlaid: EvalEntry | None = None
        self._overlay_rd: RDView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="rd-info")
        with Vertical(id="rd-body"):
            with Horizontal(id="rd-top"):
                yield ChoiceBar([(key, f"{n} {label}") for n, (key, (label, _)) in enumerate(METRICS.items(), start=1)],
                                self.metric, id="rd-metric-bar")
                yield Static(id="rd-legend")
            yield RDChart(id="rd-chart")
            yield ChoiceBar([("bd", "BD-rates"), ("points", "RD points")], "bd", id="rd-table-bar")
            with Horizontal(id="rd-tables", classes="-show-bd"):
                yield FitTable(id="rd-bd", cell_padding=0, more_key="")
                yield FitTable(id="rd-points", cell_padding=0, more_key="")
            yield Static(id="rd-notes")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#rd-bd", FitTable).show([cell(name, right) for name, right in BD_COLUMNS], [])
        fit_title(self.query_one("#rd-body"), f"RD curves · {self.model.run_dir}/eval/rd.json", "RD curves")
        fit_title(self.query_one("#rd-points"), "Points")
        self._refresh()
        self.set_interval(REFRESH_S, self._refresh)

    def _refresh(self) -> None:
        version = self.model.eval_version
        if version == self._version:
            return
        self._version = version
        self._show(self._rd())

    def _rd(self) -> RDView:
        """What is shown: the picked evaluation's curves (else eval/rd.json), and the
        overlaid one's."""
        rd = self._picked_rd if self._picked_rd is not None else self.model.rd_view()
        if self._overlay_rd is not None and self.overlaid is not None and not self._overlay_rd.missing:
            rd = overlay(rd, self._overlay_rd, self.overlaid.when)
        return rd

    class Loaded(Message):
        """An evaluation's RD document was read (in a worker thread)."""

        def __init__(self, entry: EvalEntry, rd: RDView, as_overlay: bool):
            super().__init__()
            self.entry = entry
            self.rd = rd
            self.as_overlay = as_overlay

    def action_history(self) -> None:
        def picked(entry: EvalEntry | None) -> None:
            if entry is not None:
                self._load(entry, False)

        shown = self.picked.file if self.picked is not None else None
        self.app.push_screen(HistoryScreen(self.model.eval_history(), shown, "shows its curves"), picked)

    def action_overlay(self) -> None:
        if self.overlaid is not None:
            self.overlaid, self._overlay_rd = None, None
            self._show(self._rd())
            return

        def picked(entry: EvalEntry | None) -> None:
            if entry is not None:
                self._load(entry, True)

        self.app.push_screen(HistoryScreen(self.model.eval_history(), None, "draws it over these"), picked)

    @work(thread=True, exclusive=True, group="rd-doc", exit_on_error=False, name="read an evaluation")
    def _load(self, entry: EvalEntry, as_overlay: bool) -> None:
        _, rd = self.model.read_eval(entry)
        self.post_message(self.Loaded(entry, rd, as_overlay))

    def on_rdscreen_loaded(self, message: Loaded) -> None:
        if message.rd.missing or message.rd.problem:
            self.notify(message.rd.problem or f"{message.entry.file} has no RD curves (one RD point only)",
                        severity="warning")
            return
        if message.as_overlay:
            self.overlaid, self._overlay_rd = message.entry, message.rd
        else:
            self.picked, self._picked_rd = message.entry, message.rd
        self._show(self._rd())

    def _show(self, rd: RDView) -> None:
        info = self.query_one("#rd-info", Static)
        body = self.query_one("#rd-body")
        usable = not rd.missing and not rd.problem
        body.display = usable
        if rd.missing:
            info.update(Content.from_markup(
                "[dim]no RD curves yet: run[/] [b]$cmd --baselines x265 --qp 22,27,32,37[/] "
                "[dim](rd.json is written when an eval has two RD points or more)[/]",
                cmd=self.model.eval_hint()))
            return
        if rd.problem:
            info.update(Content.from_markup("[$error]$problem[/]", problem=rd.problem))
            return
        info.update(_info(rd, self.model.eval_results().created if self.picked is None else rd.created))
        if self.overlaid is not None:
            info.update(_info(rd, rd.created).append(Content.from_markup(
                " · [b]@ $when[/]: the curves of eval/$file drawn over (o removes them)", when=self.overlaid.when,
                file=self.overlaid.file)))
        shown = f"eval/{self.picked.rd_file}" if self.picked is not None else "eval/rd.json"
        count = len(self.model.eval_history())
        more = f" · h/o: {count} in the history" if count > 1 else ""
        fit_title(self.query_one("#rd-body"), f"RD curves · {self.model.run_dir}/{shown}{more}",
                  f"RD curves · {shown}{more}", f"RD curves · {shown}", "RD curves")
        self._show_chart(rd)
        shown = {name for name, attr in (("SSIM", "ssim"), ("LPIPS", "lpips"))
                 if any(getattr(p, attr) is not None for c in rd.curves for p in c.points)}
        if len({c.bits for c in rd.curves}) > 1:
            shown.add("bits")
        point_rows = []
        for curve in rd.curves:
            for i, p in enumerate(curve.points):
                lam_qp = f"λ {p.lam:g}" if p.lam is not None else (f"QP {p.qp:g}" if p.qp is not None else "-")
                if p.layers is not None:  # `eval --rvq-layers`: the I-frame codec's RVQ depth
                    lam_qp = f"{lam_qp} · L{p.layers}"
                values = [num(p.bpp, ".4f"), num(p.psnr, ".2f")]
                values += [num(p.ssim, ".4f")] if "SSIM" in shown else []
                values += [num(p.ms_ssim, ".4f")]
                values += [num(p.lpips, ".4f")] if "LPIPS" in shown else []
                bits = [cell(curve.bits, False)] if "bits" in shown else []
                point_rows.append([cell(curve.name if i == 0 else "", False, "bold"), cell(p.label, False), *bits,
                                   *(cell(v) for v in values), cell(lam_qp)])
        columns = [c for c in POINT_COLUMNS if c in shown or c not in OPTIONAL_COLUMNS]
        self.query_one("#rd-points", FitTable).show(
            [cell(c, c not in ("curve", "point", "bits")) for c in columns], point_rows,
            drop_order=[columns.index(c) for c in ("LPIPS", "SSIM", "bits", "λ / QP", "MS-SSIM") if c in columns])
        bd_rows = []
        for row in rd.bd:
            codec = row.codec if row.anchor in ("", rd.anchor) else f"{row.codec} vs {row.anchor}"
            bd_rows.append([cell(codec, False, "bold"), cell(_pct(row.bd_rate_psnr)),
                            cell(f"{row.bd_psnr:+.3f} dB" if row.bd_psnr is not None else "n/a"),
                            cell(_pct(row.bd_rate_ms_ssim)), cell(num(row.overlap_psnr, ".0%"))])
        bd = self.query_one("#rd-bd", FitTable)
        bd.show([cell(name, right) for name, right in BD_COLUMNS], bd_rows, drop_order=(4, 3))
        if rd.anchor:
            fit_title(bd, f"BD vs {rd.anchor} · {rd.bd_method} · negative BD-rate = fewer bits",
                      f"BD vs {rd.anchor} · {rd.bd_method} · negative = fewer bits", f"BD vs {rd.anchor}")
        else:
            fit_title(bd, "BD: no anchor")
        self.query_one("#rd-notes", Static).update(_notes(rd))

    def _show_chart(self, rd: RDView) -> None:
        label, _ = METRICS[self.metric]
        if self.metric == "ms_ssim" and rd.ms_ssim_label != "MS-SSIM":
            label = rd.ms_ssim_label
        legend = self.query_one(RDChart).show(rd.curves, self.metric, label, rd.anchor, self.log_bpp)
        self.query_one("#rd-legend", Static).update(legend)

    def on_resize(self) -> None:
        self.call_after_refresh(refit, self)
        rd = self._rd()
        if not rd.missing and not rd.problem:
            self.call_after_refresh(self._show_chart, rd)  # marker cells depend on the chart's size

    @on(ChoiceBar.Chosen, "#rd-table-bar")
    def _table_chosen(self, event: ChoiceBar.Chosen) -> None:
        tables = self.query_one("#rd-tables")
        for name in TABLES:
            tables.set_class(name == event.key, f"-show-{name}")
        self.call_after_refresh(refit, self)

    def action_next_table(self) -> None:
        self.query_one("#rd-table-bar", ChoiceBar).cycle()

    @on(ChoiceBar.Chosen, "#rd-metric-bar")
    def _metric_chosen(self, event: ChoiceBar.Chosen) -> None:
        if event.key != self.metric:
            self.metric = event.key
            rd = self._rd()
            if not rd.missing and not rd.problem:
                self._show_chart(rd)

    def action_toggle_log(self) -> None:
        self.log_bpp = not self.log_bpp
        rd = self._rd()
        if not rd.missing and not rd.problem:
            self._show_chart(rd)

    def action_metric(self, key: str) -> None:
        self.query_one("#rd-metric-bar", ChoiceBar).active = key


def _pct(value: float | None) -> str:
    return f"{value:+.2f}%" if value is not None else "n/a"


def _clips(rd: RDView) -> str:
    names = ", ".join(rd.clips[:3]) + (f" +{len(rd.clips) - 3}" if len(rd.clips) > 3 else "")
    return f"{len(rd.clips)} clip{'s' if len(rd.clips) != 1 else ''} ({names})" if rd.clips else "no clips"


def _info(rd: RDView, latest_created: str) -> Content:
    period = {-1: "one I-frame", 1: "all intra", None: "?"}.get(rd.intra_period, f"I-frame every {rd.intra_period}")
    text = Content.from_markup("RD of the eval of [b]$created[/] · $mode · $clips · up to $frames frames/clip · "
                               "$period", created=rd.created or "?", mode=rd.mode or "?", clips=_clips(rd),
                               frames=str(rd.frames or "?"), period=period)
    if latest_created and latest_created != rd.created:
        text = text.append(Content.from_markup(
            " · [$warning]older than the latest eval ($latest), which wrote none[/]", latest=latest_created))
    return text


def _notes(rd: RDView) -> Content:
    lines = [f"{row.codec}: {row.note}" for row in rd.bd if row.note]
    if rd.colour_path:
        lines.append(f"baselines: {rd.colour_path}")
    if rd.plot:
        lines.append(f"PNG: {rd.plot} (beside rd.json)")
    if len({c.bits for c in rd.curves}) > 1:
        lines.append("note: the curves mix estimated and real bits; evaluate with --real for coded bits")
    return Content("\n".join(lines))
