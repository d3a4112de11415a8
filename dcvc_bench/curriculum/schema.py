"""The curriculum schema: TOML text -> a validated :class:`Curriculum`. Pure Python.

The typed models (pydantic v2, strict, unknown keys forbidden) are the documentation of
the format (see the README ("The curriculum")). Every problem a user can make becomes ONE line
naming the file, the key path and the rule, raised as :class:`~dcvc_bench.errors.UserError`
(the CLI prints it and exits 2)::

    curricula/x.toml: stages[1].gops: must be strictly increasing, got [2, 5, 3]
    curricula/x.toml: tracks[0].lamda: unknown key; did you mean 'lambda'?

pydantic's own multi-line dump is never shown: :func:`~dcvc_bench.curriculum.messages.one_line` converts its first error
(``loc`` tuple -> ``stages[1].gops``) and counts the rest. The range of every number and the
rules for names and paths are in :mod:`~dcvc_bench.curriculum.bounds`, the CompressAI zoo in
:mod:`~dcvc_bench.curriculum.zoo`, reading the file in :mod:`~dcvc_bench.curriculum.textfile`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from dcvc_bench.curriculum.bounds import (
    MAX_EPOCHS, MAX_TRACKS, Accumulation, Batch, CropSize, Epochs, Fraction, FrameCount, Gop, GpuIds, GradNorm, Lambda,
    LearningRate, MinLearningRate, Name, OutputDir, PathText, Patience, Processes, Retries, RvqLayers, Seed,
    StepsPerEpoch, Threads, Workers, is_count,
)
from dcvc_bench.curriculum.base import CurriculumModel
from dcvc_bench.curriculum.data_spec import DataSpec, SyntheticData  # noqa: F401 (re-exported)
from dcvc_bench.curriculum.logging_spec import LoggingSpec
from dcvc_bench.curriculum.messages import one_line, rule as _rule, show as _show
from dcvc_bench.curriculum.textfile import parse_toml, read_text
from dcvc_bench.curriculum.iframe_spec import IFrameSpec, default_spec
from dcvc_bench.curriculum.iframe_training import IFrameTraining, check_curriculum as _check_iframe, fill_i_frame
from dcvc_bench.curriculum.launcher_spec import LauncherSpec, check_launcher as _check_launcher
from dcvc_bench.errors import UserError

DEFAULT_CURRICULUM: Path = Path(str(resources.files("dcvc_bench") / "curricula" / "smoke.toml"))
"""The embedded default curriculum (CPU, synthetic clips, minutes): what `run` uses without an argument."""

_Model = CurriculumModel


# ---------------------------------------------------------------- data, model, I-frame


class ModelSpec(_Model):
    preset: Literal["dcvc", "tiny"] = "dcvc"  # dcvc: the paper's widths; tiny: for CPU runs and tests
    spynet_checkpoint: Optional[PathText] = None


# [i_frame]: the I-frame spec (dcvc_bench/curriculum/iframe_spec.py), one model per codec family.


# ---------------------------------------------------------------- training options


class TrainOptions(_Model):
    """``[train]``: defaults of every step; each ``[[stages]]`` entry (and ``[gop_opt]``)
    may override any of them. Defaults are the seed guide's."""

    batch_size: Batch = 4
    crop_size: CropSize = 256
    num_workers: Workers = 4
    learning_rate: LearningRate = 1e-4
    reset_learning_rate: LearningRate = 1e-4  # forced (--force_learning_rate) at every GOP increase
    use_scheduler: bool = False  # ReduceLROnPlateau on the validation loss
    scheduler_factor: Fraction = 0.5
    scheduler_patience: Patience = 3
    scheduler_min_lr: MinLearningRate = 1e-6
    use_ema: bool = True
    ema_decay: Fraction = 0.999
    evaluate_both: bool = True  # evaluate the raw and the EMA weights
    eval_freq: Epochs = 1  # evaluate every N epochs
    eval_max_frames: FrameCount = 96
    eval_intra_period: FrameCount = 32
    skip_eval: bool = False
    grad_clip_max_norm: GradNorm = 1.0
    gradient_accumulation_steps: Accumulation = 1
    steps_per_epoch: Optional[StepsPerEpoch] = None  # cap an epoch (quick runs); absent = whole epoch
    seed: Seed = 42
    compile: bool = False


def _all_optional(base: type[_Model], name: str, doc: str) -> type[_Model]:
    """A model with ``base``'s fields, each optional and absent by default, constraints
    kept: the per-stage overrides stay in step with ``[train]`` by construction."""
    fields: dict[str, Any] = {}
    for field_name, info in base.model_fields.items():
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[field_name] = (Optional[annotation], None)
    return create_model(name, __base__=_Model, __doc__=doc, __module__=__name__, **fields)


TrainOverrides = _all_optional(TrainOptions, "TrainOverrides", "Any [train] option, set for one stage only.")


class StageSpec(TrainOverrides):  # type: ignore[misc,valid-type]
    """One ``[[stages]]`` entry: its GOP sequence, epochs per GOP, and option overrides."""

    stage: Literal[1, 2, 3, 4]
    gops: Annotated[list[Gop], Field(min_length=1)]
    epochs: Union[int, list[int]]  # epochs of EACH step (a number for all GOPs, or one per GOP)

    @field_validator("stage", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # Literal[1] would accept true (true == 1 in Python)
            raise ValueError(f"must be 1, 2, 3 or 4, got {_show(value)}")
        return value

    @field_validator("gops")
    @classmethod
    def _increasing(cls, gops: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(gops, gops[1:])):
            raise ValueError(f"must be strictly increasing, got {gops}")
        return gops

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs_shape(cls, value: Any) -> Any:
        if is_count(value, MAX_EPOCHS) or (isinstance(value, list) and value
                                           and all(is_count(v, MAX_EPOCHS) for v in value)):
            return value
        raise ValueError(f"must be a whole number 1..{MAX_EPOCHS} or a list of them (one per GOP), "
                         f"got {_show(value)}")

    @model_validator(mode="after")
    def _one_epoch_count_per_gop(self) -> StageSpec:
        if isinstance(self.epochs, list) and len(self.epochs) != len(self.gops):
            raise _rule(f"has {len(self.epochs)} entries but gops has {len(self.gops)}; "
                        "give one per GOP or a single number", "epochs")
        return self

    def epochs_per_gop(self) -> list[int]:
        return list(self.epochs) if isinstance(self.epochs, list) else [self.epochs] * len(self.gops)

    def overrides(self) -> dict[str, Any]:
        return _overrides(self)


class GopOptSpec(TrainOverrides):  # type: ignore[misc,valid-type]
    """``[gop_opt]``: the optional stage-4 GOP-level optimisation step (``--stage4_gop_opt``),
    run after stage 4's last GOP with stage 4's options plus these overrides."""

    enabled: bool = True
    gop: Optional[Gop] = None  # default: stage 4's last GOP
    epochs: Epochs

    def overrides(self) -> dict[str, Any]:
        return _overrides(self)


def _overrides(spec: BaseModel) -> dict[str, Any]:
    return {k: v for k in TrainOptions.model_fields if (v := getattr(spec, k)) is not None}


# ---------------------------------------------------------------- tracks, accelerate, failure


class Track(_Model):
    """One rate point. Tracks train one after another, each in its own checkpoint folder."""

    name: Optional[Name] = None  # default f"l{int(lambda)}", e.g. "l2048"
    lambda_value: Lambda = Field(alias="lambda")
    quality_index: Annotated[int, Field(ge=1, le=4)]
    i_frame_layers: Optional[RvqLayers] = None  # RVQ depth of this track's I-frames (default: [i_frame].layers)

    @model_validator(mode="after")
    def _default_name(self) -> Track:
        if self.name is None:
            self.name = f"l{int(self.lambda_value)}"
        return self


class AccelerateSpec(_Model):
    num_processes: Processes = 1
    gpu_ids: Optional[GpuIds] = None
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # passed to accelerate AND the trainer
    cpu_threads_per_process: Optional[Threads] = None  # default: CPU count // num_processes
    device: Literal["auto", "cpu"] = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> AccelerateSpec:
        if self.device == "cpu":
            if self.gpu_ids is not None:
                raise _rule('not allowed with device = "cpu"', "gpu_ids")
            # num_processes > 1 on the CPU: DDP over gloo (curriculum/command.py launches it)
            if self.mixed_precision == "fp16":
                raise _rule('"fp16" needs a GPU; use "bf16" or "no" with device = "cpu"', "mixed_precision")
        if self.gpu_ids is not None:
            if len(set(self.gpu_ids)) != len(self.gpu_ids):
                raise _rule(f"must not repeat an id, got {self.gpu_ids}", "gpu_ids")
            if len(self.gpu_ids) < self.num_processes:
                raise _rule(f"needs at least num_processes ({self.num_processes}) ids, got {self.gpu_ids}", "gpu_ids")
        return self


class FailurePolicy(_Model):
    retries: Retries = 2  # a crashed step is retried from its latest checkpoint this often
    divergence_retries: Retries = 2  # a diverged step is rolled back this often ...
    divergence_lr_factor: Fraction = 0.5  # ... with its LR multiplied by this each time


# ---------------------------------------------------------------- the curriculum


class Curriculum(_Model):
    """A whole training protocol. ``expand()`` turns it into the ordered steps."""

    name: Name
    output_dir: OutputDir = "runs"
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    iframe_training: Optional[IFrameTraining] = None  # before i_frame: its errors come first
    i_frame: IFrameSpec = Field(default_factory=default_spec)
    train: TrainOptions = Field(default_factory=TrainOptions)
    tracks: Annotated[list[Track], Field(min_length=1, max_length=MAX_TRACKS)]
    stages: Annotated[list[StageSpec], Field(min_length=1)]
    gop_opt: Optional[GopOptSpec] = None
    accelerate: AccelerateSpec = Field(default_factory=AccelerateSpec)
    failure: FailurePolicy = Field(default_factory=FailurePolicy)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)  # [logging] trackers
    launcher: LauncherSpec = Field(default_factory=LauncherSpec)  # local subprocesses or Slurm jobs

    _source_text: str = PrivateAttr("")
    _source: str = PrivateAttr("<string>")

    @property
    def source_text(self) -> str:
        """The TOML exactly as loaded: the run folder keeps it as its frozen copy."""
        return self._source_text

    @property
    def source(self) -> str:
        """Where it was loaded from (the file as given): every error message starts with it."""
        return self._source

    @property
    def run_dir(self) -> Path:
        """``<output_dir>/<name>``; a relative path is relative to the current directory."""
        return Path(self.output_dir) / self.name

    @property
    def gop_opt_step(self) -> Optional[GopOptSpec]:
        """The GOP-optimisation table when it adds a step (present and enabled)."""
        return self.gop_opt if self.gop_opt is not None and self.gop_opt.enabled else None

    def stage_options(self, spec: StageSpec) -> TrainOptions:
        """``[train]`` with the stage's overrides applied."""
        return self.train.model_copy(update=spec.overrides())

    def gop_opt_options(self) -> TrainOptions:
        """Stage 4's options with ``[gop_opt]``'s overrides applied (stage 4 must exist)."""
        assert self.gop_opt is not None
        stage4 = next(s for s in self.stages if s.stage == 4)
        return self.stage_options(stage4).model_copy(update=self.gop_opt.overrides())

    @property
    def trains_i_frame(self) -> bool:
        """The P-frame steps use the codec that ``[iframe_training]`` trains."""
        return self.iframe_training is not None

    @model_validator(mode="before")
    @classmethod
    def _trained_i_frame(cls, data: Any) -> Any:
        return fill_i_frame(data)

    @model_validator(mode="after")
    def _cross_checks(self) -> Curriculum:
        self._check_tracks_unique()
        self._check_stage_order()
        self._check_gop_opt()
        self._check_synthetic_fits()
        _check_iframe(self)
        _check_launcher(self)
        return self

    def _check_tracks_unique(self) -> None:
        for key, attr in (("name", "name"), ("lambda", "lambda_value")):
            seen: dict[object, int] = {}
            for i, track in enumerate(self.tracks):
                value = getattr(track, attr)
                if value in seen:
                    raise _rule(f"must be unique, {_show(value)} is also used by tracks[{seen[value]}]", "tracks", i, key)
                seen[value] = i

    def _check_stage_order(self) -> None:
        numbers = [s.stage for s in self.stages]
        for i in range(1, len(numbers)):
            if numbers[i] <= numbers[i - 1]:
                raise _rule(f"stages must be listed in increasing order without duplicates, got {numbers}",
                            "stages", i, "stage")

    def _check_gop_opt(self) -> None:
        if self.gop_opt_step is None:
            return
        stage4 = [s for s in self.stages if s.stage == 4]
        if not stage4:
            raise _rule("needs stage 4 in [[stages]] (it fine-tunes stage 4's last GOP)", "gop_opt")
        last = stage4[0].gops[-1]
        if self.gop_opt_step.gop is not None and self.gop_opt_step.gop < last:
            raise _rule(f"must be >= stage 4's last GOP ({last}), got {self.gop_opt_step.gop}", "gop_opt", "gop")

    def _check_synthetic_fits(self) -> None:
        """Catch at load time what would otherwise fail hours later inside a step."""
        synth = self.data.synthetic
        if synth is None:
            return
        gops = [g for s in self.stages for g in s.gops]
        if self.gop_opt_step is not None and self.gop_opt_step.gop is not None:
            gops.append(self.gop_opt_step.gop)
        if synth.frames < max(gops):
            raise _rule(f"must be >= the largest GOP ({max(gops)}), got {synth.frames}", "data", "synthetic", "frames")
        options: list[tuple[tuple[str | int, ...], TrainOptions]] = [(("train",), self.train)]
        options += [(("stages", i), self.stage_options(s)) for i, s in enumerate(self.stages)]
        if self.gop_opt_step is not None:
            options.append((("gop_opt",), self.gop_opt_options()))
        for where, opts in options:
            if opts.crop_size > min(synth.width, synth.height):
                raise _rule(f"must be <= the synthetic clips' size {synth.width}x{synth.height}, got {opts.crop_size}",
                            *where, "crop_size")


# ---------------------------------------------------------------- loading and errors


def load_curriculum(path: str | Path | None) -> Curriculum:
    """Read and validate a curriculum file; ``None`` loads the embedded default."""
    file = DEFAULT_CURRICULUM if path is None else Path(path)
    return parse_curriculum(read_text(file), source=str(file))


def parse_curriculum(text: str, source: str = "<string>") -> Curriculum:
    """Validate curriculum TOML text; ``source`` prefixes every error message."""
    data = parse_toml(text, source)
    try:
        curriculum = Curriculum.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{source}: {one_line(exc, data, Curriculum)}") from None
    curriculum._source_text = text
    curriculum._source = source
    return curriculum
