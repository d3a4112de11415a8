"""The evaluation history (eval/index.json, contract A; the documents' names when there is
no index) in the model, the eval view and the RD view; and RD markers that never share
a cell."""

from __future__ import annotations

import json
from pathlib import Path

from dcvc_bench.evaldoc import INDEX_KIND as INDEX_FORMAT
from dcvc_bench.evaldoc.views import read_eval_history
from dcvc_bench.tui.screens.evals import EvalScreen
from dcvc_bench.tui.screens.history import HistoryScreen
from dcvc_bench.tui.screens.rd import RDScreen
from dcvc_bench.tui.widgets.rd_chart import place_markers
from tui_helpers import drive, make_app, settled, until

OLDER, NEWER = "20261120-090000-estimate", "20261121-080455-real"


def two_evals(run_dir: Path, index: bool = True) -> None:
    """The recorded eval (real, 2026-11-21) and an older estimate eval (2026-11-20, its
    x265 curve 1 dB lower), as `dcvc-bench eval` keeps them, with or without the index."""
    folder = run_dir / "eval"
    latest, rd = json.loads((folder / "latest.json").read_text()), json.loads((folder / "rd.json").read_text())
    older, older_rd = dict(latest, created="2026-11-20T09:00:00+0000", mode="estimate"), dict(rd, mode="estimate")
    older_rd["curves"] = [dict(c, points=[dict(p, psnr=p["psnr"] - 1.0) for p in c["points"]]) for c in rd["curves"]]
    for stem, doc, rd_doc in ((OLDER, older, older_rd), (NEWER, latest, rd)):
        (folder / f"{stem}.json").write_text(json.dumps(doc))
        (folder / f"{stem}-rd.json").write_text(json.dumps(rd_doc))
    if index:
        entries = [{"file": f"{stem}.json", "rd_file": f"{stem}-rd.json", "created": doc["created"],
                    "mode": doc["mode"], "checkpoints": ["checkpoints/l2048/model_..._stage_4_final.pth"],
                    "clips": ["data/val/synth_000.mp4"], "codecs": ["smoke", "x265"]}
                   for stem, doc in ((OLDER, older), (NEWER, latest))]
        (folder / "index.json").write_text(json.dumps({"format": INDEX_FORMAT, "version": 1, "evals": entries}))


def test_the_history_is_read_from_the_index_newest_first(run_dir):
    two_evals(run_dir)
    index = json.loads((run_dir / "eval/index.json").read_text())
    entries = read_eval_history(run_dir / "eval", index)
    assert [e.file for e in entries] == [f"{NEWER}.json", f"{OLDER}.json"]
    assert entries[0].when == "2026-11-21 08:04" and entries[0].mode == "real"
    assert entries[1].checkpoints == ("checkpoints/l2048/model_..._stage_4_final.pth",)


def test_without_an_index_the_history_lists_the_documents_by_name(run_dir):
    two_evals(run_dir, index=False)
    entries = read_eval_history(run_dir / "eval", None)
    assert [(e.file, e.rd_file, e.mode, e.when) for e in entries] == [
        (f"{NEWER}.json", f"{NEWER}-rd.json", "real", "2026-11-21 08:04"),
        (f"{OLDER}.json", f"{OLDER}-rd.json", "estimate", "2026-11-20 09:00")]  # no latest/rd/-rd files


def test_the_eval_view_opens_an_older_evaluation_from_the_history(run_dir):
    two_evals(run_dir)

    async def steps(pilot):
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, EvalScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: "2 in the history" in str(screen.query_one("#bench-eval").border_title))
        await pilot.press("h")
        await until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen))
        history = pilot.app.screen
        assert [e.mode for e in history.entries] == ["real", "estimate"]  # newest first
        await settled(pilot)
        await pilot.press("down", "enter")
        await until(pilot, lambda: pilot.app.screen is screen and screen.picked is not None)
        assert screen.picked.file == f"{OLDER}.json"
        await until(pilot, lambda: screen.query_one("#bench-eval").border_subtitle == "created 2026-11-20T09:00:00+0000")
        assert f"eval/{OLDER}.json" in str(screen.query_one("#bench-eval").border_title)

    drive(make_app(run_dir), steps)


def test_the_rd_view_overlays_a_second_evaluation_and_removes_it_again(run_dir):
    two_evals(run_dir)

    async def steps(pilot):
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, RDScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: len(pilot.app.model.eval_history()) == 2)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen))
        await settled(pilot)
        await pilot.press("down", "enter")
        await until(pilot, lambda: screen.overlaid is not None)
        names = [c.name for c in screen._rd().curves]
        assert names == ["smoke", "x265", "smoke @ 2026-11-20 09:00", "x265 @ 2026-11-20 09:00"]
        assert "x265 @ 2026-11-20 09:00" in str(screen.query_one("#rd-legend").render())
        await pilot.press("o")
        assert [c.name for c in screen._rd().curves] == ["smoke", "x265"]

    drive(make_app(run_dir), steps)


def test_markers_of_two_codecs_at_the_same_point_get_cells_of_their_own():
    """x264's ▲ drawn after x265's ■ at the same rates and PSNRs: each moves one cell right."""
    x265 = ([0.01, 0.03, 0.07], [30.0, 33.0, 36.0])
    x264 = ([0.01, 0.03, 0.0701], [30.0, 33.0, 36.0])
    learned = ([1.4], [14.0])
    placed = place_markers([x265, x264, learned], (0.0, 1.5), (14.0, 36.0), (100, 20))
    cell = 1.5 / 100
    assert placed[0] == x265[0]
    assert all(abs(b - (a + cell)) < 1e-9 for a, b in zip(x264[0], placed[1]))
    assert placed[2] == [1.4]
    spots = {(round(x / cell), round((y - 14.0) / (22.0 / 20))) for (_, ys), xs in zip([x265, x264, learned], placed)
             for x, y in zip(xs, ys)}
    assert len(spots) == 7  # every marker in a cell of its own
