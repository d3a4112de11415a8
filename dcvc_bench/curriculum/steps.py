"""A Step: one `accelerate launch -m dcvc_bench.train` invocation of a curriculum.

The expansion TOML -> Curriculum -> [Step] is static; how a step *starts* on a given
run (fresh / previous stage's best / stage latest + LR reset / resume own latest)
depends on what is on disk and is decided by ``dcvc_bench.runner.resume``.

Identifiers:
- ``phase_id`` is what the trainer writes into every checkpoint as ``step_id``:
  ``s{stage}g{gop}`` plus ``-opt`` for the stage-4 GOP-optimisation step. Checkpoints of
  one track live in one folder, and their names carry no GOP, so ``step_id`` inside the
  checkpoint is what tells the GOP steps of a stage apart.
- ``id`` is unique within a run: ``{track}-{phase_id}`` (e.g. ``l2048-s1g2``); the
  step's folder is ``runs/<name>/steps/<id>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dcvc_bench.checkpoints import phase_id


class StartKind(str, Enum):
    """How a step starts. Values are shown to users by `plan`, `status` and the TUI."""

    FRESH = "fresh"                      # random init (stage 1's first step)
    PREVIOUS_STAGE_BEST = "prev-best"    # weights of the previous stage's best, fresh optimizer
    STAGE_LATEST_LR_RESET = "latest+lr-reset"  # stage latest: weights+optimizer, LR forced
    RESUME_OWN_LATEST = "resume"         # this step's own latest: epoch, optimizer, LR, RNG


@dataclass(frozen=True)
class Step:
    track: str                 # track name, e.g. "l2048"
    index: int                 # position in the run's order (0-based, over all tracks)
    stage: int                 # 1..4
    gop: int                   # GOP size of this step
    epochs: int                # epochs of THIS step (never cumulative)
    lambda_value: float
    quality_index: int
    gop_opt: bool = False      # stage-4 GOP-level optimisation step
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

    @property
    def phase_id(self) -> str:
        return phase_id(self.stage, self.gop, self.gop_opt)

    @property
    def id(self) -> str:
        return f"{self.track}-{self.phase_id}"

    @property
    def planned_start(self) -> StartKind:
        """How the step starts on a fresh run folder (no checkpoints yet)."""
        if self.first_in_stage:
            return StartKind.FRESH if self.stage == 1 else StartKind.PREVIOUS_STAGE_BEST
        return StartKind.STAGE_LATEST_LR_RESET
