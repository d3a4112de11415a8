"""Curriculum -> steps: the seed's order, how each step starts, epochs per step."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcvc_bench.curriculum import StartKind, expand, load_curriculum, parse_curriculum, planned_run_flags

REPO = Path(__file__).resolve().parents[2]
FULL = REPO / "curricula" / "full.toml"

SEED_ORDER = ["s1g2", "s1g3", "s1g5", "s1g7", "s2g2", "s2g3", "s2g5", "s2g7",
              "s3g2", "s3g3", "s3g5", "s3g7", "s4g2", "s4g3", "s4g5", "s4g7", "s4g7-opt"]

MINI = """\
name = "m"
[data]
train_dir = "clips/train"
val_dir = "clips/val"
{tracks}
{stages}
"""
ONE_TRACK = "[[tracks]]\nlambda = 256\nquality_index = 1\n"


def mini(stages: str, tracks: str = ONE_TRACK):
    return parse_curriculum(MINI.format(tracks=tracks, stages=stages))


def stage(number: int, gops="[2, 3]", epochs="1", extra=""):
    return f"[[stages]]\nstage = {number}\ngops = {gops}\nepochs = {epochs}\n{extra}\n"


@pytest.fixture(scope="module")
def full():
    cur = load_curriculum(FULL)
    return cur, expand(cur)


def test_full_is_17_steps_in_seed_order(full):
    _, steps = full
    assert [s.id for s in steps] == [f"l2048-{p}" for p in SEED_ORDER]
    assert [s.index for s in steps] == list(range(17))
    assert all(s.epochs == 10 and s.train_flags["epochs"] == 10 for s in steps)  # per step, never cumulative


def test_full_lr_reset_on_every_gop_increase_and_previous_best_at_every_stage_change(full):
    cur, steps = full
    ckpt = "runs/full/checkpoints/l2048"
    for prev, step in zip([None, *steps], steps):
        flags = planned_run_flags(cur, step, steps)
        assert flags["checkpoint_dir"] == ckpt
        assert flags["events_file"] == f"runs/full/steps/{step.id}/events.jsonl"
        if step.id == "l2048-s1g2":
            assert step.planned_start is StartKind.FRESH
            assert set(flags) == {"checkpoint_dir", "events_file"}
        elif step.first_in_stage:
            assert step.planned_start is StartKind.PREVIOUS_STAGE_BEST
            best = f"model_dcvc_lambda_2048.0_quality_4_stage_{step.stage - 1}_best.pth"
            assert flags["load_pretrained"] == f"{ckpt}/{best}"
            assert "resume" not in flags and "force_learning_rate" not in flags
        else:  # a GOP increase, or the GOP optimisation after stage 4's last GOP
            assert step.planned_start is StartKind.STAGE_LATEST_LR_RESET
            assert flags["resume"] == f"runs/full/steps/{prev.id}/final.pth"
            assert flags["force_learning_rate"] == 1e-4
            assert "load_pretrained" not in flags


def test_full_stage_options(full):
    _, steps = full
    for step in steps:
        flags = step.train_flags
        assert (flags["stage"], flags["gop_size"]) == (step.stage, step.gop)
        assert (flags["lambda_value"], flags["quality_index"]) == (2048.0, 4)
        assert (flags["batch_size"], flags["crop_size"], flags["learning_rate"]) == (4, 256, 1e-4)
        assert (flags["i_frame_type"], flags["i_frame_model_name"], flags["i_frame_quality"]) == (
            "compressai", "cheng2020-anchor", 6)
        assert flags["use_scheduler"] is (step.stage == 4)
        assert flags["stage4_gop_opt"] is step.gop_opt
        assert not set(flags) & {"resume", "load_pretrained", "force_learning_rate", "events_file", "checkpoint_dir"}
    opt = steps[-1]
    assert (opt.stage, opt.gop, opt.gop_opt) == (4, 7, True)
    assert opt.train_flags["scheduler_patience"] == 3 and opt.train_flags["scheduler_min_lr"] == 1e-6
    assert "scheduler_patience" not in steps[0].train_flags  # scheduler off: its options are not flags


def test_smoke_steps_and_data_dirs():
    cur = load_curriculum(None)
    steps = expand(cur)
    assert [s.phase_id for s in steps] == ["s1g2", "s1g3", "s2g2", "s2g3", "s3g2", "s3g3", "s4g2", "s4g3", "s4g3-opt"]
    assert [s.epochs for s in steps] == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    first = steps[0].train_flags
    assert (first["train_video_dir"], first["val_video_dir"]) == ("runs/smoke/data/train", "runs/smoke/data/val")
    assert first["model_preset"] == "tiny" and first["steps_per_epoch"] == 3 and first["num_workers"] == 0
    moved = expand(cur, (Path("/tmp/a"), Path("/tmp/b")))
    assert moved[0].train_flags["train_video_dir"] == "/tmp/a" and moved[0].train_flags["val_video_dir"] == "/tmp/b"


def test_tracks_run_one_after_another_with_their_own_names():
    tracks = ONE_TRACK + '[[tracks]]\nname = "hi"\nlambda = 2048\nquality_index = 4\n'
    steps = expand(mini(stage(1), tracks))
    assert [s.id for s in steps] == ["l256-s1g2", "l256-s1g3", "hi-s1g2", "hi-s1g3"]
    assert [s.index for s in steps] == [0, 1, 2, 3]
    assert steps[2].planned_start is StartKind.FRESH  # each track starts from scratch
    assert steps[3].train_flags["lambda_value"] == 2048.0


def test_epochs_list_gives_each_gop_its_own_count():
    steps = expand(mini(stage(1, gops="[2, 3, 5]", epochs="[4, 2, 1]")))
    assert [(s.gop, s.epochs) for s in steps] == [(2, 4), (3, 2), (5, 1)]


def test_stage_overrides_apply_to_that_stage_only():
    cur = mini(stage(1) + stage(2, extra="learning_rate = 5e-5\nreset_learning_rate = 2e-5\nbatch_size = 8"))
    steps = expand(cur)
    assert [s.train_flags["learning_rate"] for s in steps] == [1e-4, 1e-4, 5e-5, 5e-5]
    assert [s.train_flags["batch_size"] for s in steps] == [4, 4, 8, 8]
    assert planned_run_flags(cur, steps[3], steps)["force_learning_rate"] == 2e-5


def test_a_subset_of_stages_loads_the_stage_before_it():
    steps = expand(mini(stage(1) + stage(3)))
    assert steps[2].previous_stage == 1 and steps[2].planned_start is StartKind.PREVIOUS_STAGE_BEST
    later = expand(mini(stage(4)))  # expects stage 3's best in the track's checkpoint folder
    assert later[0].previous_stage == 3 and later[0].planned_start is StartKind.PREVIOUS_STAGE_BEST


def test_gop_opt_defaults_to_stage_4s_last_gop_and_inherits_its_options():
    cur = mini(stage(4, gops="[2, 5]", extra="use_scheduler = true\nbatch_size = 2")
               + "[gop_opt]\nepochs = 3\nlearning_rate = 1e-5\n")
    opt = expand(cur)[-1]
    assert (opt.id, opt.epochs) == ("l256-s4g5-opt", 3)
    flags = opt.train_flags
    assert (flags["use_scheduler"], flags["batch_size"], flags["learning_rate"]) == (True, 2, 1e-5)


def test_disabled_gop_opt_adds_no_step():
    cur = mini(stage(4) + "[gop_opt]\nenabled = false\nepochs = 3\n")
    assert [s.phase_id for s in expand(cur)] == ["s4g2", "s4g3"]
