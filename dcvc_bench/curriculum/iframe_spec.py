"""The typed spec of an I-frame codec: one pydantic model per family, told apart by ``type``.

It is *the* representation of an I-frame codec everywhere (shared/DESIGN.md, "one typed
spec per I-frame codec family"): the curriculum's ``[i_frame]`` table, the trainer flags
(:meth:`~_Spec.to_flags` / :func:`spec_from_flags`), ``checkpoint["i_frame"]``
(:meth:`~_Spec.to_record` / :func:`spec_from_record`), the bitstream identity, the options
of `dcvc-bench eval-iframe` (:func:`spec_from_options`) and the benches. Each family owns
its settings, its flags and its defaults, so ``--i_frame_type opencv`` alone means JPEG at
quality 90. Torch-free: the control plane imports it.

Which families this build can *run* is the registry's business
(``dcvc_bench.models.iframe.FAMILIES``); a spec for a family that is not registered parses
here and is refused there, in one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Callable, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator

from dcvc_bench.curriculum.bounds import PathText, RvqLayers
from dcvc_bench.curriculum.messages import message
from dcvc_bench.curriculum.zoo import check_zoo_model, check_zoo_quality
from dcvc_bench.errors import UserError

Text = Annotated[str, Field(min_length=1)]
TYPE_FLAG = "i_frame_type"


class _Spec(BaseModel):
    """What every family's spec has. Class tables (not fields):

    - ``FLAGS``: field -> trainer flag (without ``--``); the type is ``--i_frame_type``.
    - ``OPTIONS``: `eval-iframe` option (``model``, ``quality``, ``pretrained``,
      ``weights``) -> field; ``quality`` is the field a ``--quality 30,90`` sweep varies.
      Any other field is reachable there as ``--set FIELD=VALUE``.
    """

    # strict: TOML and checkpoint records already have types; "90" for an int is a mistake.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    type: str
    FLAGS: ClassVar[dict[str, str]] = {}
    OPTIONS: ClassVar[dict[str, str]] = {}
    FILES: ClassVar[tuple[str, ...]] = ()  # fields naming files the steps read (checked before `run`)

    @property
    def label(self) -> str:
        """A short name of codec and settings (an RD point's id), e.g. ``opencv-jpeg-q90``."""
        return self.type

    @property
    def curve(self) -> str:
        """The label without the setting a sweep varies: the RD curve the point is on."""
        return self.type

    def to_record(self) -> dict[str, Any]:
        """A plain dict (str/int/bool/None only) for ``checkpoint["i_frame"]`` and sidecars."""
        return self.model_dump()

    def to_flags(self) -> dict[str, Any]:
        """``{flag name: value}`` for the trainer (``None`` left out), type first."""
        flags: dict[str, Any] = {TYPE_FLAG: self.type}
        for name, flag in self.FLAGS.items():
            if getattr(self, name) is not None:
                flags[flag] = getattr(self, name)
        return flags

    def hashed_flags(self) -> dict[str, Any]:
        """The flags as a step's config hash sees them: :meth:`to_flags`, except where a
        family's flags were renamed, so the finished steps of older runs stay finished."""
        return self.to_flags()

    def with_settings(self, **changes: Any) -> IFrameSpec:
        """The same spec with some fields changed, validated (one-line UserError)."""
        return _validate(type(self), {**self.model_dump(), **changes}, _field_namer("i_frame."))

    @classmethod
    def upgrade_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint record written before specs existed -> this family's fields."""
        return record


class CompressAISpec(_Spec):
    """A CompressAI zoo architecture; weights from ``checkpoint`` (a local state dict), else
    the zoo (torch hub cache, never downloaded) when ``pretrained``, else random."""

    type: Literal["compressai"] = "compressai"
    model_name: Text = "cheng2020-anchor"  # a CompressAI zoo name
    quality: Annotated[int, Field(ge=1, le=8)] = 6  # zoo quality index (1..6 for cheng2020-*)
    pretrained: bool = True
    checkpoint: Optional[PathText] = None

    @field_validator("model_name")
    @classmethod
    def _in_zoo(cls, name: str) -> str:
        check_zoo_model(name)
        return name

    @field_validator("quality")
    @classmethod
    def _quality_in_zoo(cls, quality: int, info: ValidationInfo) -> int:
        name = info.data.get("model_name")
        if isinstance(name, str):
            check_zoo_quality(name, quality)
        return quality

    FILES: ClassVar[tuple[str, ...]] = ("checkpoint",)
    FLAGS: ClassVar[dict[str, str]] = {"model_name": "i_frame_model_name", "quality": "i_frame_quality",
                                       "pretrained": "i_frame_pretrained", "checkpoint": "i_frame_checkpoint"}
    OPTIONS: ClassVar[dict[str, str]] = {"model": "model_name", "quality": "quality", "pretrained": "pretrained",
                                         "weights": "checkpoint"}

    @property
    def label(self) -> str:
        return f"{self.type}-{self.model_name}-q{self.quality}"

    @property
    def curve(self) -> str:
        return f"{self.type}-{self.model_name}"


class OpenCVSpec(_Spec):
    """JPEG or WebP through OpenCV: no weights."""

    type: Literal["opencv"] = "opencv"
    codec: Literal["jpeg", "webp"] = "jpeg"
    quality: Annotated[int, Field(ge=1, le=100)] = 90

    FLAGS: ClassVar[dict[str, str]] = {"codec": "i_frame_codec", "quality": "i_frame_quality"}
    OPTIONS: ClassVar[dict[str, str]] = {"model": "codec", "quality": "quality"}

    @property
    def label(self) -> str:
        return f"{self.type}-{self.codec}-q{self.quality}"

    @property
    def curve(self) -> str:
        return f"{self.type}-{self.codec}"

    def hashed_flags(self) -> dict[str, Any]:
        # Before specs, OpenCV's format went to the trainer as --i_frame_model_name: config
        # hashes of runs started then were computed on that form. Same settings, same hash.
        return {TYPE_FLAG: self.type, "i_frame_model_name": self.codec, "i_frame_quality": self.quality}

    @classmethod
    def upgrade_record(cls, record: dict[str, Any]) -> dict[str, Any]:
        # Before specs, the record had CompressAI's keys for every type and OpenCV's format
        # under "model_name"; "pretrained" and "checkpoint" meant nothing for it.
        if "codec" in record or "model_name" not in record:
            return record
        return {"type": record["type"], "codec": record["model_name"], "quality": record.get("quality", 90)}


class VQGANSpec(_Spec):
    """A VQGAN: ``config`` is its JSON architecture file, ``checkpoint`` its weights."""

    type: Literal["vqgan"] = "vqgan"
    config: PathText
    checkpoint: PathText

    FILES: ClassVar[tuple[str, ...]] = ("config", "checkpoint")
    FLAGS: ClassVar[dict[str, str]] = {"config": "vqgan_config", "checkpoint": "vqgan_checkpoint"}
    OPTIONS: ClassVar[dict[str, str]] = {"weights": "checkpoint"}


class RVQSpec(_Spec):
    """A VQGAN with residual vector quantisation; ``layers`` is how many residual layers
    are used at inference (None = all that were trained): the rate knob."""

    type: Literal["rvq"] = "rvq"
    config: PathText
    checkpoint: PathText
    layers: Optional[RvqLayers] = None

    FILES: ClassVar[tuple[str, ...]] = ("config", "checkpoint")
    FLAGS: ClassVar[dict[str, str]] = {"config": "vqgan_config", "checkpoint": "vqgan_checkpoint",
                                       "layers": "rvq_layers"}
    OPTIONS: ClassVar[dict[str, str]] = {"weights": "checkpoint", "quality": "layers"}

    @property
    def label(self) -> str:
        return f"{self.type}-l{self.layers}" if self.layers is not None else self.type


IFrameSpec = Annotated[Union[CompressAISpec, OpenCVSpec, VQGANSpec, RVQSpec], Field(discriminator="type")]
SPECS: dict[str, type[_Spec]] = {
    cls.model_fields["type"].default: cls for cls in (CompressAISpec, OpenCVSpec, VQGANSpec, RVQSpec)}
I_FRAME_TYPES: tuple[str, ...] = tuple(SPECS)
#: Each family's type name, for code that must tell families apart (registry look-ups).
COMPRESSAI_TYPE, OPENCV_TYPE, VQGAN_TYPE, RVQ_TYPE = (cls.model_fields["type"].default for cls in (
    CompressAISpec, OpenCVSpec, VQGANSpec, RVQSpec))
#: The vector-quantised families: their rate is a count of indices, not a likelihood.
VQ_TYPES: tuple[str, ...] = (VQGAN_TYPE, RVQ_TYPE)
#: The families the I-frame training step trains (``python -m dcvc_bench.train.iframe``).
TRAINABLE_TYPES: tuple[str, ...] = (VQGAN_TYPE, RVQ_TYPE, COMPRESSAI_TYPE)
"""Every I-frame type a spec exists for (what the registry may build), in one tuple."""
I_FRAME_FLAGS: tuple[str, ...] = tuple(dict.fromkeys(f for cls in SPECS.values() for f in cls.FLAGS.values()))
"""Every family's trainer flags except ``--i_frame_type``."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(IFrameSpec)


def default_spec() -> IFrameSpec:
    """The I-frame codec when none is named: the seed protocol's cheng2020-anchor q6, zoo weights."""
    return CompressAISpec()


def weightless_spec() -> IFrameSpec:
    """The I-frame codec that needs no weights (benches, offline runs): JPEG q90."""
    return OpenCVSpec()


def flag_help(flag: str, what: str) -> str:
    """``--help`` text of an I-frame trainer flag: what it is, then each family that has it
    with its default, e.g. ``quality (compressai: default 6; opencv: default 90)``."""
    parts = []
    for type_, family in SPECS.items():
        field = next((name for name, f in family.FLAGS.items() if f == flag), None)
        if field is None:
            continue
        info = family.model_fields[field]
        default = "required" if info.is_required() else "default " + (
            "off" if info.default is False else "on" if info.default is True else
            "none" if info.default is None else str(info.default))
        parts.append(f"{type_}: {default}")
    return f"{what} ({'; '.join(parts)})"


# ---------------------------------------------------------------- parsing


def parse_iframe_spec(data: Mapping[str, Any], where: str = "i_frame") -> IFrameSpec:
    """A mapping with a ``type`` -> its family's spec; errors are one line ``where.key: rule``."""
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: must be a table with a 'type', got {type(data).__name__}")
    return _validate(_ADAPTER, dict(data), _field_namer(f"{where}."))


def spec_from_record(record: Any) -> IFrameSpec:
    """``checkpoint["i_frame"]`` -> the spec, including records written before specs existed
    (keys ``type, model_name, quality, pretrained, checkpoint`` for every type)."""
    if not isinstance(record, Mapping) or not isinstance(record.get("type"), str):
        raise UserError("no I-frame record (an 'i_frame' table with a 'type')")
    data = dict(record)
    family = SPECS.get(data["type"])
    return parse_iframe_spec(family.upgrade_record(data) if family else data, where="i_frame")


def spec_from_flags(flags: Any) -> IFrameSpec:
    """Trainer flags (an argparse namespace or a mapping; ``None`` = not given) -> the spec of
    ``--i_frame_type``, each family filling its own defaults. A flag of another family is
    refused, never silently ignored."""
    values = dict(flags) if isinstance(flags, Mapping) else vars(flags)
    type_ = values.get(TYPE_FLAG) or default_spec().type
    family = _family(type_, f"--{TYPE_FLAG}")
    by_flag = {flag: name for name, flag in family.FLAGS.items()}
    data: dict[str, Any] = {"type": type_}
    for flag in I_FRAME_FLAGS:
        if values.get(flag) is None:
            continue
        if flag not in by_flag:
            raise UserError(f"--{flag} does not apply to --{TYPE_FLAG} {type_}; its flags: "
                            f"{_listing('--' + f for f in by_flag)}")
        data[by_flag[flag]] = values[flag]

    def name(field: str) -> str:
        flag = family.FLAGS.get(field)
        return f"--{flag}" if flag else field

    return _validate(family, data, name, missing=f"required with --{TYPE_FLAG} {type_}")


def spec_from_options(type_: str, options: Mapping[str, Any], settings: Mapping[str, str] | None = None) -> IFrameSpec:
    """`eval-iframe`: ``--type`` with ``--model/--quality/--pretrained/--weights`` (each family
    maps them to its fields, see ``OPTIONS``; ``None`` = not given, ``False`` = an off switch)
    and ``--set FIELD=VALUE`` for any field. Values may be text ("4", "true")."""
    family = _family(type_, "--type")
    data: dict[str, Any] = {"type": type_}
    named: dict[str, str] = {}
    for option, value in options.items():
        if value is None:
            continue
        field = family.OPTIONS.get(option)
        if field is None:
            if value is False:
                continue
            raise UserError(f"--{option} does not apply to --type {type_}; its options: "
                            f"{_listing('--' + o for o in family.OPTIONS)} and --set FIELD=VALUE")
        data[field], named[field] = value, f"--{option}"
    fields = [f for f in family.model_fields if f != "type"]
    for key, value in (settings or {}).items():
        if key not in fields:
            raise UserError(f"--set {key}: not a setting of --type {type_}; its settings: {_listing(fields)}")
        data[key], named[key] = value, f"--set {key}"
    return _validate(family, data, lambda f: named.get(f, f"--set {f}"), strict=False,
                     missing=f"required with --type {type_} (give it with --set)")


# ---------------------------------------------------------------- helpers


def _family(type_: Any, where: str) -> type[_Spec]:
    family = SPECS.get(type_) if isinstance(type_, str) else None
    if family is None:
        raise UserError(f"{where} {type_!r}: unknown I-frame type; use one of {_listing(I_FRAME_TYPES)}")
    return family


def _listing(items: Any) -> str:
    return ", ".join(items) or "none"


def _field_namer(prefix: str) -> Callable[[str], str]:
    return lambda field: f"{prefix}{field}"


def _validate(model: Any, data: dict[str, Any], name: Callable[[str], str], *, strict: bool | None = None,
              missing: str = "missing required key") -> Any:
    """Validate ``data`` with a spec class or the union adapter; the first error becomes one
    line naming the key (through ``name``) and the rule, as the curriculum's errors do."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data, strict=strict)
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise UserError(_one_line(exc, data, name, missing)) from None


def _one_line(exc: ValidationError, data: dict[str, Any], name: Callable[[str], str], missing: str) -> str:

    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    family = SPECS.get(data.get("type"))  # type: ignore[arg-type]
    loc = [part for part in error["loc"] if part != data.get("type")]  # the union's member tag is not a key
    field = str(loc[-1]) if loc else "type"
    if error["type"] == "missing":
        text = missing
    else:
        text = message(error, family, field)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{name(field)}: {text}{more}"


__all__ = [
    "I_FRAME_FLAGS",
    "I_FRAME_TYPES",
    "COMPRESSAI_TYPE",
    "OPENCV_TYPE",
    "RVQ_TYPE",
    "TRAINABLE_TYPES",
    "VQGAN_TYPE",
    "VQ_TYPES",
    "SPECS",
    "TYPE_FLAG",
    "CompressAISpec",
    "IFrameSpec",
    "OpenCVSpec",
    "RVQSpec",
    "VQGANSpec",
    "default_spec",
    "flag_help",
    "parse_iframe_spec",
    "spec_from_flags",
    "spec_from_options",
    "spec_from_record",
    "weightless_spec",
]
