"""Resume decisions on fabricated run folders: skip, the four start kinds with their exact
flags, config changes, and checkpoints whose sidecar cannot be trusted."""

from __future__ import annotations

import os
import time

from dcvc_bench.curriculum import StartKind, expand, parse_curriculum
from dcvc_bench.runner.resume import Action, decide, explain_change, fingerprint, stage_checkpoint


def test_fresh_folder_starts_every_step_as_planned(fake_run):
    d = fake_run.decisions()
    paths = fake_run.paths
    assert all(x.action is Action.RUN and x.reason == "not run yet" and not x.missing for x in d.values())
    assert d["high-s1g2"].start is StartKind.FRESH and d["high-s1g2"].start_flags == {}
    assert d["high-s1g3"].start is StartKind.STAGE_LATEST_LR_RESET
    assert d["high-s1g3"].start_flags == {"resume": str(paths.final_checkpoint("high-s1g2")),
                                          "force_learning_rate": 5e-5}
    best = stage_checkpoint(paths, fake_run.step("high-s2g2"), 1, "best")
    assert d["high-s2g2"].start is StartKind.PREVIOUS_STAGE_BEST
    assert d["high-s2g2"].start_flags == {"load_pretrained": str(best)}
    assert d["high-s2g2"].run_flags(paths) == {
        "checkpoint_dir": str(paths.checkpoints_dir("high")),
        "events_file": str(paths.events_file("high-s2g2")),
        "load_pretrained": str(best)}


def test_finished_step_is_skipped_and_the_next_resumes_its_archived_final_with_lr_reset(fake_run):
    fake_run.finish("high-s1g2")
    d = fake_run.decisions()
    assert d["high-s1g2"].action is Action.SKIP and d["high-s1g2"].reason == "done"
    nxt = d["high-s1g3"]
    assert nxt.action is Action.RUN and nxt.start is StartKind.STAGE_LATEST_LR_RESET
    assert nxt.start_flags["resume"] == str(fake_run.paths.final_checkpoint("high-s1g2"))
    assert nxt.start_flags["force_learning_rate"] == 5e-5
    assert d["low-s1g2"].action is Action.RUN


def test_interrupted_step_resumes_its_own_latest_without_lr_reset(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.record("high-s1g3", status="interrupted", epochs_done=1, started_at=time.time())
    latest = fake_run.checkpoint("high-s1g3", "latest", epoch=1)
    d = fake_run.decisions()["high-s1g3"]
    assert d.start is StartKind.RESUME_OWN_LATEST
    assert d.start_flags == {"resume": str(latest)}  # no --force_learning_rate
    assert d.reason == "interrupted at epoch 1/2"
    assert not d.stale


def test_running_step_of_a_killed_runner_resumes_like_an_interrupted_one(fake_run):
    fake_run.record("high-s1g2", status="running", pid=999999, started_at=time.time())
    latest = fake_run.checkpoint("high-s1g2", "latest", epoch=1)
    d = fake_run.decisions()["high-s1g2"]
    assert d.start is StartKind.RESUME_OWN_LATEST and d.start_flags == {"resume": str(latest)}


def test_latest_whose_sidecar_does_not_match_is_not_resumed_and_the_decision_says_so(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.record("high-s1g3", status="interrupted", started_at=time.time())
    latest = fake_run.checkpoint("high-s1g3", "latest", epoch=1)
    latest.unlink()
    latest.write_bytes(b"\1" * 100)  # replaced after its sidecar was written
    d = fake_run.decisions()["high-s1g3"]
    assert d.start is StartKind.STAGE_LATEST_LR_RESET
    assert "sidecar does not match" in d.note and latest.name in d.note
    assert "sidecar does not match" in d.describe()


def test_step_killed_before_its_first_epoch_starts_as_planned(fake_run):
    fake_run.finish("high-s1g2")  # the stage latest is still s1g2's
    fake_run.record("high-s1g3", status="interrupted", started_at=time.time())
    d = fake_run.decisions()["high-s1g3"]
    assert d.start is StartKind.STAGE_LATEST_LR_RESET and d.note == ""


def test_done_step_whose_archive_is_missing_is_rerun_with_later_steps(fake_run):
    fake_run.finish_all()
    os.unlink(fake_run.paths.final_checkpoint("high-s2g2"))
    d = fake_run.decisions()
    assert d["high-s2g2"].action is Action.RUN and "archived final" in d["high-s2g2"].reason
    assert d["high-s2g3"].action is Action.RUN
    assert d["high-s2g3"].reason == "an earlier step of this track re-runs (high-s2g2)"
    assert all(d[s].action is Action.SKIP for s in ("high-s1g2", "high-s1g3", "low-s2g2", "low-s2g3"))


def test_stage_change_falls_back_to_the_archived_final_when_the_best_is_missing(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.finish("high-s1g3")
    os.unlink(stage_checkpoint(fake_run.paths, fake_run.step("high-s1g3"), 1, "best"))
    d = fake_run.decisions()["high-s2g2"]
    assert d.start is StartKind.PREVIOUS_STAGE_BEST
    assert d.start_flags == {"load_pretrained": str(fake_run.paths.final_checkpoint("high-s1g3"))}
    assert "best.pth is missing" in d.note and not d.missing


def test_stage_change_with_no_previous_stage_checkpoint_names_what_is_missing(fake_run):
    # A curriculum that starts at stage 2 needs stage 1's best from the user.
    text = fake_run.text().replace("[[stages]]\nstage = 1\ngops = [2, 3]\nepochs = [2, 2]\n\n", "")
    cur = parse_curriculum(text)
    steps = expand(cur, fake_run.paths.data_dirs)
    first = decide(steps, fake_run.ledger(), fake_run.paths, {s.id: fingerprint(cur, s) for s in steps})[0]
    assert first.step.id == "high-s2g2" and first.start is StartKind.PREVIOUS_STAGE_BEST
    best = stage_checkpoint(fake_run.paths, first.step, 1, "best")
    assert first.missing == f"{best} (stage 1's best; put it into {best.parent})"
    assert "cannot start: missing" in first.describe()


def test_lambda_change_of_one_track_reruns_exactly_that_tracks_steps(fake_run):
    fake_run.finish_all()
    fake_run.use(low_lambda=512)
    d = fake_run.decisions()
    assert [s for s, x in d.items() if x.action is Action.RUN] == ["low-s1g2", "low-s1g3", "low-s2g2", "low-s2g3"]
    assert all(d[s].reason == "config changed (lambda 1024→512)" and d[s].stale
               for s in ("low-s1g2", "low-s1g3", "low-s2g2", "low-s2g3"))
    assert d["low-s1g2"].start is StartKind.FRESH


def test_config_change_reruns_the_changed_step_and_every_later_step_of_its_track(fake_run):
    fake_run.finish_all()
    fake_run.use(stage1_epochs="[2, 3]")  # only the s1g3 steps change
    d = fake_run.decisions()
    for track in ("high", "low"):
        assert d[f"{track}-s1g2"].action is Action.SKIP
        assert d[f"{track}-s1g3"].reason == "config changed (epochs 2→3)"
        assert d[f"{track}-s1g3"].start is StartKind.STAGE_LATEST_LR_RESET
        for later in ("s2g2", "s2g3"):
            assert d[f"{track}-{later}"].reason == f"an earlier step of this track re-runs ({track}-s1g3)"
            assert d[f"{track}-{later}"].stale


def test_changed_step_does_not_resume_a_latest_written_under_the_old_config(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.record("high-s1g3", status="interrupted", started_at=time.time())
    fake_run.checkpoint("high-s1g3", "latest", epoch=1)
    fake_run.use(stage1_epochs="[2, 3]")
    d = fake_run.decisions()["high-s1g3"]
    assert d.start is StartKind.STAGE_LATEST_LR_RESET and d.reason.startswith("config changed")


def test_step_finished_but_not_recorded_is_recognised_from_its_final_checkpoint(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.record("high-s1g3", status="running", started_at=time.time() - 5, pid=999999)
    final = fake_run.checkpoint("high-s1g3", "final", epoch=2, finished=True)
    d = fake_run.decisions()["high-s1g3"]
    assert d.action is Action.SKIP and d.recovered and d.recovered_from == final


def test_final_checkpoint_older_than_the_attempt_is_not_taken_as_finished(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.checkpoint("high-s1g3", "final", epoch=2, finished=True)
    fake_run.record("high-s1g3", status="running", started_at=time.time() + 5, pid=999999)
    assert fake_run.decisions()["high-s1g3"].action is Action.RUN


def test_archive_whose_sidecar_does_not_match_is_archived_again_from_the_steps_own_final(fake_run):
    fake_run.finish("high-s1g2")
    archive = fake_run.paths.final_checkpoint("high-s1g2")
    archive.unlink()
    archive.write_bytes(b"truncated")  # e.g. killed between the archive's .pth and its sidecar
    d = fake_run.decisions()["high-s1g2"]
    final = stage_checkpoint(fake_run.paths, fake_run.step("high-s1g2"), 1, "final")
    assert d.action is Action.SKIP and d.recovered and d.recovered_from == final


def test_archive_whose_sidecar_does_not_match_is_not_a_finished_step_once_its_final_is_gone(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.finish("high-s1g3")  # the next GOP step replaced the stage's final
    archive = fake_run.paths.final_checkpoint("high-s1g2")
    archive.unlink()
    archive.write_bytes(b"truncated")
    d = fake_run.decisions()["high-s1g2"]
    assert d.action is Action.RUN and "does not match its sidecar" in d.reason


def test_archive_changed_with_its_size_and_mtime_kept_is_caught_by_its_sha256(fake_run):
    fake_run.finish("high-s1g2")
    fake_run.finish("high-s1g3")
    archive = fake_run.paths.final_checkpoint("high-s1g2")
    st = archive.stat()
    with open(archive, "r+b") as fh:
        fh.write(b"\1")  # same size
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back
    step = fake_run.step("high-s1g2")
    fast = decide(fake_run.steps, fake_run.ledger(), fake_run.paths, fake_run.fingerprints)
    assert next(d for d in fast if d.step is step).action is Action.SKIP  # readers: size + mtime
    verified = decide(fake_run.steps, fake_run.ledger(), fake_run.paths, fake_run.fingerprints, verify=True)
    d = next(d for d in verified if d.step is step)
    assert d.action is Action.RUN and "sha256" in d.reason


def test_explain_change_names_the_changed_keys_most_edited_first():
    old = {"lambda_value": 2048.0, "epochs": 10, "batch_size": 4, "seed": 1, "crop_size": 256}
    new = {"lambda_value": 1024.0, "epochs": 12, "batch_size": 8, "seed": 2, "crop_size": 128}
    assert explain_change(old, new) == "lambda 2048→1024, epochs 10→12, batch_size 4→8, +2 more"
    assert explain_change({}, new) == "the ledger does not say what it was before"


def test_a_step_that_reads_another_tracks_artifact_re_runs_when_its_producer_runs(fake_run):
    """The seam of a new step kind (an I-frame step whose codec the P-frame steps read):
    a step that consumes an artifact of another track runs again when that producer runs,
    and the rest of its own track follows it."""
    import dataclasses

    from dcvc_bench.runner.resume import fingerprints

    i = next(k for k, s in enumerate(fake_run.steps) if s.id == "low-s1g2")
    fake_run.steps[i] = dataclasses.replace(fake_run.steps[i], consumes=("high:pframe",))
    fake_run.fingerprints = fingerprints(fake_run.cur, fake_run.steps)
    fake_run.finish_all()
    assert all(x.action is Action.SKIP for x in fake_run.decisions().values())
    fake_run.ledger().update("high-s2g3", config_hash="0" * 64)  # recorded with another config: it re-runs
    d = fake_run.decisions()
    assert d["high-s2g3"].action is Action.RUN and d["high-s2g3"].reason.startswith("config changed")
    assert d["low-s1g2"].action is Action.RUN and d["low-s1g2"].reason == "a step it consumes re-runs (high-s2g3)"
    assert d["low-s1g2"].stale
    # ... and so on down the chain (named by the step that started it)
    assert [d[f"low-{p}"].reason for p in ("s1g3", "s2g2", "s2g3")] == ["a step it consumes re-runs (high-s2g3)"] * 3
