"""`plan` output: rows, table, copyable commands, JSON; and the torch-free import."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from dcvc_bench.curriculum import expand, load_curriculum, plan_json, plan_rows, render_plan_commands, render_plan_table

REPO = Path(__file__).resolve().parents[2]


def full_rows():
    cur = load_curriculum(REPO / "curricula" / "full.toml")
    return plan_rows(cur, expand(cur))


def test_rows_describe_every_step():
    rows = full_rows()
    assert len(rows) == 17
    first, second, stage2, opt = rows[0], rows[1], rows[4], rows[16]
    assert (first["id"], first["stage"], first["gop"], first["lambda"], first["epochs"]) == ("l2048-s1g2", 1, 2, 2048.0, 10)
    assert (first["start"], first["start_description"]) == ("fresh", "fresh (random init)")
    assert second["start"] == "latest+lr-reset"
    assert second["start_description"] == "previous step's final + LR reset to 1e-4 (weights + optimizer)"
    assert stage2["start_description"] == "previous stage's best, weights only (fresh optimizer; stage 1's best)"
    assert opt["gop_opt"] and opt["id"] == "l2048-s4g7-opt"
    for row in rows:
        assert row["command"] == shlex.join(row["argv"])
        assert len(row["config_hash"]) == 64
    assert "--load_pretrained runs/full/checkpoints/l2048/model_dcvc_lambda_2048.0_quality_4_stage_1_best.pth" in stage2["command"]
    assert "--resume runs/full/steps/l2048-s1g2/final.pth --force_learning_rate 0.0001" in second["command"]


def test_table_has_a_status_column_only_when_asked():
    rows = full_rows()
    plain = render_plan_table(rows)
    assert [c.header for c in plain.columns] == ["#", "step", "stage", "GOP", "λ", "epochs", "starts from"]
    with_status = render_plan_table(rows, {"l2048-s1g2": "done"})
    assert with_status.columns[-1].header == "status" and with_status.row_count == 17
    console = Console(width=200, record=True)
    console.print(with_status)
    text = console.export_text()
    assert "l2048-s4g7-opt" in text and "7 opt" in text and "done" in text


def test_commands_text_is_valid_shell():
    rows = full_rows()
    lines = render_plan_commands(rows).splitlines()
    assert len(lines) == 34
    assert lines[0] == "# l2048-s1g2: fresh (random init)"
    assert shlex.split(lines[1]) == rows[0]["argv"]


def test_json_round_trips_with_statuses():
    rows = full_rows()
    data = json.loads(plan_json(rows, {"l2048-s1g2": "done"}))
    assert [r["id"] for r in data] == [r["id"] for r in rows]
    assert data[0]["status"] == "done" and data[1]["status"] is None
    assert "status" not in json.loads(plan_json(rows))[0]


def test_import_does_not_load_torch_or_rich():
    code = ("import sys, dcvc_bench.curriculum; "
            "bad = [m for m in ('torch', 'numpy', 'cv2', 'rich') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


SHIPPED = sorted((REPO / "curricula").glob("*.toml"))
#: Step counts of the shipped curricula (I-frame steps + tracks x P-frame steps): a curriculum
#: cut short or an expansion that changed shows here.
SHIPPED_STEPS = {"full": 17, "smoke": 9, "rvq-smoke": 3 + 2 * 2, "rvq": 5 + 4 * 17, "vqgan32": 1 + 4 * 17,
                 "vqgan16": 1 + 4 * 17, "compressai-iframe": 1 + 4 * 17}


def test_every_shipped_curriculum_plans(tmp_path, monkeypatch, capsys):
    from dcvc_bench.runner.commands import plan_command

    monkeypatch.chdir(tmp_path)  # no run folder of theirs here
    assert {p.stem for p in SHIPPED} == set(SHIPPED_STEPS)
    for path in SHIPPED:
        assert plan_command(path, as_json=True) == 0, path
        rows = json.loads(capsys.readouterr().out)
        assert len(rows) == SHIPPED_STEPS[path.stem], path
        iframe = [r for r in rows if r["kind"] == "iframe"]
        assert rows[:len(iframe)] == iframe  # the I-frame steps come first
        for row in rows[len(iframe):]:
            if iframe:  # every P-frame step reads the last I-frame step's archive
                assert row["argv"][-2:][1].endswith(f"steps/{iframe[-1]['id']}/final.pth")
