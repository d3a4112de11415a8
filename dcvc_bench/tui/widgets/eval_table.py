"""Training-time evaluations as a table: one row per evaluation and model (normal, EMA,
or an I-frame step's RVQ depth), the best one marked. Columns that do not fit are left
out whole, the per-frame-type ones first (:class:`~dcvc_bench.tui.widgets.sized_table.FitTable`)."""

from __future__ import annotations

from rich.text import Text

from dcvc_bench.tui.format import cell, num
from dcvc_bench.tui.views import EvalRow
from dcvc_bench.tui.widgets.sized_table import FitTable

COLUMNS = ("", "step", "ep", "model", "PSNR", "BPP", "MS-SSIM", "RD loss", "I PSNR", "I BPP", "P PSNR", "P BPP")
#: Which columns go first when the table is too narrow (the I-frame ones, then the P-frame ones...).
DROP_ORDER = ("I BPP", "I PSNR", "P BPP", "P PSNR", "MS-SSIM", "model", "RD loss")
BEST = "★"


class EvalTable(FitTable):
    """Redrawn only when its rows change; the cursor stays where the user left it.
    ``one_step``: the rows of one step (its title names it), so no step column."""

    def __init__(self, *, one_step: bool, more_key: str = "z", id: str | None = None):
        super().__init__(more_key=more_key, id=id, cell_padding=0)
        self.one_step = one_step
        self._shown: list[EvalRow] | None = None
        self.columns_shown = tuple(c for c in COLUMNS if not (one_step and c == "step"))

    def on_mount(self) -> None:
        self.show_rows([])

    def show_rows(self, rows: list[EvalRow]) -> None:
        if rows == self._shown:
            return
        self._shown = rows
        names = self.columns_shown
        self.show([cell(c, c not in ("", "step", "model")) for c in names], [_cells(row, self.one_step) for row in rows],
                  drop_order=[names.index(c) for c in DROP_ORDER if c in names])


def _cells(row: EvalRow, one_step: bool) -> list[Text]:
    """Cells for a table without cell padding: each starts with a space (format.cell)."""
    style = "bold" if row.best else ""
    values = [num(row.psnr, ".2f"), num(row.bpp, ".4f"), num(row.ms_ssim, ".4f"), num(row.rd_loss, ".3f"),
              num(row.i_psnr, ".2f"), num(row.i_bpp, ".4f"), num(row.p_psnr, ".2f"), num(row.p_bpp, ".4f")]
    step = [] if one_step else [cell(row.step_id, False, style)]
    return [cell(BEST if row.best else " ", False, "bold"), *step,
            cell(str(row.epoch if row.epoch is not None else "-")),
            cell(row.model, False, "dim" if row.model == "EMA" else ""),
            *(cell(v, True, style) for v in values)]
