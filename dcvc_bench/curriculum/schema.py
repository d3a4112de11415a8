"""The curriculum schema: TOML text -> a validated :class:`Curriculum`. Pure Python.

The typed models (pydantic v2, strict, unknown keys forbidden) are the documentation of
the format (see the README ("The curriculum")). Every problem a user can make becomes ONE line
naming the file, the key path and the rule, raised as :class:`~dcvc_bench.errors.UserError`
(the CLI prints it and exits 2)::

    curricula/x.toml: stages[1].gops: must be strictly increasing, got [2, 5, 3]
    curricula/x.toml: tracks[0].lamda: unknown key; did you mean 'lambda'?

pydantic's own multi-line dump is never shown: :func:`_one_line` converts its first error
(``loc`` tuple -> ``stages[1].gops``) and counts the rest.
"""

from __future__ import annotations

import difflib
import re
import sys
import typing
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dcvc_bench.curriculum.iframe_spec import IFrameSpec, default_spec
from dcvc_bench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_CURRICULUM: Path = Path(str(resources.files("dcvc_bench") / "curricula" / "smoke.toml"))
"""The embedded default curriculum (CPU, synthetic clips, minutes): what `run` uses without an argument."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RULE_ERROR = "curriculum_rule"


def _rule(message: str, *subloc: str | int) -> PydanticCustomError:
    """A cross-field rule violation. ``subloc`` points below the validated model, so the
    message names the offending key (``stages[0].epochs``), not just the table."""
    return PydanticCustomError(_RULE_ERROR, "{rule}", {"rule": message, "subloc": subloc})


def _check_name(value: str) -> str:
    """Names become folder names (run folder, checkpoint folder, step ids)."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"must start with a letter or digit and contain only letters, digits, '_', '.', '-', got {value!r}")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
PathText = Annotated[str, Field(min_length=1)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
ClipSide = Annotated[int, Field(ge=16, multiple_of=2)]  # MP4 stores chroma at half size
Gop = Annotated[int, Field(ge=2)]  # an I-frame and at least one P-frame


class _Model(BaseModel):
    # strict: TOML already has types; "1e-4" (a string) or true (for an int) is a mistake.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------- data, model, I-frame


class SyntheticData(_Model):
    """Deterministic clips that the runner writes into ``<run_dir>/data/{train,val}`` when
    absent, so a curriculum can run with no dataset at all. ``val_*`` default to the
    training clips' values (``val_seed`` to ``seed + 1``, so validation clips differ)."""

    videos: PositiveInt = 4
    frames: Gop = 30
    width: ClipSide = 256
    height: ClipSide = 256
    seed: NonNegativeInt = 0
    val_videos: PositiveInt = 1
    val_frames: Gop
    val_width: ClipSide
    val_height: ClipSide
    val_seed: NonNegativeInt

    @model_validator(mode="before")
    @classmethod
    def _val_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        out = dict(data)
        for val_key, train_key in (("val_frames", "frames"), ("val_width", "width"), ("val_height", "height")):
            out.setdefault(val_key, out.get(train_key, fields[train_key].default))
        seed = out.get("seed", fields["seed"].default)
        if isinstance(seed, int) and not isinstance(seed, bool):
            out.setdefault("val_seed", seed + 1)
        return out


class DataSpec(_Model):
    """Folders of MP4 clips (``train_dir`` + ``val_dir``) or ``[data.synthetic]``."""

    train_dir: Optional[PathText] = None
    val_dir: Optional[PathText] = None
    synthetic: Optional[SyntheticData] = None

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.synthetic is not None:
            for key in ("train_dir", "val_dir"):
                if getattr(self, key) is not None:
                    raise _rule("cannot be combined with [data.synthetic]; use one or the other", key)
        elif self.train_dir is None:
            raise _rule("missing; set train_dir and val_dir (folders of .mp4 clips) or add [data.synthetic]", "train_dir")
        elif self.val_dir is None:
            raise _rule("missing required key (the folder of validation .mp4 clips)", "val_dir")
        return self


class ModelSpec(_Model):
    preset: Literal["dcvc", "tiny"] = "dcvc"  # dcvc: the paper's widths; tiny: for CPU runs and tests
    spynet_checkpoint: Optional[PathText] = None


# [i_frame]: the I-frame spec (dcvc_bench/curriculum/iframe_spec.py), one model per codec family.


# ---------------------------------------------------------------- training options


class TrainOptions(_Model):
    """``[train]``: defaults of every step; each ``[[stages]]`` entry (and ``[gop_opt]``)
    may override any of them. Defaults are the seed guide's."""

    batch_size: PositiveInt = 4
    crop_size: Annotated[int, Field(ge=16)] = 256
    num_workers: NonNegativeInt = 4
    learning_rate: PositiveFloat = 1e-4
    reset_learning_rate: PositiveFloat = 1e-4  # forced (--force_learning_rate) at every GOP increase
    use_scheduler: bool = False  # ReduceLROnPlateau on the validation loss
    scheduler_factor: Fraction = 0.5
    scheduler_patience: NonNegativeInt = 3
    scheduler_min_lr: Annotated[float, Field(ge=0)] = 1e-6
    use_ema: bool = True
    ema_decay: Fraction = 0.999
    evaluate_both: bool = True  # evaluate the raw and the EMA weights
    eval_freq: PositiveInt = 1  # evaluate every N epochs
    eval_max_frames: PositiveInt = 96
    eval_intra_period: PositiveInt = 32
    skip_eval: bool = False
    grad_clip_max_norm: PositiveFloat = 1.0
    gradient_accumulation_steps: PositiveInt = 1
    steps_per_epoch: Optional[PositiveInt] = None  # cap an epoch (quick runs); absent = whole epoch
    seed: NonNegativeInt = 42
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


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


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
        if _is_count(value) or (isinstance(value, list) and value and all(_is_count(v) for v in value)):
            return value
        raise ValueError(f"must be a whole number >= 1 or a list of them (one per GOP), got {_show(value)}")

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
    epochs: PositiveInt

    def overrides(self) -> dict[str, Any]:
        return _overrides(self)


def _overrides(spec: BaseModel) -> dict[str, Any]:
    return {k: v for k in TrainOptions.model_fields if (v := getattr(spec, k)) is not None}


# ---------------------------------------------------------------- tracks, accelerate, failure


class Track(_Model):
    """One rate point. Tracks train one after another, each in its own checkpoint folder."""

    name: Optional[Name] = None  # default f"l{int(lambda)}", e.g. "l2048"
    lambda_value: PositiveFloat = Field(alias="lambda")
    quality_index: Annotated[int, Field(ge=1, le=4)]

    @model_validator(mode="after")
    def _default_name(self) -> Track:
        if self.name is None:
            self.name = f"l{int(self.lambda_value)}"
        return self


class AccelerateSpec(_Model):
    num_processes: PositiveInt = 1
    gpu_ids: Optional[Annotated[list[NonNegativeInt], Field(min_length=1)]] = None
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # passed to accelerate AND the trainer
    cpu_threads_per_process: Optional[PositiveInt] = None  # default: CPU count // num_processes
    device: Literal["auto", "cpu"] = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> AccelerateSpec:
        if self.device == "cpu":
            if self.gpu_ids is not None:
                raise _rule('not allowed with device = "cpu"', "gpu_ids")
            if self.num_processes != 1:
                raise _rule(f'must be 1 with device = "cpu", got {self.num_processes}', "num_processes")
            if self.mixed_precision == "fp16":
                raise _rule('"fp16" needs a GPU; use "bf16" or "no" with device = "cpu"', "mixed_precision")
        if self.gpu_ids is not None:
            if len(set(self.gpu_ids)) != len(self.gpu_ids):
                raise _rule(f"must not repeat an id, got {self.gpu_ids}", "gpu_ids")
            if len(self.gpu_ids) < self.num_processes:
                raise _rule(f"needs at least num_processes ({self.num_processes}) ids, got {self.gpu_ids}", "gpu_ids")
        return self


class FailurePolicy(_Model):
    retries: NonNegativeInt = 2  # a crashed step is retried from its latest checkpoint this often
    divergence_retries: NonNegativeInt = 2  # a diverged step is rolled back this often ...
    divergence_lr_factor: Fraction = 0.5  # ... with its LR multiplied by this each time


# ---------------------------------------------------------------- the curriculum


class Curriculum(_Model):
    """A whole training protocol. ``expand()`` turns it into the ordered steps."""

    name: Name
    output_dir: PathText = "runs"
    data: DataSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    i_frame: IFrameSpec = Field(default_factory=default_spec)
    train: TrainOptions = Field(default_factory=TrainOptions)
    tracks: Annotated[list[Track], Field(min_length=1)]
    stages: Annotated[list[StageSpec], Field(min_length=1)]
    gop_opt: Optional[GopOptSpec] = None
    accelerate: AccelerateSpec = Field(default_factory=AccelerateSpec)
    failure: FailurePolicy = Field(default_factory=FailurePolicy)

    _source_text: str = PrivateAttr("")

    @property
    def source_text(self) -> str:
        """The TOML exactly as loaded: the run folder keeps it as its frozen copy."""
        return self._source_text

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

    @model_validator(mode="after")
    def _cross_checks(self) -> Curriculum:
        self._check_tracks_unique()
        self._check_stage_order()
        self._check_gop_opt()
        self._check_synthetic_fits()
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
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{file}: no such curriculum file") from None
    except IsADirectoryError:
        raise UserError(f"{file}: is a folder; give a curriculum .toml file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text (byte {exc.start}); a curriculum is a TOML text file") from None
    except OSError as exc:
        raise UserError(f"{file}: cannot read: {exc.strerror or exc}") from None
    return parse_curriculum(text, source=str(file))


def parse_curriculum(text: str, source: str = "<string>") -> Curriculum:
    """Validate curriculum TOML text; ``source`` prefixes every error message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: invalid TOML: {exc}") from None
    try:
        curriculum = Curriculum.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{source}: {_one_line(exc, data)}") from None
    curriculum._source_text = text
    return curriculum


def _one_line(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first error as ``key.path: rule``, plus how many more there are. Unknown keys
    come first: a misspelt key also makes its correct spelling look "missing"."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return _describe(errors[0], data) + more


def _describe(error: Any, data: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    loc = [*error["loc"], *ctx.get("subloc", ())]
    if error["type"].startswith("union_tag"):
        loc.append("type")
    path, owner = _walk(loc, data)
    return f"{_format_path(path) or '(top level)'}: {_message(error, owner, path[-1] if path else None)}"


def _walk(loc: list[Any], data: Any) -> tuple[list[str | int], Optional[type[BaseModel]]]:
    """Follow ``loc`` through the TOML data and the models in step. Parts that are not in
    the data (pydantic's union member names and tags) are dropped; the last part is kept
    (a missing key is not in the data either). Returns the clean path and the model that
    owns its last key (for did-you-mean)."""
    path: list[str | int] = []
    node, model, owner = data, Curriculum, Curriculum
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and (last or (isinstance(node, dict) and part in node)):
            path.append(part)
            owner = model
            node = node.get(part) if isinstance(node, dict) else None
            model = _submodel(model, part, node)
    return path, owner


def _submodel(model: Optional[type[BaseModel]], key: str, value: Any) -> Optional[type[BaseModel]]:
    """The model class validating ``model.key`` (choosing a tagged-union member by ``type``)."""
    if model is None:
        return None
    field = next((f for n, f in model.model_fields.items() if (f.alias or n) == key), None)
    if field is None:
        return None
    members = _models_in(field.annotation)
    if len(members) > 1 and isinstance(value, dict):
        members = [m for m in members if value.get("type") in typing.get_args(m.model_fields["type"].annotation)]
    return members[0] if len(members) == 1 else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _format_path(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_TYPE_NAMES = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false",
               "string_type": "a string", "list_type": "an array", "dict_type": "a table", "model_type": "a table",
               "model_attributes_type": "a table", "finite_number": "a finite number"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt"), "multiple_of": ("a multiple of", "multiple_of")}


def _message(error: Any, owner: Optional[type[BaseModel]], key: str | int | None) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        allowed = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        if close:
            return f"unknown key; did you mean {close[0]!r}?"
        return "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "missing required key"
    if kind == _RULE_ERROR:
        return str(ctx["rule"])
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "literal_error":
        return f"must be {ctx['expected']}, got {_show(value)}"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx['expected_tags']}, got {_show(ctx['tag'])}"
    if kind == "union_tag_not_found":
        return "missing required key"
    if kind in _BOUNDS:
        words, name = _BOUNDS[kind]
        return f"must be {words} {ctx[name]}, got {_show(value)}"
    if kind == "too_short" and isinstance(value, list):
        return f"must have at least {ctx['min_length']} entr{'y' if ctx['min_length'] == 1 else 'ies'}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, got {_show(value)}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML (``true``, ``'x'``, ``[2, 5, 3]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    return repr(value)
