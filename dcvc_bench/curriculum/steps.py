"""A Step: one `accelerate launch -m <its kind's trainer module>` invocation of a curriculum.

The expansion TOML -> Curriculum -> [Step] is static; how a step *starts* on a given
run (fresh / previous stage's best / stage latest + LR reset / previous step's final /
resume own latest) depends on what is on disk and is decided by ``dcvc_bench.runner.resume``
(each kind's start rule: ``dcvc_bench.runner.starts``).

Kinds: every step has a :class:`StepKind`, and code that asks "what is this step" reads
it (``plan``, ``status``, the TUI, the resume rules), never ``stage`` numbers. A kind
(:data:`KINDS`) names the trainer module the runner launches, how the step is titled and
grouped, and its checkpoints' names. The P-frame kinds' parameters are ``stage``,
``gop``, ``lambda_value``, ``quality_index``; an I-frame step's (``[iframe_training]``)
are its ``tag`` and ``i_frame_type``: its track is the scope ``iframe`` (checkpoints in
``checkpoints/iframe/``, named ``iframe_{type}_{tag}_{kind}.pth``), ``stage`` 0, ``gop`` 1.

Artifacts: a step ``produces`` one named artifact and ``consumes`` the artifacts it
starts from or reads. A name is ``<scope>:<what>``, the scope being the track (e.g.
``l2048:pframe``, the track's P-frame weights). A name is a slot that several steps may
write in turn: what a step consumes is the version written by the last step before it
(run order) that produces that name. A step that consumes and produces the same name
(every P-frame step after a track's first continues its track's weights) *updates* it in
place; any other consumed name is an *input* it only reads (the I-frame codec
``iframe:codec`` that the I-frame steps train, read by every P-frame step through the
flag ``Step.input_flags`` names), and its producer's config hash is part of the
consumer's (see ``curriculum.expand.config_hashes``). Either way, a producer that runs
makes its consumers run (``runner.resume``).

Identifiers:
- ``phase_id`` is what the trainer writes into every checkpoint as ``step_id``:
  ``s{stage}g{gop}`` plus ``-opt`` for the stage-4 GOP-optimisation step (an I-frame
  step's: its tag, ``train``, ``e2e``, ``p2``...). Checkpoints of
  one track live in one folder, and their names carry no GOP, so ``step_id`` inside the
  checkpoint is what tells the GOP steps of a stage apart.
- ``id`` is unique within a run: ``{track}-{phase_id}`` (e.g. ``l2048-s1g2``); the
  step's folder is ``runs/<name>/steps/<id>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

from dcvc_bench.checkpoints import checkpoint_name, iframe_checkpoint_name, phase_id


class StartKind(str, Enum):
    """How a step starts. Values are shown to users by `plan`, `status` and the TUI."""

    FRESH = "fresh"                      # random init (stage 1's first step)
    PREVIOUS_STAGE_BEST = "prev-best"    # weights of the previous stage's best, fresh optimizer
    STAGE_LATEST_LR_RESET = "latest+lr-reset"  # stage latest: weights+optimizer, LR forced
    RESUME_OWN_LATEST = "resume"         # this step's own latest: epoch, optimizer, LR, RNG
    PREVIOUS_STEP_FINAL = "prev-final"   # weights of the previous step's archived final, fresh optimizers


class StepKind(str, Enum):
    """What a step is. Values appear in ``plan --json`` (``"kind"``)."""

    PFRAME = "pframe"    # a P-frame stage (1..4) at one GOP size
    GOP_OPT = "gop-opt"  # the stage-4 GOP-level optimisation step (--stage4_gop_opt)
    IFRAME = "iframe"    # training the I-frame codec ([iframe_training]), before every P-frame step


@dataclass(frozen=True)
class KindInfo:
    """What the runner needs to know about a kind besides the step's own fields."""

    module: str  # the trainer module the runner launches (``accelerate launch -m <module>``)
    title: str   # in words, for `plan` and the TUI
    #: The file name of one of a step's own checkpoints (``latest``, ``best``, ``final``)
    #: in its folder ``checkpoints/<step.track>/`` (the track, or the kind's scope).
    checkpoint_name: Callable[[Step, str], str]


def _pframe_checkpoint(step: Step, kind: str) -> str:
    return checkpoint_name(step.lambda_value, step.quality_index, step.stage, kind)


def _iframe_checkpoint(step: Step, kind: str) -> str:
    return iframe_checkpoint_name(step.i_frame_type, step.tag, kind)


PFRAME_MODULE = "dcvc_bench.train"
IFRAME_MODULE = "dcvc_bench.train.iframe"
KINDS: dict[StepKind, KindInfo] = {
    StepKind.IFRAME: KindInfo(IFRAME_MODULE, "I-frame training", _iframe_checkpoint),
    StepKind.PFRAME: KindInfo(PFRAME_MODULE, "P-frame stage", _pframe_checkpoint),
    StepKind.GOP_OPT: KindInfo(PFRAME_MODULE, "GOP optimisation", _pframe_checkpoint),
}
"""Each kind the expansion produces."""
PFRAME_KINDS = frozenset({StepKind.PFRAME, StepKind.GOP_OPT})
#: The I-frame steps' track field: their checkpoint folder (``checkpoints/iframe/``) and id prefix.
IFRAME_SCOPE = "iframe"
#: What the I-frame steps produce in turn and every P-frame step reads: the trained I-frame codec.
IFRAME_ARTIFACT = f"{IFRAME_SCOPE}:codec"
#: The tree group of the I-frame steps (above the stages).
IFRAME_GROUP = "I-frame"


def pframe_artifact(track: str) -> str:
    """The name of a track's P-frame weights (what its P-frame steps update in turn)."""
    return f"{track}:pframe"


def gop_label(kind: StepKind | str, gop: int | None) -> str:
    """``3``, or ``7 opt`` for the GOP optimisation, ``-`` for an I-frame step (the GOP
    column of `plan` and `status`)."""
    kind = StepKind(kind)
    if kind is StepKind.IFRAME:
        return "-"
    return f"{gop} opt" if kind is StepKind.GOP_OPT else str(gop)


@dataclass(frozen=True)
class Step:
    track: str                 # track name, e.g. "l2048" (I-frame steps: IFRAME_SCOPE)
    index: int                 # position in the run's order (0-based, over all tracks)
    stage: int                 # 1..4 (I-frame steps: 0)
    gop: int                   # GOP size of this step (I-frame steps: 1, a sample is one frame)
    epochs: int                # epochs of THIS step (never cumulative)
    lambda_value: float
    quality_index: int
    kind: StepKind = StepKind.PFRAME
    first_in_stage: bool = False
    # Fully resolved trainer flags (flag name without dashes -> value), excluding the
    # run-dependent ones (--resume/--load_pretrained/--force_learning_rate/--events_file/
    # --checkpoint_dir) that the runner adds when it decides how the step starts.
    train_flags: dict = field(default_factory=dict, compare=False, hash=False)
    # The LR forced (--force_learning_rate) when the step starts from the stage's latest.
    reset_learning_rate: float = 1e-4
    # For a stage's first step (stage >= 2): the stage whose ``best`` it loads — the stage
    # before it in the curriculum, or stage - 1 when the curriculum starts at this stage
    # (the user then puts that checkpoint into the track's checkpoint folder).
    previous_stage: int | None = None
    # What it writes and what it starts from or reads (module docstring), set by the
    # expansion. ``consumes`` empty: it starts fresh (or from a checkpoint the user provides).
    produces: str = ""
    consumes: tuple[str, ...] = ()
    # (artifact, trainer flag) for each input the runner passes by path: the flag gets the
    # archived final of the artifact's producer (e.g. ("iframe:codec", "vqgan_checkpoint")).
    input_flags: tuple[tuple[str, str], ...] = ()
    # I-frame steps: the recipe's --step_tag (train, e2e, p2, ...) and the codec family.
    tag: str = ""
    i_frame_type: str = ""

    @property
    def gop_opt(self) -> bool:
        """A parameter of the P-frame trainer (``--stage4_gop_opt``); ask ``kind`` what the step is."""
        return self.kind is StepKind.GOP_OPT

    @property
    def module(self) -> str:
        """The trainer module the runner launches for this step."""
        return KINDS[self.kind].module

    @property
    def updates(self) -> bool:
        """It continues what earlier steps produced under the same name."""
        return self.produces in self.consumes

    @property
    def inputs(self) -> tuple[str, ...]:
        """The artifacts it only reads (not its own lineage): their producers' hashes are in its own."""
        return tuple(a for a in self.consumes if a != self.produces)

    @property
    def is_iframe(self) -> bool:
        return self.kind is StepKind.IFRAME

    @property
    def group(self) -> str:
        """The node it sits under in a track's tree (TUI): ``stage 2``, or ``I-frame``."""
        return IFRAME_GROUP if self.is_iframe else f"stage {self.stage}"

    @property
    def gop_label(self) -> str:
        return gop_label(self.kind, self.gop)

    @property
    def stage_label(self) -> str:
        """The stage column of `plan` and `status`: ``2``, or ``I`` for an I-frame step."""
        return "I" if self.is_iframe else str(self.stage)

    @property
    def lambda_label(self) -> str:
        """The λ column: the track's, a CompressAI I-frame step's, ``-`` for a VQ one."""
        return "-" if self.is_iframe and not self.lambda_value else f"{self.lambda_value:g}"

    @property
    def iframe_title(self) -> str:
        """An I-frame step's phase in words: ``train``, ``end to end``, ``layers 1-4, 1-2 frozen``."""
        train, frozen = self.train_flags.get("rvq_train_layers"), self.train_flags.get("rvq_frozen_layers")
        if train is not None:
            return f"layers 1-{train}" + (f", 1-{frozen} frozen" if frozen else "")
        return "end to end" if self.tag == "e2e" else "train"

    @property
    def parts(self) -> tuple[str, ...]:
        """The step in short parts, as the TUI's progress line shows them: ``stage 4``, ``GOP 7 opt``."""
        if self.is_iframe:
            return f"{IFRAME_GROUP} {self.i_frame_type}", self.iframe_title
        return self.group, f"GOP {self.gop_label}"

    @property
    def label(self) -> str:
        """The step in words: ``stage 4, GOP 7 (GOP opt)``, ``I-frame rvq, layers 1-4, 1-2 frozen``."""
        if self.is_iframe:
            return ", ".join(self.parts)
        return f"stage {self.stage}, GOP {self.gop}" + (" (GOP opt)" if self.kind is StepKind.GOP_OPT else "")

    @property
    def phase_id(self) -> str:
        """What the trainer writes into its checkpoints as ``step_id`` (I-frame steps: the tag)."""
        return self.tag if self.is_iframe else phase_id(self.stage, self.gop, self.gop_opt)

    def checkpoint_name(self, kind: str) -> str:
        """The file name of this step's own ``latest``/``best``/``final`` (by its kind)."""
        return KINDS[self.kind].checkpoint_name(self, kind)

    @property
    def id(self) -> str:
        return f"{self.track}-{self.phase_id}"

    @property
    def planned_start(self) -> StartKind:
        """How the step starts on a fresh run folder (no checkpoints yet)."""
        if self.is_iframe:
            return StartKind.PREVIOUS_STEP_FINAL if self.updates else StartKind.FRESH
        if self.first_in_stage:
            return StartKind.FRESH if self.stage == 1 else StartKind.PREVIOUS_STAGE_BEST
        return StartKind.STAGE_LATEST_LR_RESET


def producer(step: Step, artifact: str, steps: "list[Step] | tuple[Step, ...]",
             absent: "frozenset[str] | set[str]" = frozenset()) -> Step | None:
    """The step whose version of ``artifact`` ``step`` consumes: the last one before it in
    run order that produces it, leaving out the ids in ``absent`` (steps the user skipped)."""
    before = [s for s in steps if s.index < step.index and s.produces == artifact and s.id not in absent]
    return max(before, key=lambda s: s.index) if before else None
