"""I-frame steps in real runs (the real recipe and the real P-frame trainer under `accelerate
launch`, started by `dcvc-bench run`): one run folder, three runs, every assertion on it.

The curriculum: an RVQ codec (tiny, f=2, 8 layers) trained progressively, iframe-p2 (1
epoch), iframe-p4 (2 epochs, layers 1-2 frozen), iframe-e2e (1 epoch), the discriminator
on from each step's second iteration; then two tracks of stage 1 at GOP 2 coding their
I-frames with the trained codec, ``high`` at 4 layers and ``low`` at 2.

1. `run`, SIGKILL of the whole tree just after the runner recorded iframe-p2 done
   (``kill-tree@ledger:after-done``, :mod:`dcvc_bench.faults`);
2. `run`, SIGKILL of the whole tree just after iframe-p4's ``latest`` of its first epoch
   (``kill-tree@event:checkpoint:latest``: iframe-p2 is skipped, so it is iframe-p4's);
3. `run --gpus 0,1` (``device = "auto"``): it completes. On a machine without GPUs the
   steps run on the CPU all the same; what is checked is what the runner gave each step
   (``--gpu_ids``, in each launch's header in its ``stdout.log``) and when it started it.

Issue 12's Done-when: SIGKILL during the I-frame step, then `run` again: it resumes from
its latest (same epoch counter, both optimizers, codebooks), finished steps untouched, and
the P-frame steps start only after it is done."""

from __future__ import annotations

import os
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_e2e_smoke import dcvc_bench_run, finish

from dcvc_bench.checkpoints import iframe_checkpoint_path, read_meta
from dcvc_bench.events import read_events
from dcvc_bench.faults import ENV
from dcvc_bench.runner.launcher import run_groups
from dcvc_bench.runner.ledger import Ledger

pytestmark = pytest.mark.timeout(1200)

CURRICULUM = """\
name = "t"

[data.synthetic]
videos = 1
frames = 4
width = 32
height = 32

[model]
preset = "tiny"

[iframe_training]
type = "rvq"
config = "tiny_rvq_f2"
strategy = "progressive_then_end_to_end"
depths = [2, 4]
epochs = [1, 2, 1]
batch_size = 2
crop_size = 32
steps_per_epoch = 2
learning_rate = 2e-4
disc_start = 1

[i_frame]
type = "rvq"
layers = 4

[train]
batch_size = 1
crop_size = 32
num_workers = 0
steps_per_epoch = 1
eval_max_frames = 2

[[tracks]]
name = "high"
lambda = 2048
quality_index = 4

[[tracks]]
name = "low"
lambda = 256
quality_index = 1
i_frame_layers = 2

[[stages]]
stage = 1
gops = [2]
epochs = 1

[accelerate]
device = "auto"
"""
IFRAME = ("iframe-p2", "iframe-p4", "iframe-e2e")
PFRAME = ("high-s1g2", "low-s1g2")
FROZEN = [f"quantize.layers.{i}._codebook.{name}" for i in (0, 1) for name in ("embed", "embed_avg", "cluster_size")]


@dataclass
class Folder:
    """The run folder after the three runs, and what the test saw between them."""

    root: Path
    codes: list[int] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    statuses: list[dict[str, str]] = field(default_factory=list)  # the ledger after each run
    p2_archive: Any = None   # os.stat of iframe-p2's archive after run 1
    p2_events: int = 0       # the size of its events file then
    latest: dict[str, Any] = field(default_factory=dict)  # iframe-p4's latest after run 2 (torch.load)
    latest_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / "t"

    def events(self, step_id: str) -> list[dict]:
        path = self.run_dir / "steps" / step_id / "events.jsonl"
        return read_events(path) if path.exists() else []

    def attempts(self, step_id: str) -> list[list[dict]]:
        attempts: list[list[dict]] = []
        for event in self.events(step_id):
            if event["event"] == "step_start":
                attempts.append([])
            if attempts:
                attempts[-1].append(event)
        return attempts

    def launches(self, step_id: str) -> list[list[str]]:
        """The argv of each launch of a step, from the headers the runner writes into its log."""
        log = self.run_dir / "steps" / step_id / "stdout.log"
        return [shlex.split(line.split(" ", 3)[3]) for line in log.read_text().splitlines()
                if line.startswith("=== ")]

    def path(self, text: str) -> Path:
        """A path as the runner passes it (relative to the folder `run` ran in)."""
        return (self.root / text).resolve()

    def archive(self, step_id: str) -> Path:
        return (self.run_dir / "steps" / step_id / "final.pth").resolve()


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _module(argv: list[str]) -> str:
    """The module accelerate launches (after the last ``-m``; the first is accelerate's own)."""
    return argv[len(argv) - argv[::-1].index("-m")]


def _run(folder: Folder, *args: str, fault: str | None = None) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if fault:
            mp.setenv(ENV, fault)
        else:
            mp.delenv(ENV, raising=False)
        proc = dcvc_bench_run(folder.root, "t.toml", *args)
    folder.codes.append(finish(proc, timeout=900))
    folder.outputs.append(proc.log_path.read_text())
    ledger = Ledger.load(folder.run_dir / "ledger.json")
    folder.statuses.append({sid: (ledger.get(sid).status if ledger.get(sid) else "pending")
                            for sid in (*IFRAME, *PFRAME)})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Folder:
    import torch

    root = tmp_path_factory.mktemp("iframe-runs")
    (root / "t.toml").write_text(CURRICULUM)
    folder = Folder(root)
    try:
        _run(folder, fault="kill-tree@ledger:after-done")
        archive = folder.run_dir / "steps" / "iframe-p2" / "final.pth"
        if archive.exists():
            folder.p2_archive = os.stat(archive)
            folder.p2_events = (folder.run_dir / "steps" / "iframe-p2" / "events.jsonl").stat().st_size
        _run(folder, fault="kill-tree@event:checkpoint:latest")
        latest = iframe_checkpoint_path(folder.run_dir / "checkpoints" / "iframe", "rvq", "p4", "latest")
        if latest.exists():
            folder.latest_meta = read_meta(latest, verify=True) or {}
            folder.latest = torch.load(latest, map_location="cpu", weights_only=True)
        _run(folder, "--gpus", "0,1")
        yield folder
    finally:
        for pgid in run_groups(folder.run_dir):  # only processes started for this folder
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _steps(optimizer_state: dict) -> set[int]:
    """Adam's step count of each parameter (one value when all were stepped alike)."""
    return {int(s["step"]) for s in optimizer_state["state"].values()}


def test_sigkill_during_an_i_frame_step_then_run_resumes_it_from_its_latest(folder):
    import torch

    assert folder.codes == [-signal.SIGKILL, -signal.SIGKILL, 0], folder.outputs
    # Run 1 ended just after iframe-p2 was recorded done; run 2 inside iframe-p4's first
    # epoch's end: its latest holds epoch 1 (of 2), nothing of a P-frame step had started.
    assert folder.statuses[0]["iframe-p2"] == "done" and folder.p2_archive is not None
    assert {folder.statuses[0][s] for s in (*IFRAME[1:], *PFRAME)} == {"pending"}
    assert folder.statuses[1]["iframe-p4"] == "running"  # as a killed runner leaves it
    assert {folder.statuses[1][s] for s in (IFRAME[2], *PFRAME)} == {"pending"}
    meta = folder.latest_meta
    assert meta["step_id"] == "p4" and meta["epoch"] == 1 and meta["finished"] is False
    assert all(folder.statuses[2][s] == "done" for s in (*IFRAME, *PFRAME)), folder.statuses[2]

    # The killed step resumed from its own latest: the same file, epoch and iteration counters, LR.
    killed, resumed = folder.attempts("iframe-p4")
    assert not any(e["event"] == "step_end" for e in killed)  # the kill cut it short
    assert [e["epoch"] for e in killed if e["event"] == "checkpoint" and e["kind"] == "latest"] == [1]
    start = resumed[0]
    latest = iframe_checkpoint_path(folder.run_dir / "checkpoints" / "iframe", "rvq", "p4", "latest")
    assert folder.path(start["resumed_from"]) == latest.resolve()
    assert (start["start_mode"], start["start_epoch"], start["iteration"]) == ("continue", 1, folder.latest["iteration"])
    assert start["lr_reset"] is False and start["lr"] == pytest.approx(folder.latest["lr"])
    assert folder.latest["iteration"] == 2 and folder.latest["epoch"] == 1
    assert "own latest: continue (same epoch counter, optimizer, LR; iframe_rvq_p4_latest.pth)" in folder.outputs[2]
    assert [e["status"] for e in resumed if e["event"] == "step_end"] == ["done"]

    # ... with both optimizers' states and the codebooks of that latest: the resumed step's
    # final continues its Adam step counts (2 iterations of the first epoch, then 2 more; the
    # discriminator's from iteration 1 on) where fresh optimizers would have counted 2 and 2,
    # and the codebooks frozen in p4 (layers 1-2) are those of the latest, bit for bit.
    final = torch.load(folder.archive("iframe-p4"), map_location="cpu", weights_only=True)
    assert (final["epoch"], final["iteration"]) == (2, 4)
    assert _steps(folder.latest["optimizer_state_dict"]) == {2} and _steps(final["optimizer_state_dict"]) == {4}
    assert _steps(folder.latest["disc_optimizer_state_dict"]) == {1}
    assert _steps(final["disc_optimizer_state_dict"]) == {3}
    for key in FROZEN:
        assert torch.equal(final["state_dict"][key], folder.latest["state_dict"][key]), key
    assert all(bool(final["state_dict"][f"quantize.layers.{i}._codebook.initted"]) for i in range(4))

    # The step that finished before the kills was not run again.
    assert len(folder.attempts("iframe-p2")) == 1
    again = os.stat(folder.run_dir / "steps" / "iframe-p2" / "final.pth")
    assert (again.st_ino, again.st_mtime_ns) == (folder.p2_archive.st_ino, folder.p2_archive.st_mtime_ns)
    assert (folder.run_dir / "steps" / "iframe-p2" / "events.jsonl").stat().st_size == folder.p2_events
    assert "[1/5] iframe-p2: skip (done)" in folder.outputs[1] and "[1/5] iframe-p2: skip (done)" in folder.outputs[2]

    # The P-frame steps started only after every I-frame step had ended done.
    i_frame_ends = [e["t"] for s in IFRAME for e in folder.events(s) if e["event"] == "step_end"]
    p_frame_starts = [e["t"] for s in PFRAME for e in folder.events(s) if e["event"] == "step_start"]
    assert len(p_frame_starts) == len(PFRAME) and min(p_frame_starts) > max(i_frame_ends)
    ledger = Ledger.load(folder.run_dir / "ledger.json")
    assert min(ledger.get(s).started_at for s in PFRAME) > max(ledger.get(s).finished_at for s in IFRAME)

    for pth in [*folder.run_dir.glob("checkpoints/*/*.pth"), *folder.run_dir.glob("steps/*/final.pth")]:
        assert read_meta(pth, verify=True) is not None, f"{pth} does not match its sidecar"
        torch.load(pth, map_location="cpu", weights_only=True)
    assert not list(folder.run_dir.rglob(".*.tmp")), "temp files left behind"


def test_each_i_frame_step_starts_from_the_one_before_and_the_p_frame_steps_code_with_the_last(folder):
    assert folder.codes[-1] == 0, folder.outputs[-1]
    (p2,) = folder.launches("iframe-p2")
    assert _module(p2) == "dcvc_bench.train.iframe"
    assert _flag(p2, "--resume") is None and _flag(p2, "--load_pretrained") is None  # fresh
    assert (_flag(p2, "--rvq_train_layers"), _flag(p2, "--step_tag")) == ("2", "p2")
    first, again = folder.launches("iframe-p4")
    assert folder.path(_flag(first, "--load_pretrained")) == folder.archive("iframe-p2")
    assert (_flag(first, "--rvq_train_layers"), _flag(first, "--rvq_frozen_layers")) == ("4", "2")
    assert _flag(again, "--load_pretrained") is None and _flag(again, "--force_learning_rate") is None
    assert folder.path(_flag(again, "--resume")) == folder.path(_flag(first, "--checkpoint_dir")) / "iframe_rvq_p4_latest.pth"
    (e2e,) = folder.launches("iframe-e2e")
    assert _module(e2e) == "dcvc_bench.train.iframe"
    assert folder.path(_flag(e2e, "--load_pretrained")) == folder.archive("iframe-p4")
    assert _flag(e2e, "--rvq_train_layers") is None  # every layer
    codec = folder.archive("iframe-e2e")
    assert read_meta(codec, verify=True)["step_id"] == "e2e"
    for step_id in PFRAME:
        (argv,) = folder.launches(step_id)
        depth = "2" if step_id.startswith("low") else "4"
        assert _module(argv) == "dcvc_bench.train"
        assert folder.path(_flag(argv, "--vqgan_checkpoint")) == codec and _flag(argv, "--rvq_layers") == depth
        # The real P-frame trainer coded its I-frames with that codec at that depth.
        meta = read_meta(folder.archive(step_id), verify=True)
        assert folder.path(meta["i_frame"]["checkpoint"]) == codec and meta["i_frame"]["layers"] == int(depth)


def test_with_gpus_the_i_frame_steps_run_first_on_one_gpu_then_the_tracks_in_parallel(folder):
    assert folder.codes[-1] == 0, folder.outputs[-1]
    assert _flag(folder.launches("iframe-p4")[-1], "--gpu_ids") == "0"  # run 3's launches
    assert _flag(folder.launches("iframe-e2e")[-1], "--gpu_ids") == "0"
    assert _flag(folder.launches("iframe-p2")[0], "--gpu_ids") is None  # run 1: no --gpus
    gpus = {track: _flag(folder.launches(f"{track}-s1g2")[0], "--gpu_ids") for track in ("high", "low")}
    assert set(gpus.values()) == {"0", "1"}, gpus  # the two tracks, one GPU each
    # ... at the same time: each track's first step started before the other's ended.
    start = {s: folder.events(s)[0]["t"] for s in ("high-s1g2", "low-s1g2")}
    end = {s: folder.events(s)[-1]["t"] for s in ("high-s1g2", "low-s1g2")}
    assert start["high-s1g2"] < end["low-s1g2"] and start["low-s1g2"] < end["high-s1g2"]
