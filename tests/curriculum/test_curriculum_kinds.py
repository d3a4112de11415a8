"""Step kinds: what each step is, the module it launches, what it produces and consumes,
and how a producer's config hash reaches the steps that read what it produces."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dcvc_bench.curriculum import (
    StepKind,
    accelerate_argv,
    config_hashes,
    expand,
    parse_curriculum,
    plan_rows,
    planned_run_flags,
    previous_step,
    step_config_hash,
)
from dcvc_bench.curriculum.steps import KINDS, PFRAME_MODULE, gop_label, producer

REPO = Path(__file__).resolve().parents[2]
FULL = (REPO / "curricula" / "full.toml").read_text()
TWO = FULL + "\n[[tracks]]\nlambda = 512\nquality_index = 2\n"


def test_every_step_has_a_kind_and_the_module_of_its_kind():
    steps = expand(parse_curriculum(FULL))
    assert [s.kind for s in steps] == [StepKind.PFRAME] * 16 + [StepKind.GOP_OPT]
    assert all(s.module == PFRAME_MODULE == "dcvc_bench.train" for s in steps)
    assert all(s.gop_opt is (s.kind is StepKind.GOP_OPT) for s in steps)
    assert KINDS[StepKind.IFRAME].module == "dcvc_bench.train.iframe"  # only with [iframe_training]
    assert StepKind("gop-opt") is StepKind.GOP_OPT and StepKind("iframe") is StepKind.IFRAME


def test_the_launched_module_is_the_steps():
    cur = parse_curriculum(FULL)
    steps = expand(cur)
    argv = accelerate_argv(cur, steps[0], planned_run_flags(cur, steps[0], steps))
    assert argv[argv.index("-m") + 1] == steps[0].module


def test_p_frame_steps_update_their_tracks_weights_in_run_order():
    steps = expand(parse_curriculum(TWO))
    for track in ("l2048", "l512"):
        mine = [s for s in steps if s.track == track]
        assert all(s.produces == f"{track}:pframe" for s in mine)
        assert mine[0].consumes == () and not mine[0].updates  # stage 1's first step starts fresh
        assert all(s.consumes == (f"{track}:pframe",) and s.updates and s.inputs == () for s in mine[1:])
        for before, step in zip(mine, mine[1:]):  # each continues the one before it, never another track's
            assert producer(step, step.produces, steps) == before == previous_step(step, steps)
        assert producer(mine[2], mine[2].produces, steps, {mine[1].id}) == mine[0]  # a skipped producer is absent


def test_labels_come_from_the_kind():
    steps = expand(parse_curriculum(FULL))
    first, opt = steps[0], steps[-1]
    assert (first.label, first.group, first.gop_label, first.parts) == ("stage 1, GOP 2", "stage 1", "2",
                                                                          ("stage 1", "GOP 2"))
    assert (opt.label, opt.group, opt.gop_label) == ("stage 4, GOP 7 (GOP opt)", "stage 4", "7 opt")
    assert gop_label("gop-opt", 5) == "5 opt" and gop_label(StepKind.PFRAME, 5) == "5"


def test_plan_json_has_kind_produces_and_consumes():
    cur = parse_curriculum(FULL)
    rows = json.loads(json.dumps(plan_rows(cur, expand(cur))))
    assert [r["kind"] for r in rows] == ["pframe"] * 16 + ["gop-opt"]
    assert rows[0]["produces"] == "l2048:pframe" and rows[0]["consumes"] == []
    assert all(r["consumes"] == ["l2048:pframe"] for r in rows[1:])


def test_p_frame_hashes_are_the_ones_recorded_before_step_kinds():
    """The chained hashes of today's curricula are the per-step hashes, which the recorded
    smoke run pins (tests/curriculum/test_curriculum_hash.py): no finished step re-runs."""
    fixture = REPO / "tests" / "tui" / "fixtures" / "smoke-run"
    cur = parse_curriculum((fixture / "curriculum.toml").read_text())
    recorded = {r["id"]: r["config_hash"] for r in json.loads((fixture / "ledger.json").read_text())["steps"]}
    assert config_hashes(cur, expand(cur)) == recorded
    full = parse_curriculum(TWO)
    assert config_hashes(full, expand(full)) == {s.id: step_config_hash(full, s) for s in expand(full)}


def _reader(steps, reads: str):
    """The l512 track's first step made a reader of ``reads`` (as a P-frame step reads the
    I-frame codec an I-frame step trains): the seam a new kind uses."""
    out = list(steps)
    i = next(k for k, s in enumerate(out) if s.track == "l512")
    out[i] = dataclasses.replace(out[i], consumes=(reads,))
    return out, out[i]


def test_a_changed_producer_changes_the_hashes_of_the_steps_reading_what_it_produces():
    cur = parse_curriculum(TWO)
    steps, reader = _reader(expand(cur), "l2048:pframe")
    assert reader.inputs == ("l2048:pframe",)
    base = config_hashes(cur, steps)
    # The producer is l2048's last step (the GOP optimisation): edit only it.
    edited = parse_curriculum(TWO.replace("[gop_opt]", "[gop_opt]\nlearning_rate = 3e-5", 1))
    assert edited.gop_opt.learning_rate == 3e-5
    changed = config_hashes(edited, _reader(expand(edited), "l2048:pframe")[0])
    differ = {i for i in base if base[i] != changed[i]}
    # l512's steps: the reader's hash changes with its producer's; the rest of l512 keeps
    # theirs (they re-run through the lineage rule, runner.resume), except its own GOP opt.
    assert differ == {"l2048-s4g7-opt", reader.id, "l512-s4g7-opt"}
    # ... and a reader's hash differs from the same step reading nothing.
    plain = config_hashes(cur, expand(cur))
    assert base[reader.id] != plain[reader.id]
    assert {k: v for k, v in base.items() if k != reader.id} == {k: v for k, v in plain.items() if k != reader.id}


def test_an_input_no_step_produces_is_hashed_as_absent_and_must_be_given():
    cur = parse_curriculum(TWO)
    steps, reader = _reader(expand(cur), "shared:iframe")
    assert config_hashes(cur, steps)[reader.id] != step_config_hash(cur, expand(cur)[reader.index])
    with pytest.raises(ValueError, match="shared:iframe"):
        step_config_hash(cur, reader)
