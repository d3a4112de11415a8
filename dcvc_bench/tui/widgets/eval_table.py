"""Every evaluation of a track: PSNR, BPP, MS-SSIM, RD loss, I- and P-frames, normal
and EMA weights, with the best row (lowest RD loss) marked."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from dcvc_bench.tui.format import num
from dcvc_bench.tui.views import EvalRow
from dcvc_bench.tui.widgets.sized_table import fill

COLUMNS = ("", "step", "ep", "model", "PSNR", "BPP", "MS-SSIM", "RD loss", "I PSNR", "I BPP", "P PSNR", "P BPP")
BEST = "★"


class EvalTable(DataTable[Text]):
    """Redrawn only when its rows change; the cursor stays where the user left it."""

    def __init__(self, *, one_track: bool, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.one_track = one_track  # name steps by their phase (s1g2): the title names the track
        self._rows: list[EvalRow] = []

    def on_mount(self) -> None:
        fill(self, COLUMNS, [])

    def show(self, rows: list[EvalRow]) -> None:
        if rows == self._rows:
            return
        self._rows = rows
        fill(self, COLUMNS, [_cells(row, self.one_track) for row in rows])


def _cells(row: EvalRow, one_track: bool) -> list[Text]:
    style = "bold" if row.best else ""
    values = [num(row.psnr, ".2f"), num(row.bpp, ".4f"), num(row.ms_ssim, ".4f"), num(row.rd_loss, ".3f"),
              num(row.i_psnr, ".2f"), num(row.i_bpp, ".4f"), num(row.p_psnr, ".2f"), num(row.p_bpp, ".4f")]
    return [Text(BEST if row.best else " ", style="bold"), Text(row.phase if one_track else row.step_id, style=style),
            Text(str(row.epoch if row.epoch is not None else "-"), justify="right"),
            Text(row.model, style="dim" if row.model == "EMA" else ""),
            *(Text(v, style=style, justify="right") for v in values)]
