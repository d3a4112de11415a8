"""The real app, driven headlessly on the recorded smoke run: what a user sees and can do."""

from __future__ import annotations

import io
import json
import os
import socket
import sys
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Static

from dcvc_bench.runner.commands import skip_step
from dcvc_bench.runner.ledger import Ledger
from dcvc_bench.tui.model import RunModel
from dcvc_bench.tui.screens.confirm import ConfirmScreen
from dcvc_bench.tui.screens.evals import EvalScreen
from dcvc_bench.tui.screens.help import HelpScreen
from dcvc_bench.tui.screens.quit import QuitScreen
from dcvc_bench.tui.screens.rd import RDScreen
from dcvc_bench.tui.screens.run import RunScreen
from dcvc_bench.tui.widgets.choice_bar import ChoiceBar
from dcvc_bench.tui.widgets.curriculum_tree import CurriculumTree
from dcvc_bench.tui.widgets.eval_table import EvalTable
from dcvc_bench.tui.widgets.log_pane import LogPane
from tui_helpers import NOW, SMALL, drive, make_app, set_status, settled, until

STEPS = ["s1g2", "s1g3", "s2g2", "s2g3", "s3g2", "s3g3", "s4g2", "s4g3", "s4g3-opt"]


def tree_labels(screen) -> list[str]:  # type: ignore[no-untyped-def]
    tree = screen.query_one(CurriculumTree)
    return [str(tree.get_node_at_line(i).label) for i in range(tree.last_line + 1)]


def table_text(table: DataTable) -> list[list[str]]:  # type: ignore[type-arg]
    header = [str(c.label).strip() for c in table.ordered_columns]
    return [header] + [[str(cell).strip() for cell in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(screen, selector: str) -> str:  # type: ignore[no-untyped-def]
    return str(screen.query_one(selector, Static).render())


def append_event(run_dir: Path, step_id: str, text: str) -> None:
    with open(run_dir / "steps" / step_id / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(text)


def train_event(loss: float, **extra: object) -> str:
    event = {"v": 1, "t": NOW, "event": "train", "step": "s4g3-opt", "epoch": 0, "iter": 2,
             "iters_per_epoch": 3, "loss": loss, "mse": 0.01, "psnr": 20.0, "bpp": 0.3, "bpp_y": 0.2,
             "bpp_z": 0.02, "bpp_mv_y": 0.05, "bpp_mv_z": 0.03, "lr": 1e-4, "frames_per_s": 50.0, **extra}
    return json.dumps(event) + "\n"


def test_finished_run_shows_every_step_state_curves_evals_and_checkpoints(run_dir):
    async def steps(pilot):
        screen = pilot.app.screen
        labels = tree_labels(screen)
        for phase in STEPS:
            assert any(f"✓ {phase} " in label for label in labels), (phase, labels)
        assert "9/9 steps done" in static_text(screen, "#banner")
        assert "curriculum done" in static_text(screen, "#banner")
        # The panels show the highlighted step (the last one: the run is done).
        assert screen.selected == "l2048-s4g3-opt"
        table = screen.query_one("#eval-table", EvalTable)
        evals = table_text(table)
        assert {"PSNR", "BPP", "RD loss", "model"} <= set(evals[0])
        assert set(evals[0]) | set(table.hidden) == set(table.columns_shown) - {""} | {""}  # left out, never cut
        assert len(evals) - 1 == 2  # its one eval event, normal + EMA
        assert sum(row[0] == "★" for row in evals[1:]) == 1
        files = [row[1] for row in table_text(screen.query_one("#checkpoint-table", DataTable))[1:]]
        assert files == [f"stage_4_{kind}.pth" for kind in ("latest", "best", "best_ema", "final")] \
            + ["l2048-s4g3-opt/final.pth"]  # what s4g3-opt wrote (global_best: s4g3's, still the best)
        assert screen.query_one("#step-chart PlotextPlot").display  # curves drawn
        assert "every step of this track is done" in static_text(screen, "#next-start")

    drive(make_app(run_dir), steps)


def test_q_exits_cleanly(run_dir):
    app = make_app(run_dir)

    async def steps(pilot):
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0

    drive(app, steps)
    assert app.return_code == 0


def test_small_terminal_shows_one_bottom_panel_at_a_time(run_dir):
    async def steps(pilot):
        screen = pilot.app.screen
        assert screen.query_one("#eval-table").display and not screen.query_one("#log-pane").display
        assert not screen.query_one("#track-chart").display
        await pilot.press("v", "v")
        assert screen.query_one("#log-pane").display and not screen.query_one("#eval-table").display
        await pilot.press("t")
        assert screen.query_one("#track-chart").display and not screen.query_one("#step-chart").display

    drive(make_app(run_dir), steps, size=SMALL)


def test_moving_the_highlight_shows_that_steps_evaluations_checkpoints_and_log(run_dir):
    async def steps(pilot):
        screen = pilot.app.screen
        tree = screen.query_one(CurriculumTree)
        tree.focus()
        before = table_text(screen.query_one("#eval-table", DataTable))
        await pilot.press("up")  # the keyboard moves it: s4g3
        await until(pilot, lambda: screen.selected != "l2048-s4g3-opt")
        tree.select_step("l2048-s1g2")
        await until(pilot, lambda: screen.selected == "l2048-s1g2")
        await settled(pilot)
        evals = table_text(screen.query_one("#eval-table", DataTable))
        assert evals != before and len(evals) - 1 == 4  # s1g2: 2 epochs, normal + EMA each
        assert [row[evals[0].index("ep")] for row in evals[1:]] == ["1", "1", "2", "2"]
        assert "s1g2" in str(screen.query_one("#eval-table").border_title)
        files = [row[1] for row in table_text(screen.query_one("#checkpoint-table", DataTable))[1:]]
        assert files == ["l2048-s1g2/final.pth"]  # s1g3 overwrote stage 1's files since
        assert "s1g2" in str(screen.query_one("#checkpoint-panel").border_title)
        await until(pilot, lambda: any("s1g2 epoch 2/2" in line
                                       for line in screen.query_one("#log-pane", LogPane).texts))
        assert not any("s4g3-opt" in line for line in screen.query_one("#log-pane", LogPane).texts)

    drive(make_app(run_dir), steps)


def test_highlighting_a_step_shows_its_progress_and_log(run_dir):
    async def steps(pilot):
        screen = pilot.app.screen
        screen.query_one(CurriculumTree).select_step("l2048-s1g2")
        await until(pilot, lambda: "l2048-s1g2" in static_text(screen, "#step-title"))
        assert "epoch 2/2" in static_text(screen, "#epoch-line")
        assert "started from fresh (random init)" in static_text(screen, "#step-start")
        await until(pilot, lambda: any("s1g2 epoch 2/2" in line
                                       for line in screen.query_one("#log-pane", LogPane).texts))

    drive(make_app(run_dir), steps)


def test_number_keys_switch_the_charted_metric(run_dir):
    async def steps(pilot):
        screen = pilot.app.screen
        await pilot.press("3")
        assert screen.query_one("#metric-bar", ChoiceBar).active == "rate"
        assert screen.metric.fields == ("bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z")
        await pilot.press("4")
        assert screen.metric.key == "lr"

    drive(make_app(run_dir), steps)


def test_a_written_event_appears_on_screen_and_torn_lines_and_unknown_fields_are_tolerated(run_dir):
    async def steps(pilot):
        screen = pilot.app.screen
        numbers = lambda: static_text(screen, "#step-numbers")  # noqa: E731
        append_event(run_dir, "l2048-s4g3-opt", train_event(123.456, a_field_from_the_future=[1, 2]))
        took = await until(pilot, lambda: "loss 123.5" in numbers())
        print(f"event on screen after {took * 1000:.0f} ms")
        torn = train_event(77.25)
        append_event(run_dir, "l2048-s4g3-opt", torn[:40])  # a writer caught mid-line
        await pilot.pause(0.3)
        assert "loss 123.5" in numbers()
        append_event(run_dir, "l2048-s4g3-opt", torn[40:])  # ... and the line completed
        await until(pilot, lambda: "loss 77.25" in numbers())

    drive(make_app(run_dir), steps)


def test_attaches_to_a_run_started_in_another_terminal(run_dir):
    (run_dir / ".lock").write_text(json.dumps({"pid": os.getpid(), "started": NOW, "host": socket.gethostname()}))
    ledger = json.loads((run_dir / "ledger.json").read_text())
    record = next(r for r in ledger["steps"] if r["id"] == "l2048-s4g3-opt")
    record.update(status="running", pid=os.getpid(), epochs_done=0)
    (run_dir / "ledger.json").write_text(json.dumps(ledger))

    async def steps(pilot):
        screen = pilot.app.screen
        assert f"followed, run by pid {os.getpid()}" in static_text(screen, "#banner")
        assert any("▶ s4g3-opt" in label for label in tree_labels(screen))
        assert screen.check_action("stop", ()) is True
        assert screen.check_action("start", ()) is None  # a second run would be refused
        start = {"v": 1, "t": NOW - 5, "event": "step_start", "step": "s4g3-opt", "stage": 4, "gop": 3,
                 "lambda": 2048.0, "epochs": 1, "start_epoch": 0, "lr": 1e-4, "resumed_from": None,
                 "lr_reset": True}
        append_event(run_dir, "l2048-s4g3-opt", json.dumps(start) + "\n" + train_event(99.0, iter=1, t=NOW - 2)
                     + train_event(98.0, iter=2, t=NOW))
        await until(pilot, lambda: "ETA epoch 2s" in static_text(screen, "#epoch-line"))

    drive(make_app(run_dir), steps)


def test_follow_jumps_to_a_step_as_it_starts_and_its_panels_come_with_it(run_dir):
    """The user looks at s1g2 (its panels); another terminal's run starts s4g3-opt: with
    follow on (the default), the highlight and every panel go there; `f` turns it off."""
    def start(step_id: str) -> None:
        (run_dir / ".lock").write_text(json.dumps({"pid": os.getpid(), "started": NOW, "host": socket.gethostname()}))
        ledger = json.loads((run_dir / "ledger.json").read_text())
        next(r for r in ledger["steps"] if r["id"] == step_id).update(status="running", pid=os.getpid(),
                                                                        epochs_done=0)
        (run_dir / "ledger.json").write_text(json.dumps(ledger))

    async def steps(pilot):
        screen = pilot.app.screen
        screen.query_one(CurriculumTree).select_step("l2048-s1g2")
        await until(pilot, lambda: screen.selected == "l2048-s1g2")
        start("l2048-s4g3-opt")
        await until(pilot, lambda: screen.selected == "l2048-s4g3-opt")
        await settled(pilot)
        assert "s4g3-opt" in str(screen.query_one("#eval-table").border_title)
        assert "s4g3-opt" in str(screen.query_one("#checkpoint-panel").border_title)
        assert len(table_text(screen.query_one("#eval-table", DataTable))) - 1 == 2  # its own evaluation
        await pilot.press("f")  # off
        assert not screen.follow
        screen.query_one(CurriculumTree).select_step("l2048-s1g2")
        await until(pilot, lambda: screen.selected == "l2048-s1g2")
        start("l2048-s4g3")
        await pilot.pause(0.5)
        assert screen.selected == "l2048-s1g2"

    drive(make_app(run_dir), steps)


def test_interrupted_and_will_rerun_states(run_dir, tmp_path):
    ledger = json.loads((run_dir / "ledger.json").read_text())
    record = next(r for r in ledger["steps"] if r["id"] == "l2048-s4g3-opt")
    record.update(status="running", pid=2 ** 22 + 17)  # its runner is gone
    (run_dir / "ledger.json").write_text(json.dumps(ledger))
    edited = tmp_path / "edited.toml"
    edited.write_text((run_dir / "curriculum.toml").read_text().replace("epochs = [2, 1]", "epochs = [3, 1]"))

    async def steps(pilot):
        labels = tree_labels(pilot.app.screen)
        assert any("↻ s1g2" in label for label in labels), labels  # the glyph is the state (legend on ?)
        assert any("↻ s4g2" in label for label in labels), labels  # downstream of a re-run

    drive(make_app(edited), steps)
    rows = {r.step.id: r.state for r in RunModel.open(run_dir).rows()}
    assert rows["l2048-s4g3-opt"] == "interrupted"


def test_a_checkpoint_whose_sidecar_does_not_match_is_shown_untrusted(run_dir):
    sidecar = run_dir / "checkpoints/l2048/model_dcvc_lambda_2048.0_quality_4_stage_4_best.pth.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "file_size": meta["file_size"] + 1}))

    async def steps(pilot):
        table = pilot.app.screen.query_one("#checkpoint-table", DataTable)
        table.focus()
        await pilot.press("z")  # the panel fills the screen: every column
        await until(pilot, lambda: "epoch" in table_text(table)[0])
        rows = table_text(table)
        row = next(r for r in rows if r[1].startswith("stage_4_best.pth"))
        assert row[1] == "stage_4_best.pth (sidecar does not match)" and row[rows[0].index("epoch")] == "?"

    drive(make_app(run_dir), steps)


def test_eval_view_lists_every_evaluation_with_the_best_marked(run_dir):
    async def steps(pilot):
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, EvalScreen))
        screen = pilot.app.screen
        rows = table_text(screen.query_one("#all-evals", DataTable))
        best = [r for r in rows[1:] if r[0] == "★"]
        assert len(rows) - 1 == 20 and len(best) == 1
        rd = [float(r[7]) for r in rows[1:]]
        assert float(best[0][7]) == min(rd)
        assert "best (lowest RD loss)" in static_text(screen, "#eval-summary")
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunScreen)

    drive(make_app(run_dir), steps)


def test_help_lists_every_key_and_what_skip_does(run_dir):
    async def steps(pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        console = Console(width=200, record=True, file=io.StringIO())
        for static in pilot.app.screen.query(Static):
            console.print(static.content)
        text = console.export_text()
        for words in ("Run", "Stop", "Skip", "dcvc-bench skip RUN_DIR STEP [--undo]", "Evals", "RD", "eval/rd.json",
                      "Follow", "Quit", "1–7", "loss · PSNR dB · bpp · LR", "Next panel", "Zoom panel",
                      "will re-run", "↷ skipped", "final previous step's final + LR reset",
                      "cont. own latest: continue"):
            assert words in text
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunScreen)

    drive(make_app(run_dir), steps)


FAKE_RUNNER = """
import signal, sys, time
print("fake run", sys.argv[1:], flush=True)
signal.signal(signal.SIGINT, lambda *a: (print("stopped gracefully", flush=True), sys.exit(130)))
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def fake_runner(tmp_path):
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    return [sys.executable, str(script)]


def test_start_and_stop_run_the_runner_in_the_background(run_dir, fake_runner):
    app = make_app(run_dir, run_command=fake_runner)

    async def steps(pilot):
        screen = pilot.app.screen
        await pilot.press("r")
        control = screen.control
        assert control.owns_live_run()
        assert os.getpgid(control.process.pid) == control.process.pid  # its own session
        log = run_dir / "tui-run.log"
        await until(pilot, lambda: "fake run ['run'," in log.read_text())
        assert str((run_dir / "curriculum.toml").resolve()) in log.read_text()
        assert "started here" in static_text(screen, "#banner")
        await pilot.press("s")
        await until(pilot, lambda: not control.owns_live_run())
        assert "stopped gracefully" in log.read_text()
        await until(pilot, lambda: "no run in progress" in static_text(screen, "#banner"), timeout=3)

    drive(app, steps)


def test_quitting_while_owning_the_run_asks_and_can_leave_it_running(run_dir, fake_runner):
    app = make_app(run_dir, run_command=fake_runner)
    pids = []

    async def steps(pilot):
        await pilot.press("r")
        pids.append(pilot.app.screen.control.process.pid)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(pilot.app.screen, QuitScreen))
        await pilot.press("k")
        await pilot.pause()

    try:
        drive(app, steps)
        assert app.return_code == 0
        os.kill(pids[0], 0)  # still running after the TUI is gone
    finally:
        os.killpg(pids[0], 9)


def test_quitting_and_choosing_stop_stops_the_run(run_dir, fake_runner):
    app = make_app(run_dir, run_command=fake_runner)
    procs = []

    async def steps(pilot):
        await pilot.press("r")
        procs.append(pilot.app.screen.control.process)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(pilot.app.screen, QuitScreen))
        await pilot.press("s")

    drive(app, steps)
    assert procs[0].wait(timeout=10) == 130
    assert "stopped gracefully" in (run_dir / "tui-run.log").read_text()


def test_picker_lists_runs_and_curricula_and_opens_one(run_dir, tmp_path):
    (tmp_path / "curricula").mkdir()
    (tmp_path / "curricula" / "mine.toml").write_text((run_dir / "curriculum.toml").read_text())
    app = make_app(run_dir)
    app.model = None

    async def steps(pilot):
        from textual.widgets import OptionList

        options = pilot.app.screen.query_one(OptionList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any("runs/smoke" in p for p in prompts) and any("curricula/mine.toml" in p for p in prompts)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen))

    drive(app, steps)


# -- skipping a step ------------------------------------------------------------------------
def status_of(run_dir: Path, step_id: str) -> str:
    return Ledger.load(run_dir / "ledger.json").get(step_id).status


def question(screen) -> str:  # type: ignore[no-untyped-def]
    return str(screen.query_one("#confirm-question", Static).render())


def test_k_is_disabled_on_a_done_step_and_enabled_on_an_unfinished_one(run_dir):
    async def done(pilot):
        screen = pilot.app.screen
        assert screen.model.row(screen.selected).state == "done"
        assert screen.check_action("skip", ()) is None
        await pilot.press("k")
        assert isinstance(pilot.app.screen, RunScreen)  # nothing asked

    drive(make_app(run_dir), done)
    set_status(run_dir, l2048_s4g3="interrupted")

    async def unfinished(pilot):
        screen = pilot.app.screen
        assert screen.selected == "l2048-s4g3" and screen.check_action("skip", ()) is True
        screen.query_one(CurriculumTree).select_step("l2048-s4g2")
        await until(pilot, lambda: screen.selected == "l2048-s4g2")
        assert screen.check_action("skip", ()) is None

    drive(make_app(run_dir), unfinished)


def test_skip_stops_the_tuis_run_skips_the_step_and_offers_to_continue(run_dir, fake_runner):
    set_status(run_dir, l2048_s4g3="interrupted", l2048_s4g3_opt="pending")
    app = make_app(run_dir, run_command=fake_runner)
    log = run_dir / "tui-run.log"

    async def steps(pilot):
        screen = pilot.app.screen
        assert screen.selected == "l2048-s4g3"
        await pilot.press("r")
        await until(pilot, lambda: log.is_file() and "fake run" in log.read_text())
        await pilot.press("k")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        asked = question(pilot.app.screen)
        assert "Skip l2048-s4g3 (interrupted)?" in asked
        assert "l2048-s4g3-opt then starts from previous step's final + LR reset to 1e-4" in asked
        assert "this TUI's run is stopped first" in asked
        await pilot.press("y")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen)
                    and "Continue the run now" in question(pilot.app.screen), timeout=10)
        assert "stopped gracefully" in log.read_text()  # stopped before the ledger was touched
        assert status_of(run_dir, "l2048-s4g3") == "skipped"
        await until(pilot, lambda: any("↷ s4g3 " in label and "skip" in label for label in tree_labels(screen)))
        await pilot.press("y")
        await until(pilot, lambda: screen.control.owns_live_run())
        await until(pilot, lambda: log.read_text().count("fake run") == 2)
        await pilot.press("s")
        await until(pilot, lambda: not screen.control.owns_live_run())

    drive(app, steps)


def test_k_on_a_skipped_step_runs_it_again_and_cancel_changes_nothing(run_dir):
    set_status(run_dir, l2048_s4g3="interrupted")
    skip_step(run_dir, "l2048-s4g3")

    async def steps(pilot):
        screen = pilot.app.screen
        screen.query_one(CurriculumTree).select_step("l2048-s4g3")
        await until(pilot, lambda: screen.selected == "l2048-s4g3")
        assert "skipped by user" in static_text(screen, "#step-title")
        await pilot.press("k")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        assert "l2048-s4g3 is skipped. Run it again?" in question(pilot.app.screen)
        await pilot.press("n")
        assert isinstance(pilot.app.screen, RunScreen) and status_of(run_dir, "l2048-s4g3") == "skipped"
        await pilot.press("k")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: status_of(run_dir, "l2048-s4g3") == "interrupted")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen)
                    and "Start the run now" in question(pilot.app.screen))
        await pilot.press("escape")  # not now
        assert not screen.control.owns_live_run()
        await until(pilot, lambda: any("⏸ s4g3 " in label for label in tree_labels(screen)))

    drive(make_app(run_dir), steps)


# -- the latest `dcvc-bench eval` and the RD view ---------------------------------------------
def test_eval_view_shows_the_latest_dcvc_bench_eval_real_vs_estimated_and_per_clip(run_dir):
    async def steps(pilot):
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, EvalScreen))
        screen = pilot.app.screen
        table = screen.query_one("#bench-results", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        rows = [[c.strip() for c in row] for row in table_text(table)]
        assert rows[0] == ["codec", "bits", "BPP", "PSNR", "MS-SSIM", "LPIPS", "est. BPP", "gap", "enc ms", "dec ms"]
        assert rows[1][:2] == ["l2048", "real"] and rows[1][6] == "1.3964" and rows[1][7] == "-5.39%"
        assert rows[1][4].endswith("*") and rows[1][5] == "n/a"
        assert rows[3][:2] == ["x265 qp32", "real"] and rows[3][6:8] == ["-", "-"]
        info = static_text(screen, "#bench-info")
        assert "learned codecs: REAL bits" in info and "synth_000 96×64×8" in info
        notes = static_text(screen, "#bench-notes")
        assert "LPIPS unavailable: LPIPS needs torchvision's AlexNet weights" in notes
        assert "* MS-SSIM (3 scales): synth_000 (96×64) is too small for 5 scales" in notes
        assert screen.query_one("#bench-eval").border_subtitle == "created 2026-11-21T08:04:55+0000"
        clips = screen.query_one("#bench-clips", DataTable)
        assert clips.border_title == "l2048 per clip" and clips.row_count == 1
        assert [c.strip() for c in table_text(clips)[1][:3]] == ["synth_000", "1.3211", "14.38"]
        table.focus()
        await pilot.press("down")
        await until(pilot, lambda: clips.border_title == "l2048-s4g3 per clip")
        assert table_text(clips)[1][1].strip() == "0.8836"

    drive(make_app(run_dir), steps)


def test_eval_view_without_results_says_how_to_get_them_and_shows_them_when_written(run_dir, tmp_path):
    latest = run_dir / "eval" / "latest.json"
    saved = tmp_path / "latest.json"
    latest.rename(saved)

    async def steps(pilot):
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, EvalScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: "no dcvc-bench eval results yet" in static_text(screen, "#bench-info"))
        assert "run dcvc-bench eval --checkpoint runs/smoke" in static_text(screen, "#bench-info")
        assert not screen.query_one("#bench-results").display
        saved.rename(latest)  # `dcvc-bench eval` finished meanwhile
        await until(pilot, lambda: screen.query_one("#bench-results", DataTable).row_count == 4)
        latest.write_text("{torn")
        await until(pilot, lambda: "is not valid JSON" in static_text(screen, "#bench-info"))

    drive(make_app(run_dir), steps)


def test_rd_view_plots_every_codec_and_lists_points_and_bd_rates(run_dir):
    async def steps(pilot):
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, RDScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: "smoke (real)" in static_text(screen, "#rd-legend"))
        assert "■ x265 (real, anchor)" in static_text(screen, "#rd-legend")
        assert screen.query_one("#rd-chart PlotextPlot").display
        info = static_text(screen, "#rd-info")
        assert "RD of the eval of 2026-11-21T08:04:55+0000" in info and "1 clip (synth_000)" in info
        assert "older than" not in info
        points = table_text(screen.query_one("#rd-points", DataTable))
        assert [r[1] for r in points[1:]] == ["l2048-s4g3", "l2048", "x265 qp37", "x265 qp32"]
        assert points[3][-1] == " QP 37".strip() or points[3][-1].strip() == "QP 37"
        bd = [[c.strip() for c in row] for row in table_text(screen.query_one("#rd-bd", DataTable))]
        assert bd[0] == ["codec", "BD-rate PSNR", "BD-PSNR", "BD-rate MS-SSIM", "overlap"]
        assert bd[1] == ["smoke", "n/a", "n/a", "n/a", "0%"]
        assert "disjoint quality ranges" in static_text(screen, "#rd-notes")
        await pilot.press("2")
        assert screen.metric == "ms_ssim"
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, RunScreen)
        await pilot.press("e", "d")  # also from the eval view
        await until(pilot, lambda: isinstance(pilot.app.screen, RDScreen))

    drive(make_app(run_dir), steps)


def test_rd_view_without_rd_json_gives_the_command_and_an_older_one_says_so(run_dir):
    rd = run_dir / "eval" / "rd.json"
    kept = rd.read_text()
    rd.unlink()
    latest = run_dir / "eval" / "latest.json"
    latest.write_text(latest.read_text().replace("2026-11-21T08:04:55+0000", "2026-11-22T09:00:00+0000"))

    async def steps(pilot):
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, RDScreen))
        screen = pilot.app.screen
        await until(pilot, lambda: "no RD curves yet" in static_text(screen, "#rd-info"))
        assert "dcvc-bench eval --checkpoint runs/smoke --baselines x265" in static_text(screen, "#rd-info")
        assert not screen.query_one("#rd-body").display
        rd.write_text(kept)
        await until(pilot, lambda: "older than the latest eval (2026-11-22T09:00:00+0000)"
                    in static_text(screen, "#rd-info"))
        await settled(pilot)
        assert screen.query_one("#rd-body").display

    drive(make_app(run_dir), steps)


def test_estimated_results_are_labelled_estimated(run_dir):
    latest = run_dir / "eval" / "latest.json"
    doc = json.loads(latest.read_text())
    for result in doc["results"]:
        if result["kind"] == "learned":
            result["bits"] = "estimated"
            result["overall"].update(bpp_estimate=None, rate_gap_percent=None)
    latest.write_text(json.dumps(doc))

    async def steps(pilot):
        await pilot.press("e")
        await until(pilot, lambda: isinstance(pilot.app.screen, EvalScreen))
        screen = pilot.app.screen
        table = screen.query_one("#bench-results", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        rows = [[c.strip() for c in row] for row in table_text(table)]
        assert [r[1] for r in rows[1:]] == ["estimated", "estimated", "real", "real"]
        assert rows[1][6:8] == ["-", "-"]
        assert "learned codecs: ESTIMATED bits (entropy-model likelihoods, no bitstream)" in \
            static_text(screen, "#bench-info")

    drive(make_app(run_dir), steps)
