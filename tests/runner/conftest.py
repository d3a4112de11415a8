"""A fabricated run folder for the runner's tests: a real curriculum (two tracks, two
stages of two GOPs), checkpoints written as the trainer leaves them (a ``.pth`` plus its
sidecar, via the real helpers), ledger records set as the runner sets them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dcvc_bench.checkpoints import atomic_write_bytes, write_sidecar
from dcvc_bench.curriculum import Curriculum, Step, expand, parse_curriculum, run_paths
from dcvc_bench.runner.ledger import LEDGER_FILE, Ledger
from dcvc_bench.runner.resume import Decision, decide, fingerprints, stage_checkpoint
from dcvc_bench.runner.archive import archive_final

CURRICULUM = """\
name = "t"
output_dir = "{out}"

[data.synthetic]
videos = 1
frames = 4
width = 32
height = 32

[model]
preset = "tiny"

[i_frame]
type = "opencv"

[train]
crop_size = 32
num_workers = 0
steps_per_epoch = 1
reset_learning_rate = 5e-5

[[tracks]]
name = "high"
lambda = 2048
quality_index = 4

[[tracks]]
name = "low"
lambda = {low_lambda}
quality_index = 3

[[stages]]
stage = 1
gops = [2, 3]
epochs = {stage1_epochs}

[[stages]]
stage = 2
gops = [2, 3]
epochs = 1

[accelerate]
device = "cpu"
"""


class FakeRun:
    """A run folder under ``root/runs/t`` and the curriculum it was run with."""

    def __init__(self, root: Path):
        self.root = root
        self.use()

    def text(self, low_lambda: int = 1024, stage1_epochs: str = "[2, 2]") -> str:
        return CURRICULUM.format(out=self.root / "runs", low_lambda=low_lambda, stage1_epochs=stage1_epochs)

    def use(self, **changes) -> Curriculum:
        """Switch to the curriculum with ``changes`` (an edited TOML)."""
        self.cur = parse_curriculum(self.text(**changes), source="t.toml")
        self.paths = run_paths(self.cur)
        self.steps = expand(self.cur, self.paths.data_dirs)
        self.fingerprints = fingerprints(self.cur, self.steps)
        return self.cur

    def freeze(self) -> None:
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        (self.paths.run_dir / "curriculum.toml").write_text(self.cur.source_text)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def ledger(self) -> Ledger:
        return Ledger.load(self.paths.run_dir / LEDGER_FILE)

    def record(self, step_id: str, **fields) -> None:
        """Set a ledger record as the runner does when it launches (hash + config)."""
        fp = self.fingerprints[step_id]
        fields = {"config_hash": fp.hash, "config": fp.config, "track": self.step(step_id).track,
                  "epochs": self.step(step_id).epochs, "attempts": 1, **fields}
        self.ledger().update(step_id, **fields)

    def checkpoint(self, step_id: str, kind: str, *, written_by: str | None = None, epoch: int = 1,
                   finished: bool = False, loss: float = 1.0, size: int = 64) -> Path:
        """A checkpoint of ``step_id``'s stage as the trainer writes it (``written_by``:
        the phase id in its sidecar; default the step's own)."""
        step = self.step(step_id)
        path = stage_checkpoint(self.paths, step, step.stage, kind)
        atomic_write_bytes(path, b"\0" * size)  # a new file, as the trainer's os.replace
        write_sidecar(path, {"step_id": written_by or step.phase_id, "stage": step.stage,
                             "gop_size": step.gop, "epoch": epoch, "epochs": step.epochs,
                             "finished": finished, "kind": kind, "loss": loss, "best_loss": loss,
                             "lr": 1e-4})
        return path

    def finish(self, step_id: str) -> None:
        """A step done as the runner records it: final written, archived, ledger done."""
        started = time.time()
        self.record(step_id, status="running", started_at=started)
        step = self.step(step_id)
        self.checkpoint(step_id, "latest", epoch=step.epochs)
        final = self.checkpoint(step_id, "final", epoch=step.epochs, finished=True)
        if step.stage == 1 and step.gop == 3:
            self.checkpoint(step_id, "best", epoch=step.epochs)
        archive_final(final, self.paths.final_checkpoint(step_id),
                      {"id": step_id, "config_hash": self.fingerprints[step_id].hash, "started_at": started})
        self.ledger().update(step_id, status="done", epochs_done=step.epochs, finished_at=time.time())

    def finish_all(self) -> None:
        for step in self.steps:
            self.finish(step.id)

    def decisions(self) -> dict[str, Decision]:
        return {d.step.id: d for d in decide(self.steps, self.ledger(), self.paths, self.fingerprints)}


@pytest.fixture
def fake_run(tmp_path) -> FakeRun:
    return FakeRun(tmp_path)
