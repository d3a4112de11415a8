"""Which checkpoints `dcvc-bench eval --checkpoint RUN` evaluates (eval/targets.py)."""

from __future__ import annotations

from pathlib import Path

from dcvc_bench.checkpoints import checkpoint_name, iframe_checkpoint_name
from dcvc_bench.eval.targets import resolve_targets


def test_a_runs_trained_iframe_codec_folder_is_not_taken_for_a_track(tmp_path: Path):
    run = tmp_path / "runs" / "rvq"
    (run / "checkpoints" / "iframe").mkdir(parents=True)
    (run / "checkpoints" / "l256").mkdir()
    (run / "checkpoints" / "iframe" / iframe_checkpoint_name("rvq", "e2e", "final")).write_bytes(b"x")
    track_final = run / "checkpoints" / "l256" / checkpoint_name(256, 1, 2, "final")
    track_final.write_bytes(b"x")

    targets, notes = resolve_targets([run], tmp_path / "runs")

    assert [(t.path, t.track) for t in targets] == [(track_final, "l256")]
    assert len(notes) == 1 and "trained I-frame codec" in notes[0] and "eval-iframe" in notes[0]
    assert not any("no final or best checkpoint" in n for n in notes)
