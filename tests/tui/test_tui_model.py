"""The TUI's view data, without the app: states, series, ETAs, readers of growing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcvc_bench.errors import UserError
from dcvc_bench.tui.model import RunModel
from dcvc_bench.tui.views import GROUPS_BY_KEY
from dcvc_bench.tui.readers import LogTail, StepEvents, TrainSeries
from tui_helpers import NOW, set_status


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
    assert model.next_start("l2048")== ("next: l2048-s2g2 starts from previous stage's best, weights only "
                                     "(fresh optimizer; model_dcvc_lambda_2048.0_quality_4_stage_1_best.pth)")
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


def test_eval_results_of_the_recorded_dcvc_bench_eval(run_dir):
    results = opened(run_dir).eval_results()
    assert not results.missing and not results.problem
    assert (results.mode, results.created, results.frames, results.intra_period) == \
        ("real", "2026-11-21T08:04:55+0000", 96, 32)
    assert [r.id for r in results.results] == ["l2048", "l2048-s4g3", "x265 qp32", "x265 qp37"]
    learned, x265 = results.results[0], results.results[2]
    assert (learned.kind, learned.bits, x265.kind, x265.bits) == ("learned", "real", "baseline", "real")
    o = learned.overall
    assert o.bpp_estimate is not None and o.rate_gap_percent == pytest.approx((o.bpp - o.bpp_estimate) / o.bpp_estimate * 100)
    assert o.i_frames[0] == 1 and o.p_frames[0] == 7 and len(o.p_first3) == 3 and o.enc_ms and o.dec_ms
    assert o.lpips is None and results.lpips_reason.startswith("unavailable: LPIPS needs")
    assert [(c.name, c.width, c.height, c.frames) for c in results.clips] == [("synth_000", 96, 64, 8)]
    assert [c.ms_ssim for c in results.ms_ssim_reduced] == ["MS-SSIM (3 scales)"]
    assert [f.name for f in learned.clips] == ["synth_000"]


def test_rd_view_of_the_recorded_dcvc_bench_eval(run_dir):
    rd = opened(run_dir).rd_view()
    assert (rd.created, rd.anchor, rd.bd_method, rd.ms_ssim_label) == \
        ("2026-11-21T08:04:55+0000", "x265", "akima", "MS-SSIM (3 scales)")
    assert [(c.name, c.kind, len(c.points)) for c in rd.curves] == [("smoke", "learned", 2), ("x265", "baseline", 2)]
    assert [p.qp for p in rd.curves[1].points] == [37, 32] and rd.curves[0].points[0].lam == 2048
    assert rd.bd[0].codec == "smoke" and rd.bd[0].bd_rate_psnr is None and "disjoint" in rd.bd[0].note


def test_eval_files_missing_malformed_and_changed_are_read_again(run_dir):
    model = opened(run_dir)
    version = model.eval_version
    (run_dir / "eval" / "latest.json").unlink()
    (run_dir / "eval" / "rd.json").write_text('{"format": "dcvc-bench-rd", "version": 1, "curves": [{"name": 3, '
                                              '"points": [{"bpp": "x", "psnr": 30}]}], "bd": "nope"}')
    assert model.poll() and model.take_changes().eval_files and model.eval_version > version
    assert model.eval_results().missing and not model.eval_results().problem
    rd = model.rd_view()  # tolerant: mistyped fields are missing values
    assert rd.curves[0].name == "?" and rd.curves[0].points[0].bpp is None and rd.curves[0].points[0].psnr == 30
    assert rd.bd == ()
    (run_dir / "eval" / "latest.json").write_text("{not json")
    (run_dir / "eval" / "rd.json").write_text('{"format": "dcvc-bench-rd", "version": 2}')
    model.poll()
    assert "is not valid JSON" in model.eval_results().problem
    assert "version 2; this dcvc-bench reads version 1" in model.rd_view().problem
    assert not model.poll()  # nothing changed: nothing parsed again


def test_a_skipped_step_row_and_what_skipping_would_change(run_dir):
    set_status(run_dir, l2048_s4g3="interrupted", l2048_s4g3_opt="pending")
    model = opened(run_dir)
    assert model.skip_preview("l2048-s4g3") == ("l2048-s4g3-opt then starts from previous step's final + LR reset "
                                                "to 1e-4 (weights + optimizer; l2048-s4g2/final.pth)")
    from dcvc_bench.runner.commands import skip_step

    skip_step(run_dir, "l2048-s4g3")
    model.poll()
    row = model.row("l2048-s4g3")
    assert (row.state, row.note) == ("skipped", "skipped by user")
    assert model.current_step() == "l2048-s4g3-opt" and model.anything_to_run()
    assert model.next_start("l2048") == ("next: l2048-s4g3-opt starts from previous step's final + LR reset "
                                         "to 1e-4 (weights + optimizer; l2048-s4g2/final.pth)")
    marked = [r.name for r in model.checkpoints("l2048") if r.next_start]
    assert marked == ["l2048-s4g2/final.pth"]


def test_the_eta_of_parallel_tracks_is_the_longest_runner_not_the_sum():
    from dcvc_bench.tui.eta import makespan

    assert makespan(0.0, [100.0, 100.0], 1) == 200.0            # one runner: one after another
    assert makespan(0.0, [100.0, 100.0], 2) == 100.0            # two Slurm jobs (or GPUs) at once
    assert makespan(30.0, [100.0, 60.0, 50.0], 2) == 30.0 + 110.0  # I-frame steps first; 60 and 50 share a runner
    assert makespan(0.0, [], 4) == 0.0
