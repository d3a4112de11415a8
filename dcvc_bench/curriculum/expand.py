"""Curriculum -> the ordered list of :class:`Step` s, and each step's config hash.

Order: the I-frame steps of ``[iframe_training]`` first (:mod:`~dcvc_bench.curriculum.iframe_training`),
then for each track, stage by stage, GOP by GOP, then the optional GOP-optimisation
step; tracks one after another. When the curriculum trains its I-frame codec, every
P-frame step reads it (``iframe:codec``, passed as the I-frame checkpoint flag). The expansion is static: how a step actually starts on a
given run folder is the runner's decision (``Step.planned_start`` is the fresh-folder case).
Each step gets its kind and what it produces and consumes (``curriculum.steps``); a new
step kind is expanded here, from its own curriculum table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

from dcvc_bench.curriculum.command import run_paths
from dcvc_bench.curriculum.iframe_spec import I_FRAME_FLAGS, TYPE_FLAG, IFrameSpec
from dcvc_bench.curriculum.iframe_training import CompressAITraining, config_flag, read_vq_config
from dcvc_bench.curriculum.schema import Curriculum, TrainOptions, Track
from dcvc_bench.curriculum.steps import (
    IFRAME_ARTIFACT, IFRAME_SCOPE, StartKind, Step, StepKind, pframe_artifact, producer,
)
from dcvc_bench.errors import UserError

CONFIG_HASH_VERSION = 1
# Flags that change speed, not the numbers a step produces: editing them keeps finished steps.
COSMETIC_FLAGS = frozenset({"num_workers", "frame_cache"})
DATA_DIR_FLAGS = ("train_video_dir", "val_video_dir")
IFRAME_FLAGS = frozenset({TYPE_FLAG, *I_FRAME_FLAGS})


def expand(cur: Curriculum, data_dirs: Optional[tuple[Path, Path]] = None) -> list[Step]:
    """All steps of the curriculum in run order. ``data_dirs`` (train, val) default to the
    curriculum's folders, or ``<run_dir>/data/{train,val}`` for synthetic data."""
    train_dir, val_dir = data_dirs if data_dirs is not None else run_paths(cur).data_dirs
    steps: list[Step] = iframe_steps(cur, (train_dir, val_dir))
    reads = ((IFRAME_ARTIFACT, cur.i_frame.FLAGS["checkpoint"]),) if cur.trains_i_frame else ()

    def add(track: Track, stage: int, gop: int, epochs: int, opts: TrainOptions, *,
            kind: StepKind = StepKind.PFRAME, first_in_stage: bool = False,
            previous_stage: Optional[int] = None) -> None:
        weights = pframe_artifact(str(track.name))
        fresh = first_in_stage and stage == 1  # anything else continues the track's weights
        steps.append(Step(
            track=str(track.name), index=len(steps), stage=stage, gop=gop, epochs=epochs,
            lambda_value=track.lambda_value, quality_index=track.quality_index, kind=kind,
            first_in_stage=first_in_stage,
            train_flags=_train_flags(cur, track, stage, gop, epochs, opts, kind is StepKind.GOP_OPT,
                                     train_dir, val_dir),
            reset_learning_rate=opts.reset_learning_rate, previous_stage=previous_stage,
            produces=weights, consumes=(() if fresh else (weights,)) + tuple(a for a, _ in reads),
            input_flags=reads))

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
                kind=StepKind.GOP_OPT)
    return steps


def iframe_steps(cur: Curriculum, data_dirs: tuple[Path, Path]) -> list[Step]:
    """The steps of ``[iframe_training]`` (none without it), each continuing the one before."""
    training = cur.iframe_training
    if training is None:
        return []
    lmbda = training.lmbda if isinstance(training, CompressAITraining) else 0.0
    return [Step(track=IFRAME_SCOPE, index=k, stage=0, gop=1, epochs=epochs, lambda_value=lmbda, quality_index=0,
                 kind=StepKind.IFRAME, first_in_stage=k == 0,
                 train_flags=training.step_flags(phase, epochs, cur.train, data_dirs, cur.accelerate.mixed_precision),
                 produces=IFRAME_ARTIFACT, consumes=() if k == 0 else (IFRAME_ARTIFACT,),
                 tag=phase.tag, i_frame_type=training.type)
            for k, (phase, epochs) in enumerate(zip(training.phases(), training.epochs_per_step()))]


def track_i_frame(cur: Curriculum, track: str) -> IFrameSpec:
    """The I-frame codec of a track's P-frame steps: ``[i_frame]``, at the track's RVQ depth."""
    layers = next((t.i_frame_layers for t in cur.tracks if t.name == track), None)
    return cur.i_frame if layers is None else cur.i_frame.with_settings(layers=layers)


def _i_frame_flags(cur: Curriculum, track: Track) -> dict[str, object]:
    """The track's I-frame flags; a trained codec's checkpoint is the runner's (``Step.input_flags``)."""
    spec = track_i_frame(cur, str(track.name))
    flags = spec.to_flags()
    if "vqgan_config" in flags:
        flags["vqgan_config"] = config_flag(str(flags["vqgan_config"]))
    if cur.trains_i_frame:
        flags.pop(spec.FLAGS["checkpoint"], None)
    return flags


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
        **_i_frame_flags(cur, track),
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
        "frame_cache": cur.data.frame_cache,
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


def config_hashes(cur: Curriculum, steps: Sequence[Step]) -> dict[str, str]:
    """Every step's config hash (step id -> hash), in run order, each one covering the
    hashes of the producers of the artifacts it only reads (``Step.inputs``), so a changed
    producer changes its consumers' hashes, and theirs their consumers'. The lineage a step
    updates in place (a track's P-frame weights) is not chained: a step that re-runs makes
    every later step of that lineage re-run anyway (``runner.resume``), and leaving it out
    keeps the hashes of the runs recorded before step kinds existed."""
    hashes: dict[str, str] = {}
    for step in sorted(steps, key=lambda s: s.index):
        hashes[step.id] = step_config_hash(cur, step, input_hashes(step, steps, hashes))
    return hashes


def input_hashes(step: Step, steps: Sequence[Step], hashes: Mapping[str, str]) -> dict[str, Optional[str]]:
    """artifact -> config hash of its producer (None: no step of the curriculum produces it),
    for each artifact ``step`` only reads; ``hashes`` has those of the steps before it."""
    sources = {artifact: producer(step, artifact, steps) for artifact in step.inputs}
    return {artifact: hashes[s.id] if s is not None else None for artifact, s in sources.items()}


def step_config_hash(cur: Curriculum, step: Step, inputs: Optional[Mapping[str, Optional[str]]] = None) -> str:
    """sha256 of what decides the numbers a step produces; the ledger stores it, and a
    finished step whose hash changed (after the TOML was edited) is re-run. ``inputs``:
    the config hashes of the producers of the artifacts the step only reads (None: none
    in this curriculum); :func:`config_hashes` fills them in run order. A step that reads
    nothing has the payload it had before step kinds existed.

    Hashed: the step's trainer flags; the synthetic clips' recipe (count, frames, size,
    seeds) instead of their folder; the accelerate options that change the maths
    (``num_processes`` changes the effective batch; ``mixed_precision`` is already a
    trainer flag); and how the step starts on a fresh folder (which stage's best it loads,
    the reset LR it forces). Not hashed, because they leave the numbers alone: the run name
    and output folder, the synthetic data's location, ``num_workers``, ``frame_cache``, CPU threads, GPU ids,
    ``device``, the failure policy.
    """
    if step.is_iframe:  # its own codec's flags, the config as written (not where it was found)
        flags = {k: v for k, v in step.train_flags.items() if k not in COSMETIC_FLAGS}
        if "vqgan_config" in flags and cur.iframe_training is not None:
            flags["vqgan_config"] = getattr(cur.iframe_training, "config")
    else:
        flags = {k: v for k, v in step.train_flags.items() if k not in COSMETIC_FLAGS and k not in IFRAME_FLAGS}
        flags.update(track_i_frame(cur, step.track).hashed_flags())  # in the form older runs hashed
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
    if step.is_iframe:  # the architecture it trains, by content
        payload["kind"] = step.kind.value
        payload["vq_config"] = _vq_config_content(cur)
    if step.inputs:  # absent otherwise: the hashes of existing runs stay as they were
        if inputs is None or set(inputs) != set(step.inputs):
            raise ValueError(f"step {step.id} reads {list(step.inputs)}: pass their producers' hashes "
                             "(curriculum.expand.config_hashes)")
        payload["kind"] = step.kind.value
        payload["inputs"] = dict(inputs)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _vq_config_content(cur: Curriculum) -> object:
    """The VQ config an I-frame step trains, as data (None: not VQ, or unreadable: then
    `plan` and `run` refuse the curriculum anyway)."""
    config = getattr(cur.iframe_training, "config", None)
    if config is None:
        return None
    try:
        return read_vq_config(config, "iframe_training.config").data
    except UserError:
        return None
