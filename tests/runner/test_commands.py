"""`dcvc-bench plan`, `status` and `run`'s refusals through the real CLI, on fabricated
run folders: exit codes and the lines a user reads."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app

cli = CliRunner()


def invoke(*args: str):
    return cli.invoke(app, list(args))


@pytest.fixture
def toml(fake_run, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(fake_run.cur.source_text)
    return path


def test_plan_without_a_run_folder_lists_steps_and_exact_commands(toml, fake_run):
    result = invoke("plan", str(toml))
    assert result.exit_code == 0, result.output
    assert "8 steps" in result.output and "(not created yet)" in result.output
    archive = fake_run.paths.final_checkpoint("high-s1g2")
    assert f"--resume {archive} --force_learning_rate 5e-05" in result.output
    assert result.output.count("accelerate launch ") == 8


def test_plan_json_is_one_row_per_step(toml):
    result = invoke("plan", str(toml), "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["id"] for r in rows][:4] == ["high-s1g2", "high-s1g3", "high-s2g2", "high-s2g3"]
    assert all("status" not in r and r["argv"][:2] == ["accelerate", "launch"] for r in rows)


def test_plan_on_an_existing_run_shows_status_next_action_and_the_resume_command(toml, fake_run):
    fake_run.freeze()
    fake_run.finish("high-s1g2")
    fake_run.finish("high-s1g3")
    fake_run.record("high-s2g2", status="interrupted", started_at=time.time())
    latest = fake_run.checkpoint("high-s2g2", "latest", epoch=0)
    rows = {r["id"]: r for r in json.loads(invoke("plan", str(toml), "--json").output)}
    assert rows["high-s1g2"]["status"] == "done → skip"
    assert rows["high-s2g2"]["status"] == "interrupted 0/1 → run (interrupted at epoch 0/1): own latest: continue"
    assert rows["high-s2g2"]["argv"][-2:] == ["--resume", str(latest)]
    assert "--force_learning_rate" not in rows["high-s2g2"]["argv"]
    table = invoke("plan", str(toml)).output
    assert "exists: status and next action per step" in table and "done → skip" in table


def test_plan_after_editing_one_tracks_lambda_says_which_steps_rerun_and_why(toml, fake_run):
    fake_run.freeze()
    fake_run.finish_all()
    toml.write_text(fake_run.text(low_lambda=512))
    rows = {r["id"]: r for r in json.loads(invoke("plan", str(toml), "--json").output)}
    assert all(rows[f"high-{p}"]["status"] == "done → skip" for p in ("s1g2", "s1g3", "s2g2", "s2g3"))
    assert rows["low-s1g2"]["status"] == "done → run (config changed (lambda 1024→512)): fresh"
    assert rows["low-s2g3"]["status"].startswith("done → run (config changed (lambda 1024→512)): ")


def test_plan_of_a_malformed_curriculum_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data]\ntrain_dir = "a"\nval_dir = "b"\n[[tracks]]\nlamda = 1\n')
    result = invoke("plan", str(bad))
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_status_shows_steps_checkpoints_and_the_next_run(fake_run):
    fake_run.freeze()
    fake_run.finish("high-s1g2")
    fake_run.finish("high-s1g3")
    fake_run.record("high-s2g2", status="running", pid=999999, started_at=time.time(), epochs_done=0,
                    best_loss=12.5, last_eval={"epoch": 1, "psnr": 31.25, "bpp": 0.125})
    fake_run.checkpoint("high-s2g2", "latest", epoch=0)
    result = invoke("status", str(fake_run.paths.run_dir))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "8 steps: 2 done, 1 interrupted, 5 pending; no run in progress" in out
    assert "interrupted (runner gone)" in out and "12.5000" in out and "PSNR 31.25 dB, BPP 0.1250" in out
    assert "model_dcvc_lambda_2048.0_quality_4_stage_2_latest.pth" in out
    assert "skip 2 finished step(s): high-s1g2, high-s1g3" in out
    assert "high-s2g2: run (running at epoch 0/1): own latest: continue" in out


def test_status_of_a_missing_folder_is_one_line_and_exit_2(tmp_path):
    result = invoke("status", str(tmp_path / "runs" / "nope"))
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path / 'runs' / 'nope'}: no such run folder; give one such as runs/smoke\n"


def test_status_of_a_folder_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    result = invoke("status", str(tmp_path))
    assert result.exit_code == 2
    assert "is not a run folder" in result.output and result.output.count("\n") == 1


def test_run_on_a_folder_another_run_holds_is_refused_naming_its_pid(toml, fake_run):
    holder = textwrap.dedent(f"""
        import time
        from dcvc_bench.runner.lock import RunLock
        RunLock({str(fake_run.paths.run_dir)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        result = invoke("run", str(toml))
    finally:
        proc.kill()
        proc.wait()
    assert result.exit_code == 2
    assert f"is being run by pid {proc.pid} (started " in result.output


@pytest.mark.parametrize("gpus, message", [("0,1", 'runs on the CPU ([accelerate] device = "cpu")'),
                                           ("a,b", "expected GPU ids such as 0,1,2,3")])
def test_run_refuses_bad_gpus_in_one_line(toml, gpus, message):
    result = invoke("run", str(toml), "--gpus", gpus)
    assert result.exit_code == 2 and message in result.output
