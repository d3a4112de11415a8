"""The curriculum tree of a curriculum that trains its I-frame codec: the I-frame steps
under their own node, above the tracks and their stages, named by kind (not stage 0)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dcvc_bench.tui.app import BenchApp
from dcvc_bench.tui.model import RunModel
from dcvc_bench.tui.widgets.curriculum_tree import CurriculumTree
from tui_helpers import NOW, until

REPO = Path(__file__).resolve().parents[2]


def test_the_i_frame_steps_sit_in_an_i_frame_group_above_the_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/rvq-smoke is not there: every step pending
    model = RunModel.open(REPO / "curricula" / "rvq-smoke.toml", clock=lambda: NOW)
    rows = model.rows()
    assert [r.step.group for r in rows[:3]] == ["I-frame"] * 3
    assert model.checkpoint_prefix("iframe") == "iframe_rvq_"
    assert model.current_step() == "iframe-p2"  # the first to run

    async def main() -> None:
        app = BenchApp(model, clock=lambda: NOW)
        async with app.run_test(size=(120, 36)) as pilot:
            tree = app.screen.query_one(CurriculumTree)
            await until(pilot, lambda: tree.last_line >= 0 and "p2" in str(tree.get_node_at_line(2).label))
            labels = [str(tree.get_node_at_line(i).label) for i in range(tree.last_line + 1)]
            assert labels[0].startswith("· I-frame codec (rvq)") and labels[0].endswith("0/3")
            assert labels[1].startswith("· I-frame ") and labels[1].endswith("0/3")
            assert [label.split()[1] for label in labels[2:5]] == ["p2", "p4", "e2e"]
            assert "fresh" in labels[2] and "prev final" in labels[3]
            assert labels[5].startswith("· l256 λ256 q1") and labels[6].startswith("· stage 1")

    asyncio.run(main())


def test_the_i_frame_checkpoints_are_listed_step_by_step(tmp_path, monkeypatch):
    from dcvc_bench.checkpoints import atomic_write_bytes, iframe_checkpoint_path, write_sidecar
    from dcvc_bench.runner.archive import archive_final

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "runs" / "rvq-smoke" / "checkpoints" / "iframe"
    for tag in ("e2e", "p4", "p2"):  # written out of order
        for kind in ("final", "latest"):
            path = iframe_checkpoint_path(folder, "rvq", tag, kind)
            atomic_write_bytes(path, f"{tag} {kind}".encode())
            write_sidecar(path, {"step_id": tag, "kind": "iframe", "i_frame_type": "rvq", "epoch": 1, "loss": 0.5,
                                 "best_loss": 0.5, "finished": kind == "final"})
        if tag != "e2e":
            archive_final(iframe_checkpoint_path(folder, "rvq", tag, "final"),
                          tmp_path / "runs" / "rvq-smoke" / "steps" / f"iframe-{tag}" / "final.pth", {})
    model = RunModel.open(REPO / "curricula" / "rvq-smoke.toml", clock=lambda: NOW)
    model.poll()
    assert [(c.name, c.kind, c.step) for c in model.checkpoints("iframe")] == [
        ("p2_latest.pth", "latest", "p2"), ("p2_final.pth", "final", "p2"), ("iframe-p2/final.pth", "final", "p2"),
        ("p4_latest.pth", "latest", "p4"), ("p4_final.pth", "final", "p4"), ("iframe-p4/final.pth", "final", "p4"),
        ("e2e_latest.pth", "latest", "e2e"), ("e2e_final.pth", "final", "e2e")]
