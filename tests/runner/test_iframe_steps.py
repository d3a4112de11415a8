"""I-frame steps in a run folder, decided without launching anything: how each starts
(fresh, the previous I-frame step's archived final, its own latest after an interruption),
what the P-frame steps are given (the last I-frame step's archive), recovery, archives,
skips, edits; and a failed I-frame step stopping the run before any P-frame step.

Checkpoints are written as the I-frame recipe leaves them (the contract,
/work/notes/iframe_training.md): ``iframe_{type}_{tag}_{kind}.pth`` in
``checkpoints/iframe/`` with a sidecar that has at least ``epoch, loss, best_loss,
step_id (= tag), kind ("iframe"), i_frame_type`` — no ``finished`` field, so a ``final``
is known by its name. The runs that launch the real recipe are in test_iframe_runs.py
(the order of the steps, the flags each is given, SIGKILL and resume, GPUs) and
test_iframe_divergence.py (a diverging step rolled back); the real P-frame trainer
reading a trained codec from a fabricated folder is in test_iframe_pframe_e2e.py."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from dcvc_bench.checkpoints import atomic_write_bytes, read_meta, write_sidecar
from dcvc_bench.curriculum import StartKind, expand, parse_curriculum, run_paths
from dcvc_bench.runner.archive import archive_final
from dcvc_bench.runner.commands import plan_command, skip_step
from dcvc_bench.runner.display import PlainDisplay
from dcvc_bench.runner.ledger import LEDGER_FILE, Ledger
from dcvc_bench.runner.resume import Action, decide, fingerprints
from dcvc_bench.runner.run import EXIT_FAILED, Runner
from dcvc_bench.runner.status import open_run, plan_statuses

pytestmark = pytest.mark.timeout(120)

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

[iframe_training]
type = "rvq"
config = "tiny_rvq_f2"
strategy = "progressive_then_end_to_end"
depths = [2, 4]
epochs = {iframe_epochs}
crop_size = 32
steps_per_epoch = 1
learning_rate = {iframe_lr}

[i_frame]
type = "rvq"
layers = 4

[train]
crop_size = 32
num_workers = 0
steps_per_epoch = 1

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
gops = [2, 3]
epochs = 1

[accelerate]
device = "cpu"
"""
IFRAME = ("iframe-p2", "iframe-p4", "iframe-e2e")
PFRAME = ("high-s1g2", "high-s1g3", "low-s1g2", "low-s1g3")


class IFrameRun:
    def __init__(self, root: Path):
        self.root = root
        self.use()

    def text(self, iframe_epochs: str = "[1, 2, 1]", iframe_lr: str = "2e-4") -> str:
        return CURRICULUM.format(out=self.root / "runs", iframe_epochs=iframe_epochs, iframe_lr=iframe_lr)

    def use(self, **changes):
        self.cur = parse_curriculum(self.text(**changes), source="t.toml")
        self.paths = run_paths(self.cur)
        self.steps = expand(self.cur, self.paths.data_dirs)
        self.fingerprints = fingerprints(self.cur, self.steps)
        return self.cur

    def freeze(self) -> None:
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        (self.paths.run_dir / "curriculum.toml").write_text(self.cur.source_text)

    def step(self, step_id):
        return next(s for s in self.steps if s.id == step_id)

    def ledger(self) -> Ledger:
        return Ledger.load(self.paths.run_dir / LEDGER_FILE)

    def record(self, step_id: str, **fields) -> None:
        fp = self.fingerprints[step_id]
        fields = {"config_hash": fp.hash, "config": fp.config, "track": self.step(step_id).track,
                  "epochs": self.step(step_id).epochs, "attempts": 1, **fields}
        self.ledger().update(step_id, **fields)

    def checkpoint(self, step_id: str, kind: str, epoch: int = 1, written_by: str | None = None) -> Path:
        """One of a step's own checkpoints as its trainer writes it (I-frame: the contract's minimum sidecar)."""
        step = self.step(step_id)
        path = self.paths.own_checkpoint(step, kind)
        atomic_write_bytes(path, f"{step_id} {kind} {time.time_ns()}".encode())
        meta = {"step_id": written_by or step.phase_id, "epoch": epoch, "epochs": step.epochs, "loss": 0.5,
                "best_loss": 0.5, "lr": 1e-4}
        if step.is_iframe:
            meta.update(kind="iframe", i_frame_type="rvq")
        else:
            meta.update(stage=step.stage, gop_size=step.gop, finished=kind == "final", kind=kind)
        write_sidecar(path, meta)
        return path

    def finish(self, step_id: str) -> None:
        started = time.time()
        self.record(step_id, status="running", started_at=started)
        step = self.step(step_id)
        self.checkpoint(step_id, "latest", step.epochs)
        final = self.checkpoint(step_id, "final", step.epochs)
        if not step.is_iframe:
            self.checkpoint(step_id, "best", step.epochs)
        archive_final(final, self.paths.final_checkpoint(step_id),
                      {"id": step_id, "config_hash": self.fingerprints[step_id].hash, "started_at": started})
        self.ledger().update(step_id, status="done", epochs_done=step.epochs, finished_at=time.time())

    def decisions(self):
        return {d.step.id: d for d in decide(self.steps, self.ledger(), self.paths, self.fingerprints)}


@pytest.fixture
def irun(tmp_path) -> IFrameRun:
    return IFrameRun(tmp_path)


def test_fresh_folder_first_i_frame_step_fresh_then_each_loads_the_previous_archive(irun):
    d = irun.decisions()
    paths = irun.paths
    assert d["iframe-p2"].start is StartKind.FRESH and d["iframe-p2"].start_flags == {}
    assert d["iframe-p2"].run_flags(paths) == {"checkpoint_dir": str(paths.run_dir / "checkpoints" / "iframe"),
                                               "events_file": str(paths.events_file("iframe-p2"))}
    for step_id, before in (("iframe-p4", "iframe-p2"), ("iframe-e2e", "iframe-p4")):
        assert d[step_id].start is StartKind.PREVIOUS_STEP_FINAL and not d[step_id].missing
        assert d[step_id].start_flags == {"load_pretrained": str(paths.final_checkpoint(before))}
        assert d[step_id].how() == f"previous step's final, weights only (fresh optimizers; {before}/final.pth)"
    archive = str(paths.final_checkpoint("iframe-e2e"))
    for step_id in PFRAME:
        assert d[step_id].input_flags == {"vqgan_checkpoint": archive} and not d[step_id].missing
        assert d[step_id].run_flags(paths)["vqgan_checkpoint"] == archive


def test_finished_i_frame_steps_are_skipped_by_their_archive_without_a_finished_field(irun):
    irun.finish("iframe-p2")
    meta = read_meta(irun.paths.final_checkpoint("iframe-p2"))
    assert "finished" not in meta and meta["kind"] == "iframe" and meta["step_id"] == "p2"
    d = irun.decisions()
    assert d["iframe-p2"].action is Action.SKIP and d["iframe-p2"].reason == "done"
    assert d["iframe-p4"].start_flags == {"load_pretrained": str(irun.paths.final_checkpoint("iframe-p2"))}


def test_an_interrupted_i_frame_step_resumes_its_own_latest(irun):
    irun.finish("iframe-p2")
    irun.record("iframe-p4", status="interrupted", epochs_done=1, started_at=time.time())
    latest = irun.checkpoint("iframe-p4", "latest", epoch=1)
    assert latest == irun.paths.run_dir / "checkpoints" / "iframe" / "iframe_rvq_p4_latest.pth"
    d = irun.decisions()["iframe-p4"]
    assert d.start is StartKind.RESUME_OWN_LATEST and d.start_flags == {"resume": str(latest)}
    assert d.reason == "interrupted at epoch 1/2"
    # Another step's latest (same folder, its own name) is never taken for this one's.
    irun.checkpoint("iframe-e2e", "latest", written_by="p4")
    assert irun.decisions()["iframe-e2e"].start is StartKind.PREVIOUS_STEP_FINAL


def test_an_i_frame_step_that_finished_unrecorded_is_archived_from_its_final(irun):
    irun.finish("iframe-p2")
    irun.record("iframe-p4", status="running", pid=999999, started_at=time.time() - 5)
    irun.checkpoint("iframe-p4", "latest", epoch=2)
    irun.checkpoint("iframe-p4", "final", epoch=2)
    d = irun.decisions()["iframe-p4"]
    assert d.action is Action.SKIP and d.recovered and d.recovered_from == irun.paths.own_checkpoint(
        irun.step("iframe-p4"), "final")
    assert irun.decisions()["iframe-e2e"].start_flags["load_pretrained"] == \
        str(irun.paths.final_checkpoint("iframe-p4"))


def test_editing_iframe_training_re_runs_the_i_frame_steps_and_every_later_step(irun):
    for step_id in (*IFRAME, *PFRAME):
        irun.finish(step_id)
    irun.freeze()
    assert all(d.action is Action.SKIP for d in irun.decisions().values())
    irun.use(iframe_lr="1e-4")
    d = irun.decisions()
    assert all(d[s].action is Action.RUN for s in (*IFRAME, *PFRAME))
    assert d["iframe-p2"].reason.startswith("config changed (learning_rate 0.0002→0.0001")
    assert d["high-s1g2"].reason.startswith("config changed (")  # its input's hash changed
    # Only the first I-frame step's epochs: it re-runs, and everything after it by the lineage rule.
    irun.use()
    irun.use(iframe_epochs="[2, 2, 1]")
    d = irun.decisions()
    assert d["iframe-p2"].reason.startswith("config changed (epochs 1→2")
    assert d["iframe-p4"].reason == "an earlier step of this track re-runs (iframe-p2)"
    assert d["high-s1g2"].reason == "a step it consumes re-runs (iframe-p2)"
    assert all(d[s].action is Action.RUN for s in (*IFRAME, *PFRAME))


def test_plan_and_status_show_the_i_frame_steps_and_every_later_step_as_will_re_run(irun, tmp_path, capsys):
    from dcvc_bench.tui.model import RunModel

    for step_id in (*IFRAME, *PFRAME):
        irun.finish(step_id)
    irun.freeze()
    edited = tmp_path / "t.toml"
    edited.write_text(irun.text(iframe_lr="1e-4"))
    assert plan_command(edited) == 0
    out = capsys.readouterr().out
    for step_id in (*IFRAME, *PFRAME):
        line = next(line for line in out.splitlines() if f" {step_id} " in line)
        assert "done → run (" in line, line
    (irun.paths.run_dir / "curriculum.toml").write_text(edited.read_text())  # as `run` freezes it
    statuses = plan_statuses(open_run(irun.paths.run_dir))
    assert all(statuses[s].startswith("done → run (") for s in (*IFRAME, *PFRAME))
    rows = RunModel.open(irun.paths.run_dir).rows()
    assert [r.step.id for r in rows] == [*IFRAME, *PFRAME]
    assert {r.state for r in rows} == {"will re-run"}


def test_skipping_the_last_i_frame_step_gives_the_p_frame_steps_the_one_before(irun):
    for step_id in ("iframe-p2", "iframe-p4"):
        irun.finish(step_id)
    irun.freeze()
    skip_step(irun.paths.run_dir, "iframe-e2e")
    d = irun.decisions()
    assert d["iframe-e2e"].user_skipped
    assert d["high-s1g2"].input_flags == {"vqgan_checkpoint": str(irun.paths.final_checkpoint("iframe-p4"))}
    assert not d["high-s1g2"].missing
    for step_id in ("iframe-p2", "iframe-p4"):  # done steps cannot be skipped: start over without them
        irun.ledger().update(step_id, status="skipped")
    d = irun.decisions()
    assert d["high-s1g2"].missing.startswith("iframe:codec (every step that produces it is skipped")


def test_a_p_frame_step_is_blocked_when_its_codecs_archive_is_gone_and_nothing_rewrites_it(irun):
    for step_id in IFRAME:
        irun.finish(step_id)
    irun.ledger().update("iframe-e2e", status="skipped")  # so it does not re-run
    irun.paths.final_checkpoint("iframe-p4").unlink()
    irun.ledger().update("iframe-p4", status="skipped")
    archive = irun.paths.final_checkpoint("iframe-p2")
    assert irun.decisions()["low-s1g2"].input_flags == {"vqgan_checkpoint": str(archive)}
    archive.unlink()
    irun.ledger().update("iframe-p2", status="skipped")
    assert irun.decisions()["low-s1g2"].missing.startswith("iframe:codec")


# ---------------------------------------------------------------- the runner
# Runs with the real recipe and the real P-frame trainer: test_iframe_runs.py (order,
# flags, kill and resume, GPUs) and test_iframe_divergence.py (roll-back).


def test_a_failed_i_frame_step_stops_the_run_before_any_p_frame_step(irun):
    # A launch that fails at once (the interpreter is /bin/false): no trainer ever runs.
    irun.cur = parse_curriculum(irun.text() + "\n[failure]\nretries = 0\n", source="t.toml")
    out = io.StringIO()
    code = Runner(irun.cur, PlainDisplay(out), python="/bin/false", stop_grace_s=5).run()
    assert code == EXIT_FAILED
    ledger = irun.ledger()
    assert ledger.get("iframe-p2").status == "failed"
    assert all(ledger.get(s).status == "pending" for s in PFRAME)
    assert "not started: the steps of high, low" in out.getvalue()
