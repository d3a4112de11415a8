"""Flags of the I-frame training step (`python -m dcvc_bench.train.iframe`).

The common flags mean what they mean for the P-frame step (`python -m dcvc_bench.train`);
the family flags are the contract in README "The I-frame training step". Checked here,
before torch is imported: every violation is one line naming the flag.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Sequence

from dcvc_bench.curriculum.iframe_spec import COMPRESSAI_TYPE, RVQ_TYPE, TRAINABLE_TYPES, VQ_TYPES, spec_from_flags
from dcvc_bench.errors import UserError
from dcvc_bench.train.args import MIXED_PRECISION, DefaultsHelpFormatter

PROG = "python -m dcvc_bench.train.iframe"
TYPES = TRAINABLE_TYPES
#: CompressAI's MSE λ per zoo quality (its RateDistortionLoss convention): the default
#: ``--lambda_value`` of a ``--i_frame_quality``.
ZOO_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
_TAG = re.compile(r"^[a-z0-9]+$")

#: Flags of one family only: given with another --i_frame_type they are refused.
_VQ_FLAGS = ("vqgan_config", "recon_loss", "perceptual_weight", "lpips_weights", "codebook_weight",
             "disc_start", "disc_weight", "disc_learning_rate", "disc_channels", "disc_layers",
             "index_fit_samples")
_RVQ_FLAGS = ("rvq_train_layers", "rvq_frozen_layers", "rvq_eval_layers", "rvq_quantize_dropout")
_COMPRESSAI_FLAGS = ("i_frame_model_name", "i_frame_quality", "lambda_value")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, formatter_class=DefaultsHelpFormatter, description="Train an I-frame codec (VQGAN, RVQ-VQGAN or a CompressAI image "
                "model) as one curriculum step. Also runs as `accelerate launch [flags] -m dcvc_bench.train.iframe`.")
    g = p.add_argument_group("data")
    g.add_argument("--train_video_dir", required=True, help="folder of .mp4 training clips (random frame crops)")
    g.add_argument("--val_video_dir", default=None, help="folder of .mp4 validation clips (their first frames)")
    g.add_argument("--crop_size", type=int, default=256)
    g.add_argument("--num_workers", type=int, default=4)
    g.add_argument("--steps_per_epoch", type=int, default=None, help="cap an epoch at N iterations")
    g.add_argument("--eval_max_frames", type=int, default=1, help="validation frames per clip (its first N)")
    g.add_argument("--eval_freq", type=int, default=1, help="evaluate every N epochs (and after the last)")
    g.add_argument("--skip_eval", action="store_true")

    g = p.add_argument_group("step")
    g.add_argument("--i_frame_type", choices=TYPES, required=True)
    g.add_argument("--step_tag", default="train", help="lower-case letters/digits: step_id and checkpoint names")
    g.add_argument("--epochs", type=int, default=10, help="epochs of THIS step")
    g.add_argument("--batch_size", type=int, default=8)
    g.add_argument("--learning_rate", type=float, default=1e-4)
    g.add_argument("--force_learning_rate", type=float, default=None,
                   help="set the LR after loading (the runner's divergence roll-back); the discriminator's "
                        "keeps its ratio to --learning_rate")
    g.add_argument("--grad_clip_max_norm", type=float, default=1.0, help="0 disables")
    g.add_argument("--checkpoint_dir", default="./checkpoints")
    g.add_argument("--resume", default=None, help="this step's own latest: continue exactly")
    g.add_argument("--load_pretrained", default=None, help="weights of another I-frame step's final")
    g.add_argument("--mixed_precision", choices=MIXED_PRECISION, default=None)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--force_cpu", action="store_true",
                   help="train on the CPU even where a GPU is; several processes connect over gloo")
    g.add_argument("--events_file", default=None)

    g = p.add_argument_group("VQGAN / RVQ-VQGAN (vqgan, rvq)")
    g.add_argument("--vqgan_config", default=None, help="the JSON architecture (required)")
    g.add_argument("--recon_loss", choices=("l1", "mse"), default=None, help="default l1")
    g.add_argument("--perceptual_weight", type=float, default=None, help="default 1.0; 0 turns LPIPS off")
    g.add_argument("--lpips_weights", default=None,
                   help="torchvision's AlexNet file for LPIPS (default: where eval's LPIPS looks); missing: term off")
    g.add_argument("--codebook_weight", type=float, default=None, help="default 1.0 (commitment loss)")
    g.add_argument("--disc_start", type=int, default=None, help="iteration the GAN loss starts (default 10000)")
    g.add_argument("--disc_weight", type=float, default=None, help="default 0.8, times the adaptive weight")
    g.add_argument("--disc_learning_rate", type=float, default=None, help="default --learning_rate")
    g.add_argument("--disc_channels", type=int, default=None, help="PatchGAN width (default 64)")
    g.add_argument("--disc_layers", type=int, default=None, help="PatchGAN stride-2 layers (default 3)")
    g.add_argument("--index_fit_samples", type=int, default=None,
                   help="training crops the final's index counts are fitted on (default 4096)")
    g.add_argument("--rvq_train_layers", type=int, default=None, help="rvq: depth trained (default all)")
    g.add_argument("--rvq_frozen_layers", type=int, default=None,
                   help="rvq: freeze encoder, quant_conv and codebooks 0..F-1 (default 0)")
    g.add_argument("--rvq_eval_layers", default=None, help="rvq: depths evaluated, e.g. 2,4,6,8")
    g.add_argument("--rvq_quantize_dropout", action=argparse.BooleanOptionalAction, default=None,
                   help="rvq: random depth 1..L per batch (default: the config's quantize_dropout)")

    g = p.add_argument_group("CompressAI image model (compressai)")
    g.add_argument("--i_frame_model_name", default=None, help="zoo architecture (default bmshj2018-hyperprior)")
    g.add_argument("--i_frame_quality", type=int, default=None, help="zoo size (default 3)")
    g.add_argument("--lambda_value", type=float, default=None,
                   help="loss = λ·255²·MSE + bpp (default: the zoo's λ of the quality)")
    return p


_VQ_DEFAULTS = {"recon_loss": "l1", "perceptual_weight": 1.0, "codebook_weight": 1.0, "disc_start": 10000,
                "disc_weight": 0.8, "disc_channels": 64, "disc_layers": 3, "index_fit_samples": 4096,
                "rvq_frozen_layers": 0}
_COMPRESSAI_DEFAULTS = {"i_frame_model_name": "bmshj2018-hyperprior", "i_frame_quality": 3}


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Cross-flag rules; fills in each family's defaults."""
    for name in ("crop_size", "batch_size", "epochs", "eval_max_frames", "eval_freq"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name}: must be at least 1, got {getattr(args, name)}")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        raise UserError(f"--steps_per_epoch: must be at least 1, got {args.steps_per_epoch}")
    if args.num_workers < 0:
        raise UserError(f"--num_workers: must be >= 0, got {args.num_workers}")
    if not _TAG.match(args.step_tag) or len(args.step_tag) > 40:
        raise UserError(f"--step_tag: lower-case letters and digits only (at most 40), got {args.step_tag!r}")
    for name in ("learning_rate", "force_learning_rate"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UserError(f"--{name}: must be positive, got {value}")
    if args.grad_clip_max_norm < 0:
        raise UserError(f"--grad_clip_max_norm: must be >= 0, got {args.grad_clip_max_norm}")
    if args.resume and args.load_pretrained:
        raise UserError("--resume and --load_pretrained: give one (resume = this step's full state, "
                        "load_pretrained = another step's weights)")
    for flag in ("resume", "load_pretrained"):
        value = getattr(args, flag)
        if value is not None and not Path(value).is_file():
            raise UserError(f"--{flag}: file {value} does not exist; check the path")
    vq = args.i_frame_type in VQ_TYPES
    own = (_VQ_FLAGS + (_RVQ_FLAGS if args.i_frame_type == RVQ_TYPE else ())) if vq else _COMPRESSAI_FLAGS
    for flag in _VQ_FLAGS + _RVQ_FLAGS + _COMPRESSAI_FLAGS:
        if flag not in own and getattr(args, flag) is not None:
            raise UserError(f"--{flag}: not a flag of --i_frame_type {args.i_frame_type}; remove it")
    (_validate_vq if vq else _validate_compressai)(args)
    return args


def _validate_vq(args: argparse.Namespace) -> None:
    for key, value in _VQ_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.disc_learning_rate is None:
        args.disc_learning_rate = args.learning_rate
    if args.vqgan_config is None:
        raise UserError(f"--vqgan_config: required with --i_frame_type {args.i_frame_type} (the JSON architecture)")
    if not Path(args.vqgan_config).is_file():
        raise UserError(f"--vqgan_config: file {args.vqgan_config} does not exist; check the path")
    for name in ("perceptual_weight", "codebook_weight", "disc_weight"):
        if not getattr(args, name) >= 0:
            raise UserError(f"--{name}: must be >= 0, got {getattr(args, name)}")
    if not args.disc_learning_rate > 0:
        raise UserError(f"--disc_learning_rate: must be positive, got {args.disc_learning_rate}")
    if args.disc_start < 0:
        raise UserError(f"--disc_start: must be >= 0, got {args.disc_start}")
    for name in ("disc_channels", "disc_layers", "index_fit_samples"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name}: must be at least 1, got {getattr(args, name)}")
    side = 3 * 2 ** args.disc_layers  # models.discriminator.min_input_side (torch-free here)
    if args.crop_size < side:
        raise UserError(f"--crop_size {args.crop_size}: the PatchGAN of --disc_layers {args.disc_layers} needs "
                        f"crops of at least {side} px; raise --crop_size or lower --disc_layers")
    if args.rvq_frozen_layers < 0:
        raise UserError(f"--rvq_frozen_layers: must be >= 0, got {args.rvq_frozen_layers}")
    if args.rvq_train_layers is not None and args.rvq_train_layers < 1:
        raise UserError(f"--rvq_train_layers: must be at least 1, got {args.rvq_train_layers}")
    if args.rvq_eval_layers is not None:
        try:
            depths = [int(v) for v in args.rvq_eval_layers.split(",")]
        except ValueError:
            raise UserError(f"--rvq_eval_layers: comma-separated depths, e.g. 2,4,6,8; got "
                            f"{args.rvq_eval_layers!r}") from None
        if not depths or min(depths) < 1:
            raise UserError(f"--rvq_eval_layers: depths must be at least 1, got {args.rvq_eval_layers!r}")
        args.rvq_eval_layers = sorted(set(depths))
    # Depths against the config's N are checked when the config is read (recipe set-up).


def _validate_compressai(args: argparse.Namespace) -> None:
    for key, value in _COMPRESSAI_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    # The codec trained: the zoo architecture, random weights (what the P-frame step's
    # --i_frame_checkpoint then loads the trained ones into).
    args.i_frame_spec = spec_from_flags({"i_frame_type": COMPRESSAI_TYPE, "i_frame_model_name": args.i_frame_model_name,
                                         "i_frame_quality": args.i_frame_quality, "i_frame_pretrained": False})
    if args.lambda_value is None:
        if args.i_frame_quality not in ZOO_LAMBDAS:
            raise UserError(f"--lambda_value: required for --i_frame_quality {args.i_frame_quality} "
                            "(the zoo's λ table covers qualities 1-8)")
        args.lambda_value = ZOO_LAMBDAS[args.i_frame_quality]
    if not args.lambda_value > 0:
        raise UserError(f"--lambda_value: must be positive, got {args.lambda_value}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return validate(build_parser().parse_args(argv))
