"""The latest `dcvc-bench eval` of the run (``eval/latest.json``): one row per RD point
(overall figures), and the per-clip figures of the highlighted one. Every row says
whether its bits are ``real`` (a coded stream, decoded again) or ``estimated`` (the
entropy models' likelihoods, no bitstream), with the estimate and the gap for real
learned coding."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Static

from dcvc_bench.tui.format import cell as _cell
from dcvc_bench.tui.format import num, theme_style
from dcvc_bench.tui.widgets.sized_table import FitTable
from dcvc_bench.evaldoc import EvalResult, EvalResults, Figures

#: Columns (and whether right-aligned). The tables have no cell padding (so that they fit 80
#: columns): every cell starts with one space instead.
RESULT_COLUMNS = (("codec", False), ("bits", False), ("BPP", True), ("PSNR", True), ("MS-SSIM", True),
                  ("LPIPS", True), ("est. BPP", True), ("gap", True), ("enc ms", True), ("dec ms", True))
CLIP_COLUMNS = (("clip", False), ("BPP", True), ("PSNR", True), ("MS-SSIM", True), ("LPIPS", True),
                ("I-frames PSNR/BPP", True), ("P-frames PSNR/BPP", True), ("P1 P2 P3 PSNR", True))
#: Which columns a narrow terminal leaves out first.
RESULT_DROP = (5, 9, 8, 7, 6, 4)   # LPIPS, dec ms, enc ms, gap, est. BPP, MS-SSIM
CLIP_DROP = (7, 4, 3, 6, 5)        # P1 P2 P3, LPIPS, MS-SSIM, P-frames, I-frames
#: The theme colour of each kind of bits.
BITS_COLOUR = {"real": "success", "estimated": "warning"}


class BenchEvalPanel(VerticalScroll):
    """Shows an :class:`~dcvc_bench.tui.model.EvalResults`; a hint when there is none."""

    def __init__(self, hint: str, *, id: str | None = None):
        super().__init__(id=id)
        self.hint = hint
        self._shown: EvalResults | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="bench-info")
        yield FitTable(id="bench-results", cell_padding=0)
        yield FitTable(id="bench-clips", cell_padding=0)
        yield Static(id="bench-hidden")
        yield Static(id="bench-notes")

    def on_mount(self) -> None:
        for selector, columns in (("#bench-results", RESULT_COLUMNS), ("#bench-clips", CLIP_COLUMNS)):
            table = self.query_one(selector, FitTable)
            table.note_on = None
            table.show(_labels(columns), [])
        self.query_one("#bench-hidden").display = False

    @on(FitTable.Fitted)
    def _fitted(self) -> None:
        """Say which columns a narrow terminal leaves out (a wider one shows them)."""
        parts = [f"{', '.join(t.hidden)} ({name})" for name, t in
                 (("results", self.query_one("#bench-results", FitTable)), ("clips", self.query_one("#bench-clips", FitTable)))
                 if t.hidden]
        line = self.query_one("#bench-hidden", Static)
        line.display = bool(parts)
        line.update(Content(f"too narrow for: {'; '.join(parts)}"))

    def show(self, results: EvalResults) -> None:
        if results == self._shown:
            return
        self._shown = results
        table = self.query_one("#bench-results", FitTable)
        clips = self.query_one("#bench-clips", FitTable)
        info = self.query_one("#bench-info", Static)
        notes = self.query_one("#bench-notes", Static)
        usable = not results.missing and not results.problem
        for widget in (table, clips, notes):
            widget.display = usable
        if results.missing:
            self.border_subtitle = ""
            info.update(Content.from_markup("[dim]no dcvc-bench eval results yet: run[/] [b]$cmd[/]", cmd=self.hint))
            return
        if results.problem:
            info.update(Content.from_markup("[$error]$problem[/]", problem=results.problem))
            return
        self.border_subtitle = f"created {results.created}"
        info.update(_info(results))
        reduced = bool(results.ms_ssim_reduced)
        theme = self.app.theme_variables
        table.show(_labels(RESULT_COLUMNS), [_result_cells(r, reduced, theme) for r in results.results],
                   keys=[r.id for r in results.results], drop_order=RESULT_DROP)
        if results.results:
            self._show_clips(results.results[table.cursor_row])
        notes.update(_notes(results))

    @on(DataTable.RowHighlighted, "#bench-results")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._shown is None:
            return
        result = next((r for r in self._shown.results if r.id == event.row_key.value), None)
        if result is not None:
            self._show_clips(result)

    def _show_clips(self, result: EvalResult) -> None:
        clips = self.query_one("#bench-clips", FitTable)
        rows = [*result.clips, result.overall] if len(result.clips) > 1 else list(result.clips)
        clips.show(_labels(CLIP_COLUMNS), [_clip_cells(figures) for figures in rows], drop_order=CLIP_DROP)
        clips.border_title = f"{result.id} per clip"


def _labels(columns: tuple[tuple[str, bool], ...]) -> list[Text]:
    return [_cell(name, right) for name, right in columns]


def _info(results: EvalResults) -> Content:
    kinds = {r.bits for r in results.results if r.kind != "baseline"}
    if "estimated" in kinds:
        how = "[$warning]learned codecs: ESTIMATED bits[/] (entropy-model likelihoods, no bitstream)"
    elif "real" in kinds:
        how = "[$success]learned codecs: REAL bits[/] (every frame coded; the stream decoded again, identical)"
    else:
        how = "baselines only"
    period = {-1: "one I-frame", 1: "all intra", None: "?"}.get(results.intra_period, f"I-frame every "
                                                                                     f"{results.intra_period}")
    clips = ", ".join(f"{c.name} {c.width}×{c.height}×{c.frames}" for c in results.clips[:3])
    if len(results.clips) > 3:
        clips += f" +{len(results.clips) - 3}"
    return Content.from_markup(f"$mode · {how} · $period · $clips", mode=results.mode or "?", period=period,
                               clips=clips or "no clips")


def _bits(kind: str, theme: dict[str, str]) -> Text:
    return _cell(kind, False, theme_style(theme, BITS_COLOUR.get(kind, "foreground"), bold=True))


def _lpips(value: float | None) -> Text:
    return _cell(num(value, ".4f")) if value is not None else _cell("n/a", style="dim")


def _gap(value: float | None) -> str:
    return f"{value:+.2f}%" if value is not None else "-"


def _result_cells(result: EvalResult, reduced: bool, theme: dict[str, str]) -> list[Text]:
    o = result.overall
    ms = num(o.ms_ssim, ".4f") + ("*" if reduced and o.ms_ssim is not None else "")
    return [_cell(result.id, False, "bold" if result.kind == "learned" else ""), _bits(result.bits, theme),
            _cell(num(o.bpp, ".4f")), _cell(num(o.psnr, ".2f")), _cell(ms), _lpips(o.lpips),
            _cell(num(o.bpp_estimate, ".4f")), _cell(_gap(o.rate_gap_percent)), _cell(num(o.enc_ms, ".1f")),
            _cell(num(o.dec_ms, ".1f"))]


def _pair(psnr: float | None, bpp: float | None) -> str:
    return "-" if psnr is None else f"{psnr:.2f}/{num(bpp, '.3f')}"


def _clip_cells(f: Figures) -> list[Text]:
    i_count, p_count = f.i_frames[0], f.p_frames[0]
    firsts = " ".join(num(psnr, ".2f") for psnr, _ in f.p_first3) or "-"
    return [_cell(f.name, False, "bold" if f.name == "overall" else ""), _cell(num(f.bpp, ".4f")),
            _cell(num(f.psnr, ".2f")), _cell(num(f.ms_ssim, ".4f")), _lpips(f.lpips),
            _cell(f"{i_count}× {_pair(*f.i_frames[1:])}" if i_count else "-"),
            _cell(f"{p_count}× {_pair(*f.p_frames[1:])}" if p_count else "-"), _cell(firsts)]


def _notes(results: EvalResults) -> Content:
    psnr = ("PSNR: YUV 4:2:0, (6·Y + U + V) / 8 of per-frame PSNRs" if results.color == "yuv420"
            else "PSNR: RGB, mean of per-frame PSNR")
    lines = [f"{psnr} · BPP: bits over the original pixels · gap: (real − estimated) / estimated BPP · ms per frame"]
    for clip in results.ms_ssim_reduced:
        lines.append(f"* {clip.ms_ssim}: {clip.name} ({clip.width}×{clip.height}) is too small for 5 scales")
    if results.lpips_reason:
        lines.append(f"LPIPS {results.lpips_reason}")
    else:
        lines += [f"LPIPS for {c.name}: {c.lpips}" for c in results.clips if c.lpips.startswith("unavailable")]
    if results.fid_reason:
        lines.append(results.fid_reason)
    lines += [f"note: {n}" for n in results.notes]
    return Content("\n".join(lines))
