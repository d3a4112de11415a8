"""What `dcvc-bench plan` shows: one row per step, as a rich table, plain commands or JSON.

Pure functions of the curriculum; the CLI adds the run folder's status per step (from the
ledger) through the ``statuses`` arguments. rich is imported only when a table is drawn.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from dcvc_bench.curriculum.command import accelerate_argv, planned_run_flags
from dcvc_bench.curriculum.expand import config_hashes
from dcvc_bench.curriculum.schema import Curriculum
from dcvc_bench.curriculum.start_words import start_phrase
from dcvc_bench.curriculum.steps import StartKind, Step, gop_label

if TYPE_CHECKING:
    from rich.table import Table


def describe_start(step: Step, kind: Optional[StartKind] = None) -> str:
    """How a step starts, in words (:mod:`.start_words`). ``kind`` defaults to the
    fresh-folder plan; the runner passes its actual decision (e.g. ``RESUME_OWN_LATEST``
    after an interruption)."""
    kind = step.planned_start if kind is None else kind
    source = f"stage {step.previous_stage}'s best" if kind is StartKind.PREVIOUS_STAGE_BEST else None
    return start_phrase(kind, step.reset_learning_rate, source)


def plan_summary(cur: Curriculum, steps: Sequence[Step]) -> str:
    """``9 steps = 1 track x (4 stages: 8 GOP steps + GOP optimisation)``: the counts, so a
    curriculum cut short (a truncated file can still be valid TOML) shows in what `plan` prints."""
    tracks, stages = len(cur.tracks), len(cur.stages)
    gop_steps = sum(len(s.gops) for s in cur.stages)
    opt = " + GOP optimisation" if cur.gop_opt_step is not None else ""
    iframe = sum(s.is_iframe for s in steps)
    first = f"{iframe} I-frame step{'s' * (iframe != 1)} + " if iframe else ""
    return (f"{len(steps)} step{'s' * (len(steps) != 1)} = {first}{tracks} track{'s' * (tracks != 1)} x "
            f"({stages} stage{'s' * (stages != 1)}: {gop_steps} GOP step{'s' * (gop_steps != 1)}{opt})")


def plan_rows(cur: Curriculum, steps: Sequence[Step]) -> list[dict[str, Any]]:
    """One JSON-ready dict per step, with the exact command of a fresh run folder. An
    I-frame step has ``stage``, ``gop`` and ``quality_index`` null (``lambda`` too, but for
    a CompressAI codec's λ), and its ``tag`` and ``i_frame_type``."""
    rows = []
    hashes = config_hashes(cur, steps)
    for step in steps:
        argv = accelerate_argv(cur, step, planned_run_flags(cur, step, steps))
        rows.append({
            "id": step.id,
            "index": step.index,
            "kind": step.kind.value,
            "track": step.track,
            "stage": None if step.is_iframe else step.stage,
            "gop": None if step.is_iframe else step.gop,
            "gop_opt": step.gop_opt,
            "lambda": None if step.is_iframe and not step.lambda_value else step.lambda_value,
            "quality_index": None if step.is_iframe else step.quality_index,
            **({"tag": step.tag, "i_frame_type": step.i_frame_type} if step.is_iframe else {}),
            "epochs": step.epochs,
            "produces": step.produces,
            "consumes": list(step.consumes),
            "start": step.planned_start.value,
            "start_description": describe_start(step),
            "config_hash": hashes[step.id],
            "argv": argv,
            "command": shlex.join(argv),
        })
    return rows


def render_plan_table(rows: Sequence[Mapping[str, Any]], statuses: Optional[Mapping[str, str]] = None) -> Table:
    """The steps as a table; a ``status`` column when ``statuses`` (step id -> text) is given.
    Commands are too long for a table cell: print :func:`render_plan_commands` below it."""
    from rich.table import Table

    table = Table(title=f"{len(rows)} steps", title_justify="left")
    for header, justify in (("#", "right"), ("step", "left"), ("stage", "right"), ("GOP", "right"),
                            ("λ", "right"), ("epochs", "right"), ("starts from", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    if statuses is not None:
        table.add_column("status")
    for row in rows:
        gop = gop_label(row["kind"], row["gop"])
        stage = "I" if row["stage"] is None else str(row["stage"])
        lmbda = "-" if row["lambda"] is None else f"{row['lambda']:g}"
        cells = [str(row["index"] + 1), row["id"], stage, gop, lmbda, str(row["epochs"]), row["start_description"]]
        if statuses is not None:
            cells.append(statuses.get(row["id"], ""))
        table.add_row(*cells)
    return table


def render_plan_commands(rows: Sequence[Mapping[str, Any]]) -> str:
    """Each step's command on one line under a ``# id: how it starts`` comment: valid
    shell text, copyable as is (print it without rich's wrapping)."""
    return "\n".join(f"# {row['id']}: {row['start_description']}\n{row['command']}" for row in rows)


def plan_json(rows: Sequence[Mapping[str, Any]], statuses: Optional[Mapping[str, str]] = None) -> str:
    """The rows as a JSON array (``status`` added per row when ``statuses`` is given)."""
    out = [dict(row, status=statuses.get(row["id"])) if statuses is not None else dict(row) for row in rows]
    return json.dumps(out, indent=2)
