"""Skipping a step (`dcvc-bench skip RUN_DIR STEP_ID [--undo]`) on fabricated run folders:
the ledger state, how the rest of the track starts without the skipped step, what
`status`, `plan` and `run` show, and the refusals (a run holds the folder, unknown id,
a done step, undo of a step that is not skipped)."""

from __future__ import annotations

import io
import json
import os
import socket
import time

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.curriculum import StartKind, expand, parse_curriculum, run_paths
from dcvc_bench.errors import UserError
from dcvc_bench.runner.commands import skip_step
from dcvc_bench.runner.display import PlainDisplay
from dcvc_bench.runner.ledger import Ledger
from dcvc_bench.runner.lock import LOCK_FILE, RunLock, lock_owner
from dcvc_bench.runner.resume import Action, fingerprint, stage_checkpoint
from dcvc_bench.runner.run import EXIT_FAILED, EXIT_OK, Runner

cli = CliRunner()


@pytest.fixture
def run(fake_run):
    fake_run.freeze()
    return fake_run


def all_done_but(run, step_id: str) -> None:
    """Every step finished except ``step_id``, which was interrupted after them."""
    for step in run.steps:
        if step.id != step_id:
            run.finish(step.id)
    run.record(step_id, status="interrupted", epochs_done=0, started_at=time.time())


def use_text(run, text: str) -> None:
    """Switch the fake run to an edited curriculum text (and freeze it)."""
    run.cur = parse_curriculum(text, source="t.toml")
    run.paths = run_paths(run.cur)
    run.steps = expand(run.cur, run.paths.data_dirs)
    run.fingerprints = {s.id: fingerprint(run.cur, s) for s in run.steps}
    run.freeze()


def test_a_skipped_step_is_recorded_and_never_run(run):
    message = skip_step(run.paths.run_dir, "high-s1g2")
    record = run.ledger().get("high-s1g2")
    assert (record.status, record.skipped_from, record.message) == ("skipped", "pending", "skipped by user")
    d = run.decisions()["high-s1g2"]
    assert d.action is Action.SKIP and d.user_skipped and d.describe() == "skip (by user)"
    assert message.startswith("high-s1g2: skipped (by user); `dcvc-bench run` never launches it; next: high-s1g3")


def test_gop_increase_after_a_skipped_step_resumes_the_last_finished_steps_archive_with_lr_reset(run):
    # Stage 1 with GOPs 2, 3, 5: s1g2 done, s1g3 interrupted with its own latest, then skipped.
    use_text(run, run.text().replace("gops = [2, 3]\nepochs = [2, 2]", "gops = [2, 3, 5]\nepochs = [2, 2, 1]")
             .replace("frames = 4", "frames = 5"))
    run.finish("high-s1g2")
    run.record("high-s1g3", status="interrupted", epochs_done=1, started_at=time.time())
    own_latest = run.checkpoint("high-s1g3", "latest", epoch=1)
    assert run.decisions()["high-s1g3"].start_flags == {"resume": str(own_latest)}

    skip_step(run.paths.run_dir, "high-s1g3")
    d = run.decisions()
    assert d["high-s1g3"].action is Action.SKIP and run.ledger().get("high-s1g3").skipped_from == "interrupted"
    nxt = d["high-s1g5"]
    assert nxt.action is Action.RUN and nxt.start is StartKind.STAGE_LATEST_LR_RESET
    assert nxt.start_flags == {"resume": str(run.paths.final_checkpoint("high-s1g2")), "force_learning_rate": 5e-5}
    assert "high-s1g3 (skipped by user) were absent" in nxt.note
    assert own_latest.is_file()  # the skipped step's latest is left alone, and not used


def test_a_stages_first_step_still_loads_the_previous_stages_best(run):
    run.finish("high-s1g2")
    skip_step(run.paths.run_dir, "high-s1g3")
    best = stage_checkpoint(run.paths, run.step("high-s2g2"), 1, "best")
    run.checkpoint("high-s1g2", "best")
    d = run.decisions()["high-s2g2"]
    assert d.start is StartKind.PREVIOUS_STAGE_BEST and d.start_flags == {"load_pretrained": str(best)}


def test_without_a_best_the_stage_change_falls_back_to_the_last_finished_steps_archive(run):
    run.finish("high-s1g2")  # writes no best (the fixture's s1g3 does)
    skip_step(run.paths.run_dir, "high-s1g3")
    d = run.decisions()["high-s2g2"]
    assert d.start_flags == {"load_pretrained": str(run.paths.final_checkpoint("high-s1g2"))}
    assert "loading the archived final of high-s1g2 instead" in d.note and not d.missing


def test_skipping_a_stages_first_step_makes_the_next_one_start_as_the_stages_first(run):
    run.finish("high-s1g2")
    run.finish("high-s1g3")
    skip_step(run.paths.run_dir, "high-s2g2")
    d = run.decisions()["high-s2g3"]
    best = stage_checkpoint(run.paths, run.step("high-s2g3"), 1, "best")
    assert d.start is StartKind.PREVIOUS_STAGE_BEST and d.start_flags == {"load_pretrained": str(best)}
    assert "force_learning_rate" not in d.start_flags


def test_skipping_the_tracks_first_step_makes_the_next_one_start_fresh(run):
    skip_step(run.paths.run_dir, "high-s1g2")
    d = run.decisions()["high-s1g3"]
    assert d.start is StartKind.FRESH and d.start_flags == {} and not d.missing


def test_a_whole_skipped_stage_makes_the_next_stage_load_the_last_trained_stages_best(run):
    # Add a stage 3, then skip all of stage 2.
    use_text(run, run.text().replace("[accelerate]", "[[stages]]\nstage = 3\ngops = [2]\nepochs = 1\n\n[accelerate]"))
    ledger = run.ledger()
    for sid in ("high-s2g2", "high-s2g3"):
        ledger.update(sid, status="skipped", skipped_from="pending")
    d = run.decisions()
    best1 = stage_checkpoint(run.paths, run.step("high-s1g3"), 1, "best")
    assert d["high-s3g2"].start is StartKind.PREVIOUS_STAGE_BEST
    assert d["high-s3g2"].start_flags == {"load_pretrained": str(best1)}
    assert "high-s2g2, high-s2g3 (skipped by user) were absent" in d["high-s3g2"].note


def test_a_config_change_does_not_unskip_and_only_undo_does(run):
    all_done_but(run, "low-s1g3")
    skip_step(run.paths.run_dir, "low-s1g3")
    run.use(low_lambda=512)  # every low step's hash changes
    d = run.decisions()
    assert d["low-s1g3"].action is Action.SKIP and d["low-s1g3"].user_skipped
    assert d["low-s1g2"].action is Action.RUN and d["low-s2g2"].action is Action.RUN
    run.use()
    message = skip_step(run.paths.run_dir, "low-s1g3", undo=True)
    record = run.ledger().get("low-s1g3")
    assert record.status == "interrupted" and record.skipped_from is None
    assert "no longer skipped" in message and "run (interrupted" in message
    assert run.decisions()["low-s1g3"].action is Action.RUN


def test_undo_after_the_track_went_on_reruns_the_later_steps(run):
    run.finish("high-s1g2")
    skip_step(run.paths.run_dir, "high-s1g3")
    run.finish("high-s2g2")
    skip_step(run.paths.run_dir, "high-s1g3", undo=True)
    d = run.decisions()
    assert d["high-s1g3"].action is Action.RUN
    assert d["high-s2g2"].action is Action.RUN and "an earlier step of this track re-runs (high-s1g3)" in d["high-s2g2"].reason


def test_refusals_are_one_line_user_errors(run):
    with pytest.raises(UserError, match=r"has no step 'high-s1g4' \(did you mean 'high-s1g3'\?\); its steps are high-s1g2, "):
        skip_step(run.paths.run_dir, "high-s1g4")
    run.finish("high-s1g2")
    with pytest.raises(UserError, match="high-s1g2 is done; there is nothing left to skip"):
        skip_step(run.paths.run_dir, "high-s1g2")
    with pytest.raises(UserError, match="is not skipped .it is pending.; nothing to undo"):
        skip_step(run.paths.run_dir, "high-s1g3", undo=True)
    assert "already skipped" not in skip_step(run.paths.run_dir, "high-s1g3")
    assert "already skipped" in skip_step(run.paths.run_dir, "high-s1g3")


def test_refused_while_a_run_holds_the_folder(run):
    lock = RunLock(run.paths.run_dir)
    lock.acquire()
    try:
        with pytest.raises(UserError, match=f"is being run by pid {os.getpid()} .*stop it first"):
            skip_step(run.paths.run_dir, "high-s1g2")
    finally:
        lock.release()
    assert run.ledger().get("high-s1g2") is None


def test_the_skip_holds_the_lock_without_advertising_itself_as_a_run(run, monkeypatch):
    seen = {}
    original = Ledger.update

    def spy(self, step_id, **changes):
        with pytest.raises(UserError, match="is being run by another process"):
            RunLock(run.paths.run_dir).acquire()  # a `run` starting now is refused...
        seen["owner"] = lock_owner(run.paths.run_dir)  # ...and no reader takes the skip for a run
        return original(self, step_id, **changes)

    monkeypatch.setattr(Ledger, "update", spy)
    skip_step(run.paths.run_dir, "high-s1g2")
    assert seen == {"owner": None}
    lock = RunLock(run.paths.run_dir)
    lock.acquire()  # released once the skip is done
    lock.release()


def test_a_lock_file_left_by_a_dead_runner_does_not_block(run):
    (run.paths.run_dir / LOCK_FILE).write_text(json.dumps({"pid": 2 ** 22 + 17, "host": socket.gethostname()}))
    skip_step(run.paths.run_dir, "high-s1g2")
    assert run.ledger().get("high-s1g2").status == "skipped"


def test_cli_skip_status_and_plan_show_it(run, tmp_path):
    run.finish("high-s1g2")
    result = cli.invoke(app, ["skip", str(run.paths.run_dir), "high-s1g3"])
    assert result.exit_code == 0, result.output
    assert "high-s1g3: skipped (by user)" in result.output
    assert "next: high-s2g2 starts from previous stage's best, weights only" in result.output

    status = cli.invoke(app, ["status", str(run.paths.run_dir)]).output
    assert "skipped (by user)" in status
    assert "skip 1 step(s) skipped by user: high-s1g3" in status

    toml = tmp_path / "t.toml"
    toml.write_text(run.cur.source_text)
    rows = {r["id"]: r for r in json.loads(cli.invoke(app, ["plan", str(toml), "--json"]).output)}
    assert rows["high-s1g3"]["status"] == "skipped (by user) → not launched"
    assert rows["high-s1g3"]["start_description"].startswith("skipped by user, never launched")

    bad = cli.invoke(app, ["skip", str(run.paths.run_dir), "nope"])
    assert bad.exit_code == 2 and bad.output.startswith("error: ") and bad.output.count("\n") == 1
    undo = cli.invoke(app, ["skip", str(run.paths.run_dir), "high-s1g3", "--undo"])
    assert undo.exit_code == 0 and "no longer skipped" in undo.output


def test_run_never_launches_a_skipped_step(run):
    for folder in run.paths.data_dirs:  # clips in place: the run does not generate them
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "clip.mp4").write_bytes(b"")
    all_done_but(run, "low-s2g3")
    assert Runner(run.cur, PlainDisplay(io.StringIO()), python="/bin/false").run() == EXIT_FAILED
    skip_step(run.paths.run_dir, "low-s2g3")
    out = io.StringIO()
    assert Runner(run.cur, PlainDisplay(out), python="/bin/false").run() == EXIT_OK  # /bin/false never runs
    text = out.getvalue()
    assert "7 done, 1 skipped by user, 0 to run" in text
    assert "low-s2g3: skip (by user)" in text
    assert "all 8 steps done or skipped (0 run now, 7 done before, 1 skipped by user)" in text
    assert run.ledger().get("low-s2g3").status == "skipped"


def test_skip_and_undo_work_on_a_folder_killed_between_step_end_and_the_archive(run):
    """Issue 9: the run was killed after high-s1g2's step_end, before its archive. `plan`
    and `status` show the next step starting from the archive the recovery will write,
    and skip / skip --undo of the next step work."""
    run.record("high-s1g2", status="running", pid=999999, started_at=time.time() - 5)
    run.checkpoint("high-s1g2", "final", epoch=2, finished=True)
    d = run.decisions()
    assert d["high-s1g2"].action is Action.SKIP and d["high-s1g2"].recovered
    assert d["high-s1g3"].start is StartKind.STAGE_LATEST_LR_RESET and not d["high-s1g3"].missing
    assert "next: high-s2g2" in skip_step(run.paths.run_dir, "high-s1g3")
    assert "no longer skipped" in skip_step(run.paths.run_dir, "high-s1g3", undo=True)
    assert not run.decisions()["high-s1g3"].missing


def test_skip_is_refused_while_a_trainer_of_the_step_lives_on_without_a_pid_in_the_ledger(run):
    import subprocess
    import sys

    from dcvc_bench.runner.launcher import child_env

    run.record("high-s1g2", status="running", pid=None, started_at=time.time())
    orphan = subprocess.Popen([sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True,
                              env=child_env(run_dir=run.paths.run_dir, step_id="high-s1g2"))
    try:
        assert orphan.stdout.readline().strip() == "up"
        with pytest.raises(UserError, match=f"its trainer \\(pid {orphan.pid}\\) is still alive"):
            skip_step(run.paths.run_dir, "high-s1g2")
    finally:
        orphan.kill()
        orphan.wait()
    assert run.ledger().get("high-s1g2").status == "running"
