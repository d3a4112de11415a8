"""Experiment trackers (issue 15, item 8): ``[logging] trackers`` in the curriculum,
validated and checked before anything starts, passed to the P-frame trainer as flags,
logged through accelerate's trackers; TensorBoard files written during a real run hold
the events' scalars per step, and ``dcvc-bench export tensorboard`` of the finished run
gives the same tags, steps and values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.curriculum import accelerate_argv, expand, parse_curriculum, planned_run_flags
from dcvc_bench.curriculum.expand import step_config_hash
from dcvc_bench.events import read_events
from dcvc_bench.tracking import EVAL_SCALARS, TRACKERS, TRAIN_SCALARS, missing_packages

cli = CliRunner()

TINY = """\
name = "tb"
output_dir = "{out}"

[data.synthetic]
videos = 2
frames = 4
width = 64
height = 64
val_frames = 3

[model]
preset = "tiny"

[i_frame]
type = "opencv"

[train]
batch_size = 1
crop_size = 64
num_workers = 0
steps_per_epoch = 2
eval_max_frames = 3

[[tracks]]
lambda = 256
quality_index = 1

[[stages]]
stage = 1
gops = [2]
epochs = 2

[accelerate]
device = "cpu"
"""


def _with_trackers(text: str, trackers: str) -> str:
    return text + f"\n[logging]\ntrackers = {trackers}\n"


def _toml(tmp_path: Path, trackers: str | None) -> Path:
    text = TINY.format(out=tmp_path / "runs")
    path = tmp_path / "tb.toml"
    path.write_text(text if trackers is None else _with_trackers(text, trackers))
    return path


# -- the curriculum and the command line ---------------------------------------------------
@pytest.mark.parametrize("trackers, message", [
    ('["tensorbord"]', "logging.trackers[0]: unknown tracker 'tensorbord' (did you mean 'tensorboard'?); "
                       "choose from tensorboard, wandb, mlflow, aim"),
    ('["tensorboard", "tensorboard"]', "logging.trackers[1]: 'tensorboard' is listed twice"),
    ('"tensorboard"', "logging.trackers: must be an array"),
])
def test_a_bad_tracker_is_one_line_naming_the_key_and_exit_2(tmp_path, trackers, message):
    toml = _toml(tmp_path, trackers)
    result = cli.invoke(app, ["plan", str(toml)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {toml}: {message}") and result.output.count("\n") == 1


def test_the_trackers_reach_the_trainer_as_flags_and_never_change_a_steps_config(tmp_path):
    plain = parse_curriculum(TINY.format(out=tmp_path))
    tracked = parse_curriculum(_with_trackers(TINY.format(out=tmp_path), '["tensorboard", "wandb"]'))
    step = expand(tracked)[0]
    argv = accelerate_argv(tracked, step, planned_run_flags(tracked, step, expand(tracked)))
    tail = argv[argv.index("--trackers"):]
    assert tail == ["--trackers", "tensorboard,wandb", "--tracker_dir", str(tmp_path / "tb"),
                    "--tracker_project", "tb", "--tracker_run", step.id, "--tracker_group", step.track]
    plain_step = expand(plain)[0]
    assert "--trackers" not in accelerate_argv(plain, plain_step, planned_run_flags(plain, plain_step, expand(plain)))
    assert step_config_hash(tracked, step) == step_config_hash(plain, plain_step)  # no re-run for a tracker


def test_a_tracker_whose_package_is_missing_stops_the_run_before_anything_starts(tmp_path):
    missing = [name for name, _ in missing_packages(TRACKERS)]
    if not missing:
        pytest.skip("every tracker's package is installed here")
    name = missing[0]
    toml = _toml(tmp_path, json.dumps([name]))
    result = cli.invoke(app, ["run", str(toml)])
    assert result.exit_code == 2
    pip_name = TRACKERS[name][1]
    assert result.output == (f"error: {toml}: [logging].trackers: the {name!r} tracker needs the package "
                             f"{pip_name}, which is not installed; `pip install {pip_name}`\n")
    assert not (tmp_path / "runs").exists()  # nothing created, nothing launched


def test_the_trainer_refuses_an_unknown_tracker_in_one_line(tmp_path):
    from dcvc_bench.train.args import parse_args
    from dcvc_bench.errors import UserError

    base = ["--train_video_dir", str(tmp_path), "--lambda_value", "256", "--quality_index", "1", "--stage", "1"]
    assert parse_args(base + ["--trackers", "tensorboard"]).trackers == ["tensorboard"]
    with pytest.raises(UserError, match=r"--trackers: unknown tracker 'mlfow' \(did you mean 'mlflow'\?\)"):
        parse_args(base + ["--trackers", "mlfow"])


def test_export_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    result = cli.invoke(app, ["export", "tensorboard", str(tmp_path)])
    assert result.exit_code == 2
    assert "has no steps/<step-id>/events.jsonl" in result.output and result.output.count("\n") == 1


# -- a real run --------------------------------------------------------------------------
def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(events: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """What the events say, step = the global iteration (epoch * iters_per_epoch + iter)."""
    ipe = next(e["iters_per_epoch"] for e in events if e["event"] == "step_start")
    out: dict[str, list[tuple[int, float]]] = {}
    for e in events:
        if e["event"] == "train":
            step, names = e["epoch"] * ipe + e["iter"], TRAIN_SCALARS
        elif e["event"] == "eval":
            step, names = e["epoch"] * ipe, EVAL_SCALARS
        else:
            continue
        for name in names:
            if e.get(name) is not None:
                out.setdefault(f"{e['event']}/{name}", []).append((step, e[name]))
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_writes_tensorboard_files_with_loss_psnr_bpp_per_step_and_export_gives_the_same(tmp_path):
    pytest.importorskip("tensorboard")
    toml = _toml(tmp_path, '["tensorboard"]')
    script = Path(sys.executable).with_name("dcvc-bench")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "dcvc_bench.cli"]
    done = subprocess.run([*argv, "run", str(toml)], cwd=tmp_path, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "runs" / "tb"
    step_id = "l256-s1g2"
    events = read_events(run_dir / "steps" / step_id / "events.jsonl")
    expected = _expected(events)
    assert {"train/loss", "train/psnr", "train/bpp", "eval/psnr", "eval/bpp"} <= set(expected)
    assert [s for s, _ in expected["train/loss"]] == [1, 2, 3, 4]  # 2 epochs of 2 iterations
    assert [s for s, _ in expected["eval/psnr"]] == [2, 4]

    live = _scalars(run_dir / "tb" / step_id)
    assert set(live) == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in live[tag]] == [s for s, _ in points], tag
        assert [v for _, v in live[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag

    # The export of the finished run, in a process that must not load torch.
    out = tmp_path / "export"
    code = ("import sys; from dcvc_bench.cli import main; sys.argv = ['dcvc-bench', 'export', 'tensorboard', "
            f"{str(run_dir)!r}, '--out', {str(out)!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'torch' not in sys.modules, 'export imported torch'\n")
    exported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    n = sum(len(p) for p in expected.values())
    assert exported.stdout == (f"wrote {n} scalars of 1 step to {out}; view them with "
                               f"`tensorboard --logdir {out}`\n")
    again = _scalars(out / step_id)
    assert set(again) == set(live)
    assert again == live  # the same float32 values at the same steps
    # Exporting again replaces the earlier export (no doubled points).
    assert cli.invoke(app, ["export", "tensorboard", str(run_dir), "--out", str(out)]).exit_code == 0
    assert _scalars(out / step_id) == again
