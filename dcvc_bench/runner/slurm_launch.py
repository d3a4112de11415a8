"""A step as a Slurm batch job: submit it (or re-attach to it), follow it, read its fate.

The runner is not the job. The job id goes into the ledger (``job_id``,
``scheduler_state``) as soon as ``sbatch`` returns it, and every job is named after its
run folder and step (:func:`~dcvc_bench.runner.slurm_script.job_name`), so a `run` killed
between the two still finds it. A later `run` re-attaches to a pending or running job of
the step (by that name, through ``squeue``) instead of submitting a second one, and
follows the step's ``events.jsonl`` in the run folder (shared storage) as for a local step.

How the job ended comes from Slurm (:mod:`~dcvc_bench.runner.slurm_jobs`) when the trainer
could not say so itself: TIMEOUT, PREEMPTED, NODE_FAIL (the job was taken away: the step is
interrupted and continues from its own latest), OUT_OF_MEMORY (failed, with the setting to
raise), CANCELLED (by a user: interrupted, not resubmitted). A stop asked of the runner
(Ctrl-C) becomes ``scancel --signal=USR1`` (save and stop; a pending job is cancelled), then
``scancel`` after the grace period or a second Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from dcvc_bench.curriculum import Curriculum, RunPaths, Step
from dcvc_bench.errors import UserError
from dcvc_bench.events import EventTail
from dcvc_bench.runner.display import Display
from dcvc_bench.runner.launcher import POLL_S, StepExit, StopRequest, child_env
from dcvc_bench.runner.ledger import Ledger
from dcvc_bench.runner.slurm_jobs import TAKEN, JobState, SlurmError, cancel, find_job, job_state, submit, \
    write_script
from dcvc_bench.runner.slurm_script import build_job, job_name

#: How often the job's state is asked of Slurm while it runs.
QUERY_S = 1.0
#: How long to wait, once the job is over, for its last events to show on shared storage.
SETTLE_S = 5.0


@dataclass
class JobExit(StepExit):
    """A followed job's end: StepExit plus the job and what Slurm says of it."""

    job_id: Optional[str] = None
    scheduler_state: Optional[str] = None
    saved_latest: bool = False  # the attempt wrote a `latest` checkpoint (it made progress)

    def record(self, event: dict) -> None:
        super().record(event)
        if event.get("event") == "checkpoint" and event.get("kind") == "latest":
            self.saved_latest = True


class SlurmLauncher:
    """Submits and follows the steps of one `run` (one per track thread at a time)."""

    def __init__(self, cur: Curriculum, paths: RunPaths, ledger: Callable[[], Ledger], display: Display,
                 stop: StopRequest, python: Optional[str], grace_s: float):
        self.cur, self.paths, self._ledger, self.display = cur, paths, ledger, display
        self.stop, self.python, self.grace_s = stop, python, grace_s

    @property
    def ledger(self) -> Ledger:
        return self._ledger()

    def live_job(self, step_id: str) -> Optional[str]:
        """The id of the step's pending or running job, if one is left from an earlier `run`."""
        try:
            return find_job(job_name(self.paths, step_id))
        except SlurmError:
            return None

    def launch(self, step: Step, position: tuple[int, int], start: str, flags: Mapping[str, Any],
               record_attempt: Callable[[], tuple[Path, int, int, int]],
               on_event: Callable[[dict[str, Any]], None]) -> JobExit:
        """Re-attach to the step's live job, else record a new attempt (``record_attempt``:
        the runner's, as for a local step) and submit one; follow it to its end."""
        job_id = self.live_job(step.id)
        where = f"[{position[0]}/{position[1]}] {step.id}"
        if job_id is not None:
            events, log = self.paths.events_file(step.id), self.paths.stdout_log(step.id)
            offset, log_offset = last_attempt_offset(events), log.stat().st_size if log.exists() else 0
            record = self.ledger.update(step.id, status="running", job_id=job_id)
            self.display.step_started(step, *position, f"as submitted in Slurm job {job_id}", max(1, record.attempts))
            self.display.message(f"{where}: re-attaching to its Slurm job {job_id} (left by an earlier run; "
                                 "no second job submitted)")
        else:
            _, offset, log_offset, attempt = record_attempt()
            self.display.step_started(step, *position, start, attempt)
            job_id = self.submit(step, flags)
            self.display.message(f"{where}: submitted as Slurm job {job_id}")
        result = self.follow(step, job_id, offset, on_event)
        result.log_offset = log_offset
        return result

    def submit(self, step: Step, flags: Mapping[str, Any]) -> str:
        job = build_job(self.cur, step, flags, self.paths, python=self.python)
        script = write_script(job, self.paths.step_dir(step.id))
        try:
            job_id = submit(job, script, _job_env())
        except SlurmError as exc:
            raise UserError(f"sbatch refused step {step.id}: {exc} (its job script: {script})") from None
        self.ledger.update(step.id, job_id=job_id, scheduler_state="SUBMITTED")
        return job_id

    def follow(self, step: Step, job_id: str, offset: int, on_event: Callable[[dict[str, Any]], None]) -> JobExit:
        """Feed the step's events to ``on_event`` until Slurm says the job is over."""
        tail = EventTail(Path(self.paths.events_file(step.id)), offset=offset)
        result = JobExit(returncode=None, job_id=job_id)
        last: Optional[JobState] = None
        next_query = 0.0
        signalled_at: Optional[float] = None
        killed = False

        def drain() -> None:
            for event in tail.poll():
                result.record(event)
                on_event(event)

        while True:
            drain()
            now = time.monotonic()
            if now >= next_query:
                next_query = now + QUERY_S
                try:
                    state = job_state(job_id)
                except SlurmError as exc:  # a slow controller: ask again
                    self.display.message(f"{step.id}: Slurm did not answer ({exc}); asking again")
                    continue
                if state is None or not state.active:
                    last = state
                    break
                if last is None or state.state != last.state:
                    self.ledger.update(step.id, scheduler_state=state.state)
                    why = f" ({state.reason})" if state.reason and state.reason != "None" else ""
                    self.display.message(f"{step.id}: Slurm job {job_id} {state.state}{why}")
                last = state
            if (self.stop.kill.is_set() or (signalled_at is not None and now - signalled_at > self.grace_s)) \
                    and not killed:
                killed = result.stopped_by_runner = True
                self._cancel(job_id)
            elif self.stop.graceful.is_set() and not result.stopped_by_runner:
                result.stopped_by_runner = True
                signalled_at = now
                self._cancel(job_id, None if last is not None and last.state == "PENDING" else "USR1")
            time.sleep(POLL_S)
        self._settle(drain, result)
        result.scheduler_state = last.state if last is not None else "UNKNOWN"
        result.returncode = last.exit_code if last is not None else None
        self.ledger.update(step.id, scheduler_state=result.scheduler_state)
        if result.step_end is None:
            result.step_end = _fate(job_id, result)
        return result

    def _settle(self, drain: Callable[[], None], result: JobExit) -> None:
        deadline = time.monotonic() + SETTLE_S
        while result.step_end is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
            drain()

    def _cancel(self, job_id: str, signal: Optional[str] = None) -> None:
        try:
            cancel(job_id, signal)
        except SlurmError as exc:
            self.display.message(f"scancel {job_id}: {exc}")


def _fate(job_id: str, result: JobExit) -> Optional[dict[str, Any]]:
    """A ``step_end`` in the trainer's words for a job that ended without one."""
    state = result.scheduler_state
    if state in TAKEN:
        return {"status": "interrupted", "message": f"Slurm ended job {job_id}: {state}"}
    if state == "OUT_OF_MEMORY":
        return {"status": "failed", "message": f"Slurm job {job_id} ran out of memory (OUT_OF_MEMORY); "
                                               "raise [launcher.slurm] mem"}
    if state == "CANCELLED":
        return {"status": "interrupted", "message": f"Slurm job {job_id} was cancelled"}
    if result.returncode == 128 + signal.SIGUSR1:  # before the trainer was there to take it
        return {"status": "interrupted", "message": f"Slurm's USR1 ended job {job_id} before the trainer started"}
    return None


def last_attempt_offset(events: Path) -> int:
    """Where the attempt of a job we re-attach to starts in the step's events: at its
    ``step_start`` when it has written one (no ``step_end`` after it), else at the end."""
    try:
        data = events.read_bytes()
    except OSError:
        return 0
    pos, start = 0, len(data)
    for raw in data.split(b"\n"):
        try:
            kind = json.loads(raw).get("event") if raw.strip() else None
        except (ValueError, AttributeError):
            kind = None
        if kind == "step_start":
            start = pos
        elif kind == "step_end":
            start = len(data)
        pos += len(raw) + 1
    return min(start, len(data))


def resubmits(cur: Curriculum, result: JobExit, stop: StopRequest, stalls: int) -> bool:
    """Whether the runner submits the step again after this interrupted attempt: the job
    was interrupted by Slurm (time limit, preemption, node failure, ``scancel
    --signal=USR1``), not by a user's ``scancel`` or the runner, with ``requeue`` on, and
    the attempt saved a ``latest`` (or the attempts without progress are within
    ``failure.retries``)."""
    if not cur.launcher.slurm.requeue or result.stopped_by_runner or stop.graceful.is_set():
        return False
    if result.scheduler_state == "CANCELLED":
        return False
    return result.saved_latest or stalls <= cur.failure.retries


def _job_env() -> dict[str, str]:
    """What sbatch exports to the job: the runner's environment without the tags that make
    a process the runner's child (the job runs on without it)."""
    env = child_env()
    from dcvc_bench.faults import RUNNER_PID_ENV
    from dcvc_bench.runner.launcher import RUN_DIR_ENV, STEP_ENV

    for name in (RUNNER_PID_ENV, RUN_DIR_ENV, STEP_ENV):
        env.pop(name, None)
    return env


def live_jobs(ledger: Ledger, paths: RunPaths) -> dict[str, str]:
    """``{step id: job id}`` of the steps with a pending or running Slurm job (those with a
    job in the ledger, or recorded as running: a job id may not have reached the ledger)."""
    from dcvc_bench.runner.slurm_jobs import command

    if not command("squeue"):
        return {}
    found = {}
    for record in ledger.records.values():
        if record.job_id or record.status == "running":
            try:
                job = find_job(job_name(paths, record.id))
            except SlurmError:
                job = record.job_id if record.status == "running" else None  # cannot tell: keep it
            if job is not None:
                found[record.id] = job
    return found
