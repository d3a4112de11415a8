"""Curriculum -> the ordered list of :class:`Step` s, and each step's config hash.

Order: for each track, stage by stage, GOP by GOP, then the optional GOP-optimisation
step; tracks one after another. The expansion is static: how a step actually starts on a
given run folder is the runner's decision (``Step.planned_start`` is the fresh-folder case).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from dcvc_bench.curriculum.command import run_paths
from dcvc_bench.curriculum.iframe_spec import I_FRAME_FLAGS, TYPE_FLAG
from dcvc_bench.curriculum.schema import Curriculum, TrainOptions, Track
from dcvc_bench.curriculum.steps import StartKind, Step

CONFIG_HASH_VERSION = 1
# Flags that change speed, not the numbers a step produces: editing them keeps finished steps.
COSMETIC_FLAGS = frozenset({"num_workers"})
DATA_DIR_FLAGS = ("train_video_dir", "val_video_dir")
IFRAME_FLAGS = frozenset({TYPE_FLAG, *I_FRAME_FLAGS})


def expand(cur: Curriculum, data_dirs: Optional[tuple[Path, Path]] = None) -> list[Step]:
    """All steps of the curriculum in run order. ``data_dirs`` (train, val) default to the
    curriculum's folders, or ``<run_dir>/data/{train,val}`` for synthetic data."""
    train_dir, val_dir = data_dirs if data_dirs is not None else run_paths(cur).data_dirs
    steps: list[Step] = []

    def add(track: Track, stage: int, gop: int, epochs: int, opts: TrainOptions, *, gop_opt: bool = False,
            first_in_stage: bool = False, previous_stage: Optional[int] = None) -> None:
        steps.append(Step(
            track=str(track.name), index=len(steps), stage=stage, gop=gop, epochs=epochs,
            lambda_value=track.lambda_value, quality_index=track.quality_index, gop_opt=gop_opt,
            first_in_stage=first_in_stage,
            train_flags=_train_flags(cur, track, stage, gop, epochs, opts, gop_opt, train_dir, val_dir),
            reset_learning_rate=opts.reset_learning_rate, previous_stage=previous_stage))

    for track in cur.tracks:
        before: Optional[int] = None  # the stage that ran before this one in the curriculum
        for spec in cur.stages:
            opts = cur.stage_options(spec)
            for k, (gop, epochs) in enumerate(zip(spec.gops, spec.epochs_per_gop())):
                loads = (before or spec.stage - 1) if k == 0 and spec.stage > 1 else None
                add(track, spec.stage, gop, epochs, opts, first_in_stage=k == 0, previous_stage=loads)
            before = spec.stage
        gop_opt = cur.gop_opt_step
        if gop_opt is not None:  # validation guarantees stage 4 is present, hence last
            add(track, 4, gop_opt.gop or cur.stages[-1].gops[-1], gop_opt.epochs, cur.gop_opt_options(),
                gop_opt=True)
    return steps


def _train_flags(cur: Curriculum, track: Track, stage: int, gop: int, epochs: int, opts: TrainOptions,
                 gop_opt: bool, train_dir: Path, val_dir: Path) -> dict[str, object]:
    """Every trainer flag of a step except the run-dependent ones, in the seed guide's
    order. Options that only matter when their feature is on (scheduler, EMA) are left out
    when it is off, so editing them does not invalidate finished steps."""
    flags: dict[str, object] = {
        "train_video_dir": str(train_dir),
        "val_video_dir": str(val_dir),
        "model_preset": cur.model.preset,
        "spynet_checkpoint": cur.model.spynet_checkpoint,
        **cur.i_frame.to_flags(),
        "lambda_value": track.lambda_value,
        "quality_index": track.quality_index,
        "stage": stage,
        "gop_size": gop,
        "stage4_gop_opt": gop_opt,
        "epochs": epochs,
        "batch_size": opts.batch_size,
        "learning_rate": opts.learning_rate,
        "crop_size": opts.crop_size,
        "num_workers": opts.num_workers,
        "steps_per_epoch": opts.steps_per_epoch,
        "eval_freq": opts.eval_freq,
        "eval_max_frames": opts.eval_max_frames,
        "eval_intra_period": opts.eval_intra_period,
        "skip_eval": opts.skip_eval,
        "use_scheduler": opts.use_scheduler,
    }
    if opts.use_scheduler:
        flags.update(scheduler_factor=opts.scheduler_factor, scheduler_patience=opts.scheduler_patience,
                     scheduler_min_lr=opts.scheduler_min_lr)
    flags["use_ema"] = opts.use_ema
    if opts.use_ema:
        flags.update(ema_decay=opts.ema_decay, evaluate_both=opts.evaluate_both)
    flags.update(grad_clip_max_norm=opts.grad_clip_max_norm, mixed_precision=cur.accelerate.mixed_precision,
                 gradient_accumulation_steps=opts.gradient_accumulation_steps, seed=opts.seed,
                 compile=opts.compile)
    return {name: value for name, value in flags.items() if value is not None}


def step_config_hash(cur: Curriculum, step: Step) -> str:
    """sha256 of what decides the numbers a step produces; the ledger stores it, and a
    finished step whose hash changed (after the TOML was edited) is re-run.

    Hashed: the step's trainer flags; the synthetic clips' recipe (count, frames, size,
    seeds) instead of their folder; the accelerate options that change the maths
    (``num_processes`` changes the effective batch; ``mixed_precision`` is already a
    trainer flag); and how the step starts on a fresh folder (which stage's best it loads,
    the reset LR it forces). Not hashed, because they leave the numbers alone: the run name
    and output folder, the synthetic data's location, ``num_workers``, CPU threads, GPU ids,
    ``device``, the failure policy.
    """
    flags = {k: v for k, v in step.train_flags.items() if k not in COSMETIC_FLAGS and k not in IFRAME_FLAGS}
    flags.update(cur.i_frame.hashed_flags())  # the step's I-frame flags, in the form older runs hashed
    synthetic = cur.data.synthetic
    if synthetic is not None:
        for name in DATA_DIR_FLAGS:
            flags.pop(name, None)
    start = step.planned_start
    payload = {
        "version": CONFIG_HASH_VERSION,
        "train_flags": flags,
        "synthetic_data": synthetic.model_dump() if synthetic is not None else None,
        "num_processes": cur.accelerate.num_processes,
        "start": start.value,
        "previous_stage": step.previous_stage,
        "reset_learning_rate": step.reset_learning_rate if start is StartKind.STAGE_LATEST_LR_RESET else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
