"""SVG snapshots of the main screens on the recorded smoke run, at a roomy and at the
smallest supported terminal size, and for the run, eval and RD screens at 200x50 too. Update after a deliberate change with
``pytest tests/tui --snapshot-update`` and look at the SVGs before committing them."""

from __future__ import annotations

import pytest

from tui_helpers import LARGE, SMALL, WIDE, make_app, set_status, settled, until, until_loaded


async def open_eval_view(pilot):
    await until_loaded(pilot)
    await pilot.press("e")
    await until(pilot, lambda: pilot.app.screen.query("#bench-results")
                and pilot.app.screen.query_one("#bench-results").row_count == 4)
    await settled(pilot)


async def open_rd_view(pilot):
    await until_loaded(pilot)
    await pilot.press("d")
    await until(pilot, lambda: pilot.app.screen.query("#rd-points")
                and pilot.app.screen.query_one("#rd-points").row_count == 4)
    await settled(pilot)


#: The sizes every main screen must fit (issue 14): the smallest supported, the README's, a large one.
SIZES = [SMALL, WIDE, LARGE]
IDS = ["80x24", "120x36", "200x50"]


class TestRunScreen:
    @pytest.mark.parametrize("size", SIZES, ids=IDS)
    def test_finished_run(self, run_dir, snap_compare, size):
        assert snap_compare(make_app(run_dir), terminal_size=size, run_before=until_loaded)

    def test_first_step_selected_with_track_psnr(self, run_dir, snap_compare):
        """The panels follow the highlight: s1g2's evaluations, checkpoints and log."""
        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("home", "down", "down", "2")
            await until(pilot, lambda: pilot.app.screen.selected == "l2048-s1g2")
            await settled(pilot)

        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=run_before)


class TestOtherScreens:
    @pytest.mark.parametrize("size", SIZES, ids=IDS)
    def test_eval_view(self, run_dir, snap_compare, size):
        """Training evaluations and the recorded `dcvc-bench eval --real --baselines x265`."""
        assert snap_compare(make_app(run_dir), terminal_size=size, run_before=open_eval_view)

    @pytest.mark.parametrize("size", SIZES, ids=IDS)
    def test_rd_view(self, run_dir, snap_compare, size):
        assert snap_compare(make_app(run_dir), terminal_size=size, run_before=open_rd_view)

    def test_skip_question_with_a_skipped_step(self, run_dir, snap_compare):
        """s4g2 skipped; `k` on the interrupted s4g3 asks, saying how s4g3-opt would start."""
        set_status(run_dir, l2048_s4g2="skipped", l2048_s4g3="interrupted", l2048_s4g3_opt="pending")

        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("k")
            await until(pilot, lambda: pilot.app.screen.query("#confirm-question"))
            await settled(pilot)

        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=run_before)

    def test_help(self, run_dir, snap_compare):
        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("question_mark")
            await until(pilot, lambda: len(pilot.app.screen_stack) > 1)
            await settled(pilot)

        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=run_before)

    def test_picker(self, run_dir, snap_compare):
        app = make_app(run_dir)
        app.model = None
        assert snap_compare(app, terminal_size=SMALL)
