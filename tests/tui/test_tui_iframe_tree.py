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
            assert "fresh" in labels[2] and labels[3].endswith(" final")
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


def _events(path: Path, *events: dict) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"v": 1, "t": NOW, **e}) + "\n" for e in events))


def test_an_i_frame_steps_losses_codebook_use_and_depths_are_charted_and_listed(tmp_path, monkeypatch):
    """The I-frame step's own events (events.IFRAME_EVENT_FIELDS): its loss terms and GAN
    losses as chart lines, codebook use per RVQ layer against epochs, one evaluation row
    per depth with the uniform BPP; P-frame-only runs keep the five P-frame charts."""
    from dcvc_bench.tui.views import GROUPS_BY_KEY, PFRAME_GROUPS, metric_groups

    monkeypatch.chdir(tmp_path)
    model = RunModel.open(REPO / "curricula" / "rvq-smoke.toml", clock=lambda: NOW)
    train = {"event": "train", "step": "e2e", "iters_per_epoch": 4, "loss": 0.2, "rec_loss": 0.19,
             "perceptual_loss": None, "codebook_loss": 0.01, "g_loss": None, "d_loss": None}
    _events(model.run_dir / "steps" / "iframe-e2e" / "events.jsonl",
            {**train, "epoch": 0, "iter": 1},
            {**train, "epoch": 0, "iter": 2, "g_loss": 0.17, "d_loss": 0.11},
            {"event": "codebook", "step": "e2e", "epoch": 1, "iter": 4,
             "layers": [{"layer": 0, "usage": 95.3, "perplexity": 50.5, "dead": 3},
                        {"layer": 1, "usage": 40.0, "perplexity": 20.0, "dead": 38}]},
            {"event": "eval", "step": "e2e", "epoch": 1, "psnr": 12.3, "bpp": 0.1875, "rd_loss": 0.19,
             "depths": [{"layers": 2, "psnr": 12.1, "bpp_uniform": 0.0469, "bpp_entropy": 0.05},
                        {"layers": 8, "psnr": 12.3, "bpp_uniform": 0.1875, "bpp_entropy": 0.2}]})
    model.poll()

    assert metric_groups(model.steps) != PFRAME_GROUPS
    loss = model.step_chart("iframe-e2e", GROUPS_BY_KEY["loss"]).lines
    assert loss["rec_loss"] == ([0.25, 0.5], [0.19, 0.19]) and loss["perceptual_loss"] == ([], [])
    gan = model.step_chart("iframe-e2e", GROUPS_BY_KEY["gan"]).lines
    assert gan["d_loss"] == ([0.5], [0.11])  # only from the discriminator's start
    use = model.step_chart("iframe-e2e", GROUPS_BY_KEY["codebook"]).lines
    assert use == {"L1": ([1.0], [95.3]), "L2": ([1.0], [40.0])}
    rows = model.eval_rows("iframe")
    assert [(r.model, r.psnr, r.bpp, r.rd_loss) for r in rows] == [("L2", 12.1, 0.0469, None),
                                                                  ("L8", 12.3, 0.1875, 0.19)]
    assert rows[1].best
