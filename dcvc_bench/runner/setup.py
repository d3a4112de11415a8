"""A run folder put in order before any step of a `run` starts (under the folder's lock):
what a killed runner left running is stopped and recorded as interrupted, and every step
gets a ledger record, stale ones reset with the reason, finished-but-unrecorded ones
archived and recorded. See :mod:`~dcvc_bench.runner.run` for the order of business."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Collection, Mapping, Sequence

from dcvc_bench.curriculum import RunPaths, Step
from dcvc_bench.errors import UserError
from dcvc_bench.runner.display import Display
from dcvc_bench.runner.launcher import group_runs, run_groups, stop_group
from dcvc_bench.runner.ledger import Ledger
from dcvc_bench.runner.resume import Decision, Fingerprint, decide


def close_leftovers(ledger: Ledger, steps: Sequence[Step], run_dir: Path, display: Display,
                    stop_grace_s: float, keep: Collection[str] = ()) -> None:
    """A step recorded as running has no runner (we hold the lock): it was killed.
    Its trainer may have outlived the runner (found by the environment tags the runner
    gives every step, or by the pid in the ledger); stop it so it saves and exits.
    ``keep``: steps whose Slurm job is still pending or running (the runner re-attaches)."""
    orphans = run_groups(run_dir)
    modules = sorted({s.module for s in steps})  # the trainers this curriculum launches
    for record in ledger.records.values():
        if record.status == "running" and record.pid and record.pid not in orphans \
                and any(group_runs(record.pid, module) for module in modules):
            orphans[record.pid] = record.id
    for pgid, step_id in orphans.items():
        display.message(f"{step_id or 'a step'}: its trainer (process group {pgid}) outlived "
                        "the runner that started it; asking it to save and stop")
        stop_group(pgid, stop_grace_s)
    for record in list(ledger.records.values()):
        if record.status == "running" and record.id not in keep:
            ledger.update(record.id, status="interrupted", pid=None,
                          message="the runner stopped before the step ended (killed?)")


def prepare_ledger(steps: Sequence[Step], ledger: Ledger, paths: RunPaths, fingerprints: Mapping[str, Fingerprint],
                   record_done: Callable[[Step, Path | None], None], display: Display) -> list[Decision]:
    """Records for every step; stale ones reset (with the reason); refuse to start
    when a step needs a checkpoint that nothing will write. Steps that finished while
    the last runner was being killed are archived and recorded first (``record_done``):
    a later step may start from their archive."""
    for step in steps:
        ledger.ensure(step.id, track=step.track, epochs=step.epochs)
    decisions = decide(steps, ledger, paths, fingerprints, verify=True)
    recovered = [d for d in decisions if d.recovered]
    for d in recovered:
        record_done(d.step, d.recovered_from)
        display.message(f"{d.step.id}: {d.reason}")
    if recovered:
        decisions = decide(steps, ledger, paths, fingerprints, verify=True)
    for d in decisions:
        if d.stale:
            ledger.reset(d.step.id, track=d.step.track, epochs=d.step.epochs, message=d.reason)
    ledger.save()
    blocked = next((d for d in decisions if d.missing), None)
    if blocked is not None:
        raise UserError(f"step {blocked.step.id} cannot start: missing {blocked.missing}")
    return decisions
