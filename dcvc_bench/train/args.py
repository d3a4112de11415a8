"""Flags of one training step (`python -m dcvc_bench.train`).

Names follow the seed protocol (shared/DESIGN.md) so its commands keep working. Two fixes
over the reference script:
- boolean options that default to True can be switched off (``--no-use_ema``);
- ``--epochs`` counts the epochs of THIS step (stage + GOP), never a cumulative total.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Sequence

from dcvc_bench.curriculum.iframe_spec import I_FRAME_TYPES, default_spec, flag_help, spec_from_flags
from dcvc_bench.errors import UserError
from dcvc_bench.tracking import TRACKERS, missing_message, missing_packages, unknown_tracker

MIXED_PRECISION = ("no", "fp16", "bf16")
PRESETS = ("dcvc", "tiny")
CHECK_RANKS = ("epoch", "step", "off")  # --check_ranks (dcvc_bench/train/ranks.py)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every flag's default, also for a flag that has no help text
    (no "(default: None)" for a flag that is simply unset, nor False for an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as a UserError (one line, exit 2) instead of usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see python -m dcvc_bench.train --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m dcvc_bench.train",
        formatter_class=DefaultsHelpFormatter,
        description="One DCVC training step (one stage at one GOP size). Also runs as "
        "`accelerate launch [accelerate flags] -m dcvc_bench.train [flags]`.",
    )
    bool_flag = argparse.BooleanOptionalAction

    g = p.add_argument_group("data")
    g.add_argument("--train_video_dir", required=True, help="folder of .mp4 training clips")
    g.add_argument("--val_video_dir", default=None, help="folder of .mp4 validation clips")
    g.add_argument("--crop_size", type=int, default=256)
    g.add_argument("--num_workers", type=int, default=4)
    g.add_argument("--frame_cache", default=None, metavar="DIR",
                   help="decode each training clip once into DIR and read GOPs from there (faster loader)")
    g.add_argument("--steps_per_epoch", type=int, default=None,
                   help="cap an epoch at N iterations (quick runs)")

    # Each I-frame family has its own flags and defaults (dcvc_bench/curriculum/iframe_spec.py);
    # None = not given, so the family fills in its own and refuses another family's flags.
    g = p.add_argument_group("I-frame codec (frozen; each type has its own flags and defaults)")
    g.add_argument("--i_frame_type", choices=I_FRAME_TYPES, default=default_spec().type,
                   help=f"the I-frame codec family (default {default_spec().type})")
    for flag, kind, what in (("i_frame_model_name", str, "zoo name"), ("i_frame_quality", int, "quality"),
                             ("i_frame_pretrained", bool, "zoo weights, cached locally"),
                             ("i_frame_checkpoint", str, "local I-frame weights"),
                             ("i_frame_codec", str, "jpeg or webp"),
                             ("vqgan_config", str, "the JSON architecture file"),
                             ("vqgan_checkpoint", str, "the weights"),
                             ("rvq_layers", int, "residual layers used; none = all")):
        if kind is bool:
            g.add_argument(f"--{flag}", action=bool_flag, default=None, help=flag_help(flag, what))
        else:
            g.add_argument(f"--{flag}", type=kind, default=None, help=flag_help(flag, what))

    g = p.add_argument_group("model and rate point")
    g.add_argument("--model_preset", choices=PRESETS, default="dcvc")
    g.add_argument("--spynet_checkpoint", default=None, help="pretrained SpyNet flow weights")
    g.add_argument("--lambda_value", type=float, required=True,
                   help="λ on [0,1] pixels (DCVC convention; CompressAI's λ is λ/255²)")
    g.add_argument("--quality_index", type=int, required=True)

    g = p.add_argument_group("step")
    g.add_argument("--stage", type=int, choices=(1, 2, 3, 4), required=True)
    g.add_argument("--gop_size", type=int, default=7)
    g.add_argument("--epochs", type=int, default=10, help="epochs of THIS step")
    g.add_argument("--batch_size", type=int, default=4)
    g.add_argument("--learning_rate", type=float, default=1e-4)
    g.add_argument("--force_learning_rate", type=float, default=None,
                   help="set every param group's LR after loading, clear scheduler memory")
    g.add_argument("--grad_clip_max_norm", type=float, default=1.0, help="0 disables")
    g.add_argument("--stage4_gop_opt", action="store_true",
                   help="stage 4: one optimizer step per GOP through the undetached chain")

    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpoint_dir", default="./checkpoints")
    g.add_argument("--resume", default=None,
                   help="same step: continue; other GOP: its weights+optimizer; other stage: weights")
    g.add_argument("--load_pretrained", default=None, help="weights only, fresh optimizer")

    g = p.add_argument_group("scheduler and EMA")
    g.add_argument("--use_scheduler", action=bool_flag, default=False)
    g.add_argument("--scheduler_factor", type=float, default=0.5)
    g.add_argument("--scheduler_patience", type=int, default=3)
    g.add_argument("--scheduler_min_lr", type=float, default=1e-6)
    g.add_argument("--use_ema", action=bool_flag, default=True)
    g.add_argument("--ema_decay", type=float, default=0.999)
    g.add_argument("--evaluate_both", action=bool_flag, default=True,
                   help="evaluate the EMA weights next to the normal ones")

    g = p.add_argument_group("evaluation (estimation mode)")
    g.add_argument("--eval_freq", type=int, default=1, help="every N epochs")
    g.add_argument("--eval_max_frames", type=int, default=96)
    g.add_argument("--eval_intra_period", type=int, default=32, help="-1: one I-frame")
    g.add_argument("--skip_eval", action="store_true")

    g = p.add_argument_group("accelerate and reproducibility")
    g.add_argument("--mixed_precision", choices=MIXED_PRECISION, default=None,
                   help="default: what accelerate launch was given, else no")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--compile", action="store_true")
    g.add_argument("--force_cpu", action="store_true",
                   help="train on the CPU even where a GPU is; several processes connect over gloo")
    g.add_argument("--check_ranks", choices=CHECK_RANKS, default="epoch",
                   help="with several processes: compare every rank's weights (a digest) at each epoch's "
                        "end, after every optimizer step, or never; a mismatch ends the step failed")
    g.add_argument("--memory_format", choices=("channels_last", "contiguous"), default="contiguous",
                   help="how the P-frame network's weights and frames are laid out: contiguous "
                        "(NCHW, the plain path; faster for training on the 2-core AVX2 CPU measured) "
                        "or channels_last (NHWC); the network and its checkpoints are the same either way")
    g.add_argument("--events_file", default=None, help="append events (JSON lines) here")

    g = p.add_argument_group("experiment trackers (the events' scalars, through accelerate)")
    g.add_argument("--trackers", type=_tracker_list, default=[], metavar="NAME[,NAME]",
                   help=f"log to these trackers too: {', '.join(TRACKERS)}")
    g.add_argument("--tracker_dir", default=".", metavar="DIR",
                   help="their files: DIR/tb/RUN, DIR/wandb (offline), DIR/mlruns, DIR/aim")
    g.add_argument("--tracker_project", default="dcvc-bench", help="W&B project, MLflow/Aim experiment")
    g.add_argument("--tracker_run", default=None, help="the run's name (default: the step's phase, e.g. s1g2)")
    g.add_argument("--tracker_group", default=None, help="W&B group, MLflow/Aim tag 'track'")
    return p


def _tracker_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if (problem := unknown_tracker(name)) is not None:
            raise argparse.ArgumentTypeError(problem)
    return list(dict.fromkeys(names))


def _check_file(flag: str, value: str | None) -> None:
    if value is not None and not Path(value).is_file():
        raise UserError(f"{flag}: file {value} does not exist; check the path")


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Cross-flag rules. Every violation is one line naming the flag."""
    positive = ("crop_size", "batch_size", "epochs", "gradient_accumulation_steps", "eval_freq",
                "eval_max_frames")
    for name in positive:
        if getattr(args, name) < 1:
            raise UserError(f"--{name}: must be at least 1, got {getattr(args, name)}")
    if args.gop_size < 2:
        raise UserError(f"--gop_size: a GOP needs an I-frame and at least one P-frame, got {args.gop_size}")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        raise UserError(f"--steps_per_epoch: must be at least 1, got {args.steps_per_epoch}")
    if args.num_workers < 0:
        raise UserError(f"--num_workers: must be >= 0, got {args.num_workers}")
    if args.lambda_value <= 0:
        raise UserError(f"--lambda_value: must be positive, got {args.lambda_value}")
    for name in ("learning_rate", "force_learning_rate"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UserError(f"--{name}: must be positive, got {value}")
    if not 0.0 < args.ema_decay < 1.0:
        raise UserError(f"--ema_decay: must be in (0, 1), got {args.ema_decay}")
    if args.stage4_gop_opt and args.stage != 4:
        raise UserError(f"--stage4_gop_opt: only valid with --stage 4, got --stage {args.stage}")
    if args.resume and args.load_pretrained:
        raise UserError("--resume and --load_pretrained: give one (resume = full state, "
                        "load_pretrained = weights only)")
    if args.eval_intra_period == 0 or args.eval_intra_period < -1:
        raise UserError(f"--eval_intra_period: must be >= 1 or -1, got {args.eval_intra_period}")
    for flag in ("resume", "load_pretrained", "i_frame_checkpoint", "spynet_checkpoint"):
        _check_file(f"--{flag}", getattr(args, flag))
    for tracker, pip_name in missing_packages(args.trackers):
        raise UserError(f"--trackers: {missing_message(tracker, pip_name)}")
    args.i_frame_spec = spec_from_flags(args)  # the I-frame codec: the one thing the trainer reads
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return validate(build_parser().parse_args(argv))
