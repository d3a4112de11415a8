"""How a training step starts, decided from the checkpoint it is given (see
:mod:`dcvc_bench.train.loop`'s docstring): continue its own latest, start a new GOP of
the same stage with its optimizer, or take weights only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcvc_bench.checkpoint_io import load_checkpoint
from dcvc_bench.checkpoints import checkpoint_path


@dataclass
class StartState:
    """What the step starts from; see the module docstring."""

    mode: str                       # "fresh" | "continue" | "new_phase" | "weights_only"
    source: Path | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def start_epoch(self) -> int:
        return int(self.checkpoint.get("epoch", 0)) if self.mode == "continue" else 0


def decide_start(args: Any, phase: str) -> StartState:
    """Classify the checkpoint this step starts from (pure: loads, never mutates)."""
    if args.resume:
        ck = load_checkpoint(args.resume, "--resume")
        same_stage = int(ck.get("stage", -1)) == args.stage
        if same_stage and ck.get("step_id") == phase:
            return StartState("continue", Path(args.resume), ck,
                              f"resuming {phase} at epoch {ck.get('epoch', 0)} of {args.epochs}")
        if same_stage:
            return StartState("new_phase", Path(args.resume), ck,
                              f"new step {phase} from {ck.get('step_id') or 'an older step'}: "
                              "its weights and optimizer, epoch 0")
        return StartState("weights_only", Path(args.resume), ck,
                          f"checkpoint is from stage {ck.get('stage')}: weights only, fresh "
                          f"optimizer (stage {args.stage} trains a different set of parameters)")
    if args.load_pretrained:
        ck = load_checkpoint(args.load_pretrained, "--load_pretrained")
        return StartState("weights_only", Path(args.load_pretrained), ck,
                          "weights only (--load_pretrained), fresh optimizer")
    if args.stage > 1:
        prev = checkpoint_path(args.checkpoint_dir, args.lambda_value, args.quality_index,
                               args.stage - 1, "best")
        if prev.is_file():
            ck = load_checkpoint(prev, "previous stage's best")
            return StartState("weights_only", prev, ck,
                              f"stage {args.stage - 1}'s best found in --checkpoint_dir: "
                              "weights only, fresh optimizer")
        return StartState("fresh", None, {}, f"WARNING: no stage {args.stage - 1} best at {prev}; "
                          "starting from random weights")
    return StartState("fresh", None, {}, "fresh start (random weights)")
