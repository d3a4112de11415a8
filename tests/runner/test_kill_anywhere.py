"""Kill anywhere (issue 9): one run folder, the smallest curriculum that crosses an epoch
boundary, a GOP increase and a stage change (s1g2 for 2 epochs, s1g3, s2g2), and one
`dcvc-bench run` per fault point of :mod:`dcvc_bench.faults`, each continuing the folder
the previous kill left. The points: the whole tree just after each event kind
(``step_start``, ``checkpoint``, ``step_end``), between a ``.pth`` replace and its
sidecar, just before / inside / after the archive, just before / after the ledger
records a step done; the runner only (just after ``step_start``, and just after
launching, before the step's pid is in the ledger); the trainer only, between a
``.pth`` and its sidecar (the runner retries it).

After each kill the test checks that the kill hit its window (the state it leaves is
there: a stale sidecar, an unarchived final, an orphaned trainer...), that no finished
step started again and that a resumed step lost at most the epoch in progress. The last
run has to complete; then every ``.pth`` loads with ``weights_only=True`` and matches
its sidecar by content, no temp file is left, and no process of the run is alive.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from test_e2e_smoke import KILLABLE, dcvc_bench_run, finish

from dcvc_bench.checkpoints import read_meta
from dcvc_bench.events import read_events
from dcvc_bench.faults import ENV
from dcvc_bench.runner.launcher import run_groups
from dcvc_bench.runner.ledger import Ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

#: In order: each run is killed at its point; the folder carries over to the next run.
FAULTS = [
    "kill-tree@event:step_start",          # s1g2 starting: nothing saved yet
    "kill-tree@event:checkpoint:latest",   # s1g2 after epoch 1's latest
    "kill-tree@sidecar:*_latest.pth",      # s1g2 epoch 2's latest replaced, its sidecar not
    "kill-tree@event:step_end",            # s1g2 ended, not archived (the window)
    "kill-tree@archive:before",            # ... the next run's recovery, before the archive
    "kill-tree@archive:linked",            # ... archive in place, its sidecar not
    "kill-tree@ledger:before-done",        # ... archived, the ledger not told
    "kill-tree@ledger:after-done",         # ... recorded done
    "kill-runner@event:step_start",        # s1g3 starts; its trainer trains on, an orphan
    "kill-runner@launched",                # s1g3 again, its pid not yet in the ledger
    "kill-trainer@sidecar:*_latest.pth",   # every trainer dies once, the runner retries: completes
]


def _groups_killer(run_dir: Path):
    def kill() -> None:
        for pgid in run_groups(run_dir):  # only processes started for this test's folder
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return kill


def _attempts(events: Path) -> list[list[dict]]:
    attempts: list[list[dict]] = []
    for event in read_events(events):
        if event["event"] == "step_start":
            attempts.append([])
        if attempts:
            attempts[-1].append(event)
    return attempts


def check_history(run_dir: Path) -> None:
    """No finished step started again; every resumed attempt began at or after the last
    epoch its earlier attempts saved (at most the epoch in progress was lost)."""
    for events in sorted(run_dir.glob("steps/*/events.jsonl")):
        saved, done = -1, False
        for n, attempt in enumerate(_attempts(events)):
            start = attempt[0]
            assert not done, f"{events.parent.name} started again after it finished"
            if n and saved >= 0:
                assert start["start_epoch"] >= saved, f"{events.parent.name} lost more than an epoch"
                assert start["lr_reset"] is False and start["resumed_from"].endswith("_latest.pth")
            for e in attempt:
                if e["event"] == "checkpoint" and e["kind"] == "latest":
                    saved = max(saved, e["epoch"])
                done = done or (e["event"] == "step_end" and e["status"] == "done")


def check_window(spec: str, run_dir: Path) -> None:
    """The kill left the state its point names (so the harness reached that window)."""
    ledger = Ledger.load(run_dir / "ledger.json")
    archives = {p.parent.name: p for p in run_dir.glob("steps/*/final.pth")}
    point = spec.split("@", 1)[1]
    if point.startswith("sidecar:"):
        assert any(read_meta(p) is None for p in run_dir.glob("checkpoints/*/*_latest.pth")), \
            "no latest with a stale sidecar"
    elif point == "event:step_end" or point == "archive:before":
        ended = [e.parent.name for e in run_dir.glob("steps/*/events.jsonl")
                 if any(x["event"] == "step_end" and x["status"] == "done" for x in read_events(e))]
        assert any(sid not in archives for sid in ended), "every ended step is archived"
    elif point == "archive:linked":
        assert any(read_meta(p) is None for p in archives.values()), "no archive without its sidecar"
    elif point == "ledger:before-done":
        assert any(read_meta(p, verify=True) is not None and ledger.get(sid).status != "done"
                   for sid, p in archives.items()), "no archived step the ledger misses"
    elif point == "ledger:after-done":
        assert all(ledger.get(sid).status == "done" for sid in archives)
    if spec.startswith("kill-runner"):
        assert run_groups(run_dir), "the runner's trainer did not outlive it"
    if point == "launched":
        assert any(r.status == "running" and r.pid is None for r in ledger.records.values())


def test_sigkill_at_every_named_point_then_run_completes_the_curriculum(tmp_path, monkeypatch, request):
    (tmp_path / "kill.toml").write_text(KILLABLE)
    run_dir = tmp_path / "runs" / "kill"
    request.addfinalizer(_groups_killer(run_dir))
    t0 = time.monotonic()
    outputs = []
    for spec in FAULTS:
        monkeypatch.setenv(ENV, spec)
        proc = dcvc_bench_run(tmp_path, "kill.toml")
        monkeypatch.delenv(ENV)
        code = finish(proc, timeout=600)
        outputs.append(proc.log_path.read_text())
        print(f"{spec}: exit {code} after {time.monotonic() - t0:.0f}s")
        if spec is FAULTS[-1]:
            assert code == 0, f"the last run did not complete ({spec})"
        else:
            assert code == -signal.SIGKILL, f"{spec} was never reached"
            check_window(spec, run_dir)
        check_history(run_dir)

    rebuilt = FAULTS.index("kill-tree@sidecar:*_latest.pth") + 1
    assert "sidecar rebuilt from the checkpoint" in outputs[rebuilt]  # repaired, not restarted
    # The orphan of kill-runner@event:step_start was either still training when the next run
    # started, which then asked it to stop, or had already seen its runner gone and stopped
    # itself (train/stopping.py polls every 2 s; a 1-epoch step may get there first).
    after_orphan = outputs[FAULTS.index("kill-runner@launched")]
    orphan_runner = re.search(r"stale lock of \S+ left by pid (\d+)", after_orphan)
    assert orphan_runner, after_orphan
    stopped_itself = any(e["event"] == "step_end" and f"its runner (pid {orphan_runner[1]}) is gone" in e["message"]
                         for e in read_events(run_dir / "steps" / "l256-s1g3" / "events.jsonl"))
    assert "outlived the runner" in after_orphan or stopped_itself
    assert "outlived the runner" in outputs[-1]  # found by its environment: no pid in the ledger
    assert "retrying from its latest checkpoint" in outputs[-1]

    ledger = Ledger.load(run_dir / "ledger.json")
    assert sorted(ledger.records) == ["l256-s1g2", "l256-s1g3", "l256-s2g2"]
    assert all(r.status == "done" for r in ledger.records.values())
    import torch

    files = [*run_dir.glob("checkpoints/*/*.pth"), *run_dir.glob("steps/*/final.pth")]
    assert len(files) >= 5
    for pth in files:
        meta = read_meta(pth, verify=True)
        assert meta is not None, f"{pth} does not match its sidecar"
        state = torch.load(pth, map_location="cpu", weights_only=True)
        assert (state["step_id"], state["epoch"], state["finished"]) == \
            (meta["step_id"], meta["epoch"], meta["finished"]), pth
    assert not [p for p in run_dir.rglob(".*.tmp")], "temp files left behind"
    assert run_groups(run_dir) == {}
    print(f"{len(FAULTS)} kill points, {time.monotonic() - t0:.0f}s, load {os.getloadavg()}")
