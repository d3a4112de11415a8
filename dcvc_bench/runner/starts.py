"""How a step starts when it does not resume its own latest checkpoint: each step kind's
start rule (:data:`START_RULES`), and the checkpoint flags of the artifacts a step reads.
Pure functions of the ordered steps and what is on disk (no writes, no torch); the rules
themselves are in :mod:`~dcvc_bench.runner.resume`'s docstring.

A checkpoint that an earlier step of this run will write (``will_run``) counts as there.
Skipped steps (``skipped``) are treated as absent. Each rule returns (start kind, its
flags, what is missing (None: nothing), a note on a fallback used).
"""

from __future__ import annotations

from pathlib import Path
from typing import AbstractSet, Any, Callable, Sequence

from dcvc_bench.checkpoints import checkpoint_path
from dcvc_bench.curriculum import RunPaths, StartKind, Step, StepKind, producer

Start = tuple[StartKind, dict[str, Any], "str | None", str]


def stage_checkpoint(paths: RunPaths, step: Step, stage: int, kind: str) -> Path:
    """A P-frame stage's checkpoint of ``step``'s track (its own stage or another)."""
    return checkpoint_path(paths.checkpoints_dir(step.track), step.lambda_value,
                           step.quality_index, stage, kind)


def planned_start(step: Step, steps: Sequence[Step], paths: RunPaths, will_run: AbstractSet[str],
                  skipped: AbstractSet[str] = frozenset()) -> Start:
    """How ``step`` starts by its kind's rule."""
    return START_RULES[step.kind](step, steps, paths, will_run, skipped)


def _skip_note(step: Step, steps: Sequence[Step], before: Step | None, skipped: AbstractSet[str]) -> str:
    """Which skipped steps of the lineage it continues are treated as absent."""
    earlier = [s for s in steps if step.updates and s.index < step.index and s.produces == step.produces]
    gap = [s.id for s in earlier if s.id in skipped and (before is None or s.index > before.index)]
    return f"starts as if {', '.join(gap)} (skipped by user) were absent" if gap else ""


def _iframe_start(step: Step, steps: Sequence[Step], paths: RunPaths, will_run: AbstractSet[str],
                  skipped: AbstractSet[str]) -> Start:
    """The first I-frame step starts fresh; each later one loads the archived final of the
    one before it (weights only: ``--load_pretrained``, fresh optimizers)."""
    before = producer(step, step.produces, steps, skipped) if step.updates else None
    note = _skip_note(step, steps, before, skipped)
    if before is None:
        return StartKind.FRESH, {}, None, note
    archive = paths.final_checkpoint(before.id)
    ok = before.id in will_run or archive.is_file()
    return (StartKind.PREVIOUS_STEP_FINAL, {"load_pretrained": str(archive)},
            None if ok else f"{archive} (the archived final of {before.id})", note)


def input_flags(step: Step, steps: Sequence[Step], paths: RunPaths, will_run: AbstractSet[str],
                skipped: AbstractSet[str] = frozenset()) -> tuple[dict[str, str], str | None]:
    """The flags that pass ``step`` what it reads (``Step.input_flags``): the archived final
    of each artifact's last producer that is not skipped; and what is missing, if anything."""
    flags: dict[str, str] = {}
    missing = None
    for artifact, flag in step.input_flags:
        source = producer(step, artifact, steps, skipped)
        if source is None:
            missing = missing or (f"{artifact} (every step that produces it is skipped; "
                                  "`dcvc-bench skip RUN_DIR STEP --undo` brings one back)")
            continue
        archive = paths.final_checkpoint(source.id)
        flags[flag] = str(archive)
        if source.id not in will_run and not archive.is_file():
            missing = missing or f"{archive} (the archived final of {source.id}, whose {artifact} it reads)"
    return flags, missing


def _pframe_start(step: Step, steps: Sequence[Step], paths: RunPaths, will_run: AbstractSet[str],
                  skipped: AbstractSet[str]) -> Start:
    """The P-frame kinds' rules: a step continues the weights it updates
    (``Step.updates``), from their last producer."""
    before = producer(step, step.produces, steps, skipped) if step.updates else None  # the last not skipped
    start = step.planned_start
    if start is StartKind.STAGE_LATEST_LR_RESET and (before is None or before.stage != step.stage):
        # Every earlier step of its stage is skipped: it is the stage's first step now.
        start = StartKind.FRESH if step.stage == 1 and before is None else StartKind.PREVIOUS_STAGE_BEST
    skip_note = _skip_note(step, steps, before, skipped)
    if start is StartKind.FRESH:
        return start, {}, None, skip_note
    if start is StartKind.STAGE_LATEST_LR_RESET:
        assert before is not None
        archive = paths.final_checkpoint(before.id)
        flags = {"resume": str(archive), "force_learning_rate": step.reset_learning_rate}
        ok = before.id in will_run or archive.is_file()
        return start, flags, None if ok else f"{archive} (the archived final of {before.id})", skip_note
    # The previous stage: the stage of the last step before this one that trains (the
    # curriculum's previous stage when nothing is skipped), else the stage below.
    previous_stage = before.stage if before is not None else (step.previous_stage or step.stage - 1)
    best = stage_checkpoint(paths, step, previous_stage, "best")
    notes = [n for n in (skip_note,) if n]
    if best.is_file() or (before is not None and before.id in will_run):
        return start, {"load_pretrained": str(best)}, None, "; ".join(notes)
    if before is not None:
        archive = paths.final_checkpoint(before.id)
        if archive.is_file():
            notes.append(f"{best.name} is missing; loading the archived final of {before.id} instead")
            return start, {"load_pretrained": str(archive)}, None, "; ".join(notes)
        missing = f"{best} (stage {previous_stage}'s best) and {archive} (the archived final of {before.id})"
    else:
        missing = f"{best} (stage {previous_stage}'s best; put it into {best.parent})"
    return start, {"load_pretrained": str(best)}, missing, "; ".join(notes)


START_RULES: dict[StepKind, Callable[..., Start]] = {
    StepKind.IFRAME: _iframe_start,
    StepKind.PFRAME: _pframe_start,
    StepKind.GOP_OPT: _pframe_start,
}
"""Each step kind's start rule (beside ``curriculum.steps.KINDS``, which names its module and checkpoints)."""
