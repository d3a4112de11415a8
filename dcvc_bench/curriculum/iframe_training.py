"""``[iframe_training]``: the I-frame codec trained as the curriculum's first step(s). Pure Python.

One table, one family (``type``): a VQGAN, an RVQ-VQGAN or a CompressAI image model,
trained by ``python -m dcvc_bench.train.iframe`` (the flags are that recipe's, see
:meth:`_Training.step_flags`). It expands (:meth:`_Training.phases`) into I-frame steps
that run before every P-frame step, each tagged (``--step_tag``, the step id
``iframe-<tag>``, the checkpoint names ``iframe_<type>_<tag>_<kind>.pth``):

- ``vqgan`` / ``compressai``: one step, ``train``;
- ``rvq`` by ``strategy``: ``end_to_end`` is one step ``e2e`` (all layers, quantize
  dropout); ``progressive`` is one step ``p<L>`` per depth L in ``depths``, each training
  the first L layers with the layers of the step before it frozen (``--rvq_train_layers L
  --rvq_frozen_layers <previous L>``); ``progressive_then_end_to_end`` adds ``e2e`` after them.

The P-frame steps then use the codec the last I-frame step trained: :func:`trained_i_frame`
fills ``[i_frame]`` from this table (it may only say ``type`` and, for rvq, ``layers``),
with the checkpoint :data:`TRAINED` that the runner replaces by that step's archive.
Options absent here (batch_size, crop_size, learning_rate, steps_per_epoch, num_workers,
grad_clip_max_norm, seed) are ``[train]``'s; ``eval_max_frames`` (validation frames per
clip) is the recipe's unless set here (``[train]``'s is for GOPs).

A VQ ``config`` is a JSON file or the name of one shipped with dcvc-bench
(:func:`vq_config_path`; :func:`read_vq_config` reads what the control plane checks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from dcvc_bench.curriculum.base import CurriculumModel
from dcvc_bench.curriculum.bounds import (
    MAX_EPOCHS, Batch, CropSize, FrameCount, GradNorm, Iterations, Lambda, LearningRate, LossWeight,
    PathText, RvqLayers, Seed, StepsPerEpoch, Workers, is_count,
)
from dcvc_bench.curriculum.iframe_spec import COMPRESSAI_TYPE as COMPRESSAI
from dcvc_bench.curriculum.iframe_spec import RVQ_TYPE as RVQ
from dcvc_bench.curriculum.iframe_spec import VQGAN_TYPE as VQGAN
from dcvc_bench.curriculum.iframe_spec import RVQSpec
from dcvc_bench.curriculum.messages import rule as _rule, show as _show
from dcvc_bench.curriculum.zoo import check_zoo_model, check_zoo_quality
from dcvc_bench.errors import UserError

STRATEGIES = ("end_to_end", "progressive", "progressive_then_end_to_end")
#: The families that can be trained here, named by their specs (the one place types are spelt).
VQ_TYPES = (VQGAN, RVQ)
TRAINING_TYPES = (VQGAN, RVQ, COMPRESSAI)
#: ``[i_frame].checkpoint`` of a curriculum that trains its I-frame codec: the runner passes
#: the archive of the last I-frame step instead (it is never a path on disk).
TRAINED = "<trained by [iframe_training]>"
#: The VQ architectures shipped with dcvc-bench (found without importing the compute plane).
BUNDLED_CONFIGS = Path(str(resources.files("dcvc_bench") / "models" / "iframe" / "vq_configs"))
#: CompressAI's λ per zoo quality for its MSE models (loss = λ·255²·MSE + bpp): the default λ.
COMPRESSAI_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.18}
#: The options of ``[train]`` an I-frame step uses unless ``[iframe_training]`` sets them.
COMMON_OPTIONS = ("batch_size", "crop_size", "learning_rate", "steps_per_epoch", "num_workers",
                  "grad_clip_max_norm", "seed")


@dataclass(frozen=True)
class Phase:
    """One I-frame step: its tag and, for RVQ, the depth it trains and how many layers it keeps frozen."""

    tag: str
    train_layers: Optional[int] = None
    frozen_layers: Optional[int] = None


def vq_config_path(text: str) -> Path:
    """The file a VQ ``config`` names: the path as given when it is a file, else the
    shipped config of that name (``rvq_f16_8`` or ``rvq_f16_8.json``), else the path as
    given (whose absence preflight reports)."""
    path = Path(text)
    if path.is_file() or "/" in text:
        return path
    bundled = BUNDLED_CONFIGS / (text if text.endswith(".json") else f"{text}.json")
    return bundled if bundled.is_file() else path


def config_flag(text: str) -> str:
    """The trainer's ``--vqgan_config`` for a config as written: a shipped one's path, else the text."""
    path = vq_config_path(text)
    return text if path == Path(text) else str(path)


def bundled_config_names() -> list[str]:
    return sorted(p.stem for p in BUNDLED_CONFIGS.glob("*.json"))


@dataclass(frozen=True)
class VQConfigInfo:
    """What the control plane reads from a VQ config (the compute plane validates the rest)."""

    path: Path
    data: dict[str, Any]

    @property
    def family(self) -> Any:
        return self.data.get("family")

    @property
    def num_quantizers(self) -> int:
        value = self.data.get("num_quantizers", 1)
        return value if isinstance(value, int) and not isinstance(value, bool) else 1


def read_vq_config(text: str, key: str) -> VQConfigInfo:
    """Read the VQ config ``text`` names; a problem is a :class:`UserError` naming ``key``."""
    path = vq_config_path(text)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{key}: {text} is neither a file nor a config shipped with dcvc-bench "
                        f"({', '.join(bundled_config_names())}); check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{key}: cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{key}: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{key}: {path} must hold a JSON object (the codec's architecture)")
    return VQConfigInfo(path, data)


def _epochs_ok(value: Any) -> bool:
    return is_count(value, MAX_EPOCHS) or (isinstance(value, list) and bool(value)
                                           and all(is_count(v, MAX_EPOCHS) for v in value))


class _Training(CurriculumModel):
    """What every family's ``[iframe_training]`` has. ``None``: ``[train]``'s value."""

    type: str
    epochs: Union[int, list[int]]  # epochs of each I-frame step (one number, or one per step)
    batch_size: Optional[Batch] = None
    crop_size: Optional[CropSize] = None
    learning_rate: Optional[LearningRate] = None
    steps_per_epoch: Optional[StepsPerEpoch] = None
    num_workers: Optional[Workers] = None
    grad_clip_max_norm: Optional[GradNorm] = None
    seed: Optional[Seed] = None
    eval_max_frames: Optional[FrameCount] = None  # validation frames per clip; absent: the recipe's (its first)

    @model_validator(mode="before")
    @classmethod
    def _keys_of_other_families(cls, data: Any) -> Any:
        """A key of another family: say which types it is for (not just "unknown key")."""
        if isinstance(data, dict):
            own = {f.alias or name for name, f in cls.model_fields.items()}
            for key in data:
                types = _KEY_TYPES.get(key)
                if key not in own and types:
                    raise _rule(f"applies to type {' or '.join(repr(t) for t in types)} only, "
                                f"not {_show(data.get('type'))}", key)
        return data

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs_shape(cls, value: Any) -> Any:
        if _epochs_ok(value):
            return value
        raise ValueError(f"must be a whole number 1..{MAX_EPOCHS} or a list of them (one per I-frame step), "
                         f"got {_show(value)}")

    @model_validator(mode="after")
    def _consistent(self) -> _Training:
        self._check()
        phases = self.phases()
        if isinstance(self.epochs, list) and len(self.epochs) != len(phases):
            steps = ", ".join(f"iframe-{p.tag}" for p in phases)
            raise _rule(f"has {len(self.epochs)} entries but there {'is' if len(phases) == 1 else 'are'} "
                        f"{len(phases)} I-frame step{'s' * (len(phases) != 1)} ({steps}); give one per step "
                        "or a single number", "epochs")
        return self

    def _check(self) -> None:
        """Family rules between keys (raise ``_rule``)."""

    def phases(self) -> list[Phase]:
        return [Phase("train")]

    def epochs_per_step(self) -> list[int]:
        n = len(self.phases())
        return list(self.epochs) if isinstance(self.epochs, list) else [self.epochs] * n

    def option(self, name: str, train: Any) -> Any:
        """A common option: this table's value, else ``[train]``'s."""
        value = getattr(self, name)
        return getattr(train, name) if value is None else value

    def family_flags(self, phase: Phase) -> dict[str, Any]:
        return {}

    def step_flags(self, phase: Phase, epochs: int, train: Any, data_dirs: tuple[Path, Path],
                   mixed_precision: str) -> dict[str, Any]:
        """Every flag of the recipe for one step except the run-dependent ones
        (``--checkpoint_dir --events_file --resume --load_pretrained``)."""
        flags: dict[str, Any] = {
            "train_video_dir": str(data_dirs[0]), "val_video_dir": str(data_dirs[1]),
            "i_frame_type": self.type, **self.family_flags(phase), "step_tag": phase.tag, "epochs": epochs,
            **{name: self.option(name, train) for name in COMMON_OPTIONS},
            "eval_max_frames": self.eval_max_frames, "mixed_precision": mixed_precision,
        }
        return {name: value for name, value in flags.items() if value is not None}


class _VQTraining(_Training):
    config: PathText  # a JSON architecture file, or the name of a shipped one (rvq_f16_8)
    recon_loss: Literal["l1", "mse"] = "l1"
    perceptual_weight: LossWeight = 1.0
    lpips_weights: Optional[PathText] = None  # absent or missing: the perceptual term is off
    codebook_weight: LossWeight = 1.0
    disc_start: Optional[Iterations] = None  # iterations of the step before the discriminator starts
    disc_weight: LossWeight = 0.8
    disc_learning_rate: Optional[LearningRate] = None  # default: learning_rate

    def family_flags(self, phase: Phase) -> dict[str, Any]:
        return {"vqgan_config": config_flag(self.config), "recon_loss": self.recon_loss,
                "perceptual_weight": self.perceptual_weight, "lpips_weights": self.lpips_weights,
                "codebook_weight": self.codebook_weight, "disc_start": self.disc_start,
                "disc_weight": self.disc_weight, "disc_learning_rate": self.disc_learning_rate}


class VQGANTraining(_VQTraining):
    type: Literal[VQGAN] = VQGAN  # type: ignore[valid-type]


class RVQTraining(_VQTraining):
    type: Literal[RVQ] = RVQ  # type: ignore[valid-type]
    strategy: Literal["end_to_end", "progressive", "progressive_then_end_to_end"] = "end_to_end"
    depths: Optional[Annotated[list[RvqLayers], Field(min_length=1)]] = None  # progressive: layers per step

    @field_validator("depths")
    @classmethod
    def _increasing(cls, depths: Optional[list[int]]) -> Optional[list[int]]:
        if depths is not None and any(b <= a for a, b in zip(depths, depths[1:])):
            raise ValueError(f"must be strictly increasing, got {depths}")
        return depths

    def _check(self) -> None:
        if self.strategy != "end_to_end" and self.depths is None:
            raise _rule(f'missing; strategy "{self.strategy}" trains the first L layers for each L in depths, '
                        "e.g. depths = [2, 4, 6, 8]", "depths")
        if self.strategy == "end_to_end" and self.depths is not None:
            raise _rule('only with strategy "progressive" or "progressive_then_end_to_end" '
                        '("end_to_end" trains every layer at once)', "depths")

    def phases(self) -> list[Phase]:
        steps = []
        if self.depths is not None:
            steps = [Phase(f"p{depth}", depth, previous)
                     for previous, depth in zip([0, *self.depths], self.depths)]
        if self.strategy != "progressive":
            steps.append(Phase("e2e"))
        return steps

    @property
    def trained_depth(self) -> Optional[int]:
        """The depth the last step trains (None: every layer of the config)."""
        return self.depths[-1] if self.strategy == "progressive" and self.depths else None

    def family_flags(self, phase: Phase) -> dict[str, Any]:
        return {**super().family_flags(phase), "rvq_train_layers": phase.train_layers,
                "rvq_frozen_layers": phase.frozen_layers}


class CompressAITraining(_Training):
    type: Literal[COMPRESSAI] = COMPRESSAI  # type: ignore[valid-type]
    model_name: Annotated[str, Field(min_length=1)] = "bmshj2018-hyperprior"  # a CompressAI zoo architecture
    quality: Annotated[int, Field(ge=1, le=8)] = 3  # its size, as the zoo's quality index
    lambda_value: Optional[Lambda] = Field(None, alias="lambda")  # default: the zoo's λ for the quality

    @field_validator("model_name")
    @classmethod
    def _in_zoo(cls, name: str) -> str:
        check_zoo_model(name)
        return name

    def _check(self) -> None:
        try:
            check_zoo_quality(self.model_name, self.quality)
        except ValueError as exc:
            raise _rule(str(exc), "quality") from None

    @property
    def lmbda(self) -> float:
        return self.lambda_value if self.lambda_value is not None else COMPRESSAI_LAMBDAS[self.quality]

    def family_flags(self, phase: Phase) -> dict[str, Any]:
        return {"i_frame_model_name": self.model_name, "i_frame_quality": self.quality, "lambda_value": self.lmbda}


IFrameTraining = Annotated[Union[VQGANTraining, RVQTraining, CompressAITraining], Field(discriminator="type")]
_TRAINING: TypeAdapter[Any] = TypeAdapter(IFrameTraining)

#: key -> the training types it belongs to (for "applies to type ... only").
_KEY_TYPES: dict[str, tuple[str, ...]] = {}
for _cls in (VQGANTraining, RVQTraining, CompressAITraining):
    for _name, _field in _cls.model_fields.items():
        if _name not in _Training.model_fields:
            _KEY_TYPES.setdefault(_field.alias or _name, ())
            _KEY_TYPES[_field.alias or _name] += (_cls.model_fields["type"].default,)


# ---------------------------------------------------------------- the P-frame steps' [i_frame]


def fill_i_frame(data: Any) -> Any:
    """Before validation: ``[i_frame]`` of a curriculum that trains its I-frame codec is
    the trained one (only ``type``, and for rvq ``layers``, may be written there);
    without ``[iframe_training]``, a VQ ``[i_frame]`` must point at its files."""
    if not isinstance(data, dict) or not isinstance(data.get("i_frame", {}), dict):
        return data
    table = data.get("i_frame", {})
    training = data.get("iframe_training")
    if training is None:
        if table.get("type") in VQ_TYPES:
            for key in ("config", "checkpoint"):
                if key not in table:
                    raise _rule("missing; the P-frame steps need a trained VQ codec: point config and checkpoint "
                                "at one, or add [iframe_training] to train it in this curriculum", "i_frame", key)
        return data
    if not _valid(training):
        return data  # the table's own validation says what is wrong (its errors come first)
    trained = training["type"]
    used = table.get("type", trained)
    if used != trained:
        raise _rule(f"must be {trained!r}, the codec [iframe_training] trains, got {_show(used)}; the P-frame "
                    "steps use the trained codec (leave [i_frame] out, or remove [iframe_training])",
                    "i_frame", "type")
    allowed = ("type", "layers") if trained == RVQ else ("type",)
    for key in table:
        if key not in allowed:
            raise _rule(f"not with [iframe_training]: the P-frame steps use the codec it trains (here only "
                        f"{' and '.join(allowed)} may be set); remove it, or remove [iframe_training] to use "
                        "your own codec", "i_frame", key)
    if trained == COMPRESSAI:
        spec = {"type": trained, "model_name": training.get("model_name", CompressAITraining.model_fields[
            "model_name"].default), "quality": training.get("quality", CompressAITraining.model_fields[
                "quality"].default), "pretrained": False, "checkpoint": TRAINED}
    else:
        spec = {"type": trained, "config": training.get("config", TRAINED), "checkpoint": TRAINED,
                **({"layers": table["layers"]} if "layers" in table else {})}
    return {**data, "i_frame": spec}


def _valid(training: Any) -> bool:
    try:
        _TRAINING.validate_python(training)
    except ValidationError:
        return False
    return True


def check_curriculum(cur: Any) -> None:
    """Cross-table rules of I-frame training and per-track depth (raise ``_rule``)."""
    training = cur.iframe_training
    for i, track in enumerate(cur.tracks):
        if training is not None and track.name == "iframe":
            raise _rule('"iframe" is the scope of the I-frame steps (their ids are iframe-<tag>); '
                        "give the track another name", "tracks", i, "name")
        if track.i_frame_layers is not None and not isinstance(cur.i_frame, RVQSpec):
            raise _rule(f'applies only to an RVQ I-frame ([i_frame] type = "{RVQ}"); the P-frame steps use '
                        f"{cur.i_frame.type!r}", "tracks", i, "i_frame_layers")
    depth = training.trained_depth if isinstance(training, RVQTraining) else None
    if depth is not None:
        wanted = [(("i_frame", "layers"), cur.i_frame.layers)]
        wanted += [(("tracks", i, "i_frame_layers"), t.i_frame_layers) for i, t in enumerate(cur.tracks)]
        for where, layers in wanted:
            if layers is not None and layers > depth:
                raise _rule(f"{layers} is deeper than the codec [iframe_training] trains (progressive to {depth} "
                            f"layers); use at most {depth}, or add end to end training "
                            '(strategy = "progressive_then_end_to_end")', *where)
    synth = cur.data.synthetic
    if training is not None and synth is not None:
        crop = training.option("crop_size", cur.train)
        if crop > min(synth.width, synth.height):
            where = ("iframe_training", "crop_size") if training.crop_size is not None else ("train", "crop_size")
            raise _rule(f"the I-frame steps crop {crop}x{crop} from frames of the synthetic clips "
                        f"({synth.width}x{synth.height}); use a crop_size <= {min(synth.width, synth.height)} "
                        "in [iframe_training]", *where)
