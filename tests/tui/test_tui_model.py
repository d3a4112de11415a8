"""The TUI's view data, without the app: states, series, ETAs, readers of growing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcvc_bench.errors import UserError
from dcvc_bench.tui.model import GROUPS_BY_KEY, RunModel
from dcvc_bench.tui.readers import LogTail, StepEvents, TrainSeries
from tui_helpers import NOW


def opened(run_dir: Path) -> RunModel:
    model = RunModel.open(run_dir, clock=lambda: NOW)
    model.poll()
    return model


def test_finished_run_rows_states_and_starts(run_dir):
    rows = opened(run_dir).rows()
    assert [r.state for r in rows] == ["done"] * 9
    assert [r.start for r in rows[:3]] == ["fresh", "latest+lr-reset", "prev-best"]
    assert rows[0].epochs_done == 2 and rows[0].step.epochs == 2


def test_track_chart_puts_steps_end_to_end_and_marks_stage_starts(run_dir):
    chart = opened(run_dir).track_chart("l2048", GROUPS_BY_KEY["loss"])
    assert chart.marks == ((3.0, "S2"), (5.0, "S3"), (7.0, "S4"))  # stage 1 is 2+1 epochs, then 2 per stage
    assert chart.x_max == 10.0
    xs, _ = chart.lines["loss"]
    assert xs == sorted(xs) and len(xs) == 21


def test_checkpoints_are_read_from_sidecars_with_fixed_ages(run_dir):
    rows = opened(run_dir).checkpoints("l2048")
    best = next(r for r in rows if r.name == "stage_1_best.pth")
    assert (best.stage, best.gop, best.step, best.epoch, best.problem) == (1, 3, "s1g3", "1/1", "")
    assert best.age_s > 600 and not best.next_start


def test_next_start_is_marked_on_the_checkpoint_it_loads(run_dir):
    ledger = json.loads((run_dir / "ledger.json").read_text())
    ledger["steps"] = [r for r in ledger["steps"] if r["id"] != "l2048-s2g2"]  # never ran
    (run_dir / "ledger.json").write_text(json.dumps(ledger))
    model = opened(run_dir)
    assert model.next_start("l2048").startswith("next: l2048-s2g2 starts from load "
                                                "model_dcvc_lambda_2048.0_quality_4_stage_1_best.pth")
    marked = [r.name for r in model.checkpoints("l2048") if r.next_start]
    assert marked == ["stage_1_best.pth"]


def test_curriculum_eta_counts_what_is_left_at_the_measured_speed(run_dir):
    ledger = json.loads((run_dir / "ledger.json").read_text())
    for record in ledger["steps"]:
        if record["id"] in ("l2048-s4g3", "l2048-s4g3-opt"):
            record.update(status="pending", epochs_done=0)
    (run_dir / "ledger.json").write_text(json.dumps(ledger))
    model = opened(run_dir)
    eta = model.curriculum_eta()
    assert eta is not None and eta > 0
    rate = model._seconds_per_gop_epoch()
    assert eta == pytest.approx(2 * 1 * 3 * rate)  # two GOP-3 steps of 1 epoch each


def test_opening_something_that_is_not_a_run_is_one_line(tmp_path):
    for target, words in ((tmp_path / "missing", "no such curriculum file or run folder"),
                          (tmp_path, "is not a run folder")):
        with pytest.raises(UserError, match=words) as info:
            RunModel.open(target)
        assert "\n" not in str(info.value)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="neither a curriculum"):
        RunModel.open(tmp_path / "notes.txt")


def test_train_series_stays_bounded_and_keeps_its_shape():
    series = TrainSeries(max_points=64)
    for i in range(10_000):
        series.add({"epoch": i // 100, "iter": i % 100 + 1, "iters_per_epoch": 100, "loss": float(i)})
    xs, ys = series.points("loss")
    assert len(xs) <= 64
    assert xs == sorted(xs) and ys == sorted(ys)
    assert ys[-1] > 9000


def test_step_events_start_over_when_the_file_is_replaced(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event": "eval", "epoch": 1}) + "\n" + json.dumps({"event": "eval", "epoch": 2}) + "\n")
    events = StepEvents(path)
    events.apply(*events.read())
    assert len(events.evals) == 2
    path.write_text(json.dumps({"event": "eval", "epoch": 1}) + "\n")
    events.apply(*events.read())
    assert [e["epoch"] for e in events.evals] == [1]
    assert events.read() is None  # nothing changed: one stat, no read


def test_log_tail_keeps_the_last_state_of_carriage_return_lines(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_bytes(b"start\nepoch 1 [1/3]\repoch 1 [3/3]\npart")
    tail = LogTail(log)
    assert tail.poll() == (False, ["start", "epoch 1 [3/3]"])
    with open(log, "ab") as fh:
        fh.write(b"ial line\n")
    assert tail.poll() == (False, ["partial line"])
    assert tail.poll() is None
