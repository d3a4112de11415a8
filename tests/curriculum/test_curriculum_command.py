"""The accelerate command line of a step, and the run folder's paths."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from dcvc_bench.curriculum import accelerate_argv, expand, load_curriculum, parse_curriculum, run_paths

REPO = Path(__file__).resolve().parents[2]

# The trainer's flags (shared/DESIGN.md "Training step entry"), plus the I-frame families' own flags.
TRAINER_FLAGS = set("""
train_video_dir val_video_dir checkpoint_dir i_frame_type i_frame_model_name i_frame_quality
i_frame_pretrained vqgan_config vqgan_checkpoint lambda_value quality_index stage gop_size epochs
batch_size learning_rate force_learning_rate crop_size eval_freq eval_max_frames eval_intra_period
skip_eval num_workers resume load_pretrained use_scheduler scheduler_factor scheduler_patience
scheduler_min_lr use_ema ema_decay evaluate_both stage4_gop_opt grad_clip_max_norm mixed_precision
gradient_accumulation_steps seed compile model_preset steps_per_epoch events_file i_frame_checkpoint
spynet_checkpoint rvq_layers i_frame_codec
""".split())


def full_and_steps(**edits: str):
    text = (REPO / "curricula" / "full.toml").read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    cur = parse_curriculum(text)
    return cur, expand(cur)


def trainer_part(argv: list[str]) -> list[str]:
    return argv[argv.index("dcvc_bench.train") + 1:]


def test_argv_shape_and_shlex_round_trip():
    cur, steps = full_and_steps()
    run_flags = {"checkpoint_dir": "runs/full/checkpoints/l2048", "resume": "a dir/with 'quotes'.pth"}
    argv = accelerate_argv(cur, steps[1], run_flags)
    assert argv[:2] == ["accelerate", "launch"]
    assert argv[argv.index("-m") + 1] == "dcvc_bench.train"
    for flag, value in (("--num_processes", "1"), ("--num_machines", "1"), ("--mixed_precision", "no"),
                        ("--dynamo_backend", "no")):
        assert argv[argv.index(flag) + 1] == value
    assert int(argv[argv.index("--num_cpu_threads_per_process") + 1]) >= 1
    assert "--cpu" not in argv and "--multi_gpu" not in argv
    assert shlex.split(shlex.join(argv)) == argv
    tail = trainer_part(argv)
    assert tail[tail.index("--resume") + 1] == "a dir/with 'quotes'.pth"
    assert {a[2:] for a in tail if a.startswith("--")} - {"no-" + f for f in TRAINER_FLAGS} <= TRAINER_FLAGS


def test_smoke_runs_on_cpu_with_all_cores(monkeypatch):
    monkeypatch.setattr("dcvc_bench.curriculum.command.available_cpus", lambda: 6)
    cur = load_curriculum(None)
    argv = accelerate_argv(cur, expand(cur)[0], {})
    assert "--cpu" in argv
    assert argv[argv.index("--num_cpu_threads_per_process") + 1] == "6"


def test_threads_split_across_processes_and_explicit_settings(monkeypatch):
    monkeypatch.setattr("dcvc_bench.curriculum.command.available_cpus", lambda: 16)
    cur, steps = full_and_steps(**{"num_processes = 1": "num_processes = 4\ngpu_ids = [0, 1, 2, 3]",
                                   'mixed_precision = "no"': 'mixed_precision = "bf16"'})
    argv = accelerate_argv(cur, steps[0], {})
    assert argv[argv.index("--num_cpu_threads_per_process") + 1] == "4"
    assert argv[argv.index("--gpu_ids") + 1] == "0,1,2,3"
    assert "--multi_gpu" in argv
    assert argv[argv.index("--mixed_precision") + 1] == "bf16"
    assert trainer_part(argv)[trainer_part(argv).index("--mixed_precision") + 1] == "bf16"
    one_gpu = accelerate_argv(cur, steps[0], {}, gpu_ids=[2], cpu_threads=2)
    assert one_gpu[one_gpu.index("--gpu_ids") + 1] == "2"
    assert one_gpu[one_gpu.index("--num_cpu_threads_per_process") + 1] == "2"
    cur, steps = full_and_steps(num_processes="cpu_threads_per_process = 3\nnum_processes")
    argv = accelerate_argv(cur, steps[0], {})
    assert argv[argv.index("--num_cpu_threads_per_process") + 1] == "3"


def test_python_launches_accelerate_as_a_module():
    cur, steps = full_and_steps()
    argv = accelerate_argv(cur, steps[0], {}, python="/venv/bin/python")
    assert argv[:3] == ["/venv/bin/python", "-m", "accelerate.commands.launch"]


def test_booleans_follow_the_trainers_argparse():
    cur, steps = full_and_steps(**{"seed = 42": "seed = 42\ncompile = true"})
    first, opt = trainer_part(accelerate_argv(cur, steps[0], {})), trainer_part(accelerate_argv(cur, steps[-1], {}))
    assert "--no-use_scheduler" in first and "--use_scheduler" in opt
    assert "--use_ema" in first and "--evaluate_both" in first and "--i_frame_pretrained" in first
    assert "--compile" in first
    assert "--stage4_gop_opt" in opt and "--stage4_gop_opt" not in first  # a switch: absent when false
    assert not any(a in first for a in ("--no-stage4_gop_opt", "--no-skip_eval", "--no-compile"))
    assert first[first.index("--learning_rate") + 1] == "0.0001"


def test_run_flags_cannot_repeat_curriculum_flags():
    cur, steps = full_and_steps()
    with pytest.raises(ValueError, match="epochs"):
        accelerate_argv(cur, steps[0], {"epochs": 3})


def test_run_paths():
    cur = load_curriculum(None)
    paths = run_paths(cur)
    assert paths.run_dir == Path("runs/smoke")
    assert paths.data_dirs == (Path("runs/smoke/data/train"), Path("runs/smoke/data/val"))
    assert paths.checkpoints_dir("l2048") == Path("runs/smoke/checkpoints/l2048")
    assert paths.events_file("l2048-s1g2") == Path("runs/smoke/steps/l2048-s1g2/events.jsonl")
    assert paths.stdout_log("l2048-s1g2") == Path("runs/smoke/steps/l2048-s1g2/stdout.log")
    assert paths.final_checkpoint("l2048-s1g2") == Path("runs/smoke/steps/l2048-s1g2/final.pth")
    assert paths.frozen_curriculum == Path("runs/smoke/curriculum.toml")
    full = load_curriculum(REPO / "curricula" / "full.toml")
    assert run_paths(full).data_dirs == (Path("data/train"), Path("data/val"))
