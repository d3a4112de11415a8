"""SVG snapshots of the main screens on the recorded smoke run, at a roomy and at the
smallest supported terminal size. Update after a deliberate change with
``pytest tests/tui --snapshot-update`` and look at the SVGs before committing them."""

from __future__ import annotations

from tui_helpers import SMALL, WIDE, make_app, settled, until, until_loaded


class TestRunScreen:
    def test_finished_run_wide(self, run_dir, snap_compare):
        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=until_loaded)

    def test_finished_run_small(self, run_dir, snap_compare):
        assert snap_compare(make_app(run_dir), terminal_size=SMALL, run_before=until_loaded)

    def test_small_with_checkpoints_panel_and_rate_chart(self, run_dir, snap_compare):
        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("v", "3")
            await settled(pilot)

        assert snap_compare(make_app(run_dir), terminal_size=SMALL, run_before=run_before)

    def test_first_step_selected_with_track_psnr(self, run_dir, snap_compare):
        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("home", "down", "down", "2")
            await until(pilot, lambda: pilot.app.screen.selected == "l2048-s1g2")
            await settled(pilot)

        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=run_before)


class TestOtherScreens:
    def test_eval_view(self, run_dir, snap_compare):
        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("e")
            await settled(pilot)

        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=run_before)

    def test_help(self, run_dir, snap_compare):
        async def run_before(pilot):
            await until_loaded(pilot)
            await pilot.press("question_mark")

        assert snap_compare(make_app(run_dir), terminal_size=WIDE, run_before=run_before)

    def test_picker(self, run_dir, snap_compare):
        app = make_app(run_dir)
        app.model = None
        assert snap_compare(app, terminal_size=SMALL)
