"""`dcvc-bench run`: execute a curriculum's steps in order, surviving any crash.

Order of business: take the run folder's lock; freeze the curriculum; write the synthetic
clips if the curriculum asks for them; expand the steps; close what a killed runner left
open (a "running" step whose runner is gone is interrupted; a trainer that outlived its
runner is asked to stop and save); decide every step (:mod:`~dcvc_bench.runner.resume`),
forgetting the history of steps whose config or lineage changed (the run-folder set-up
before any step: :mod:`~dcvc_bench.runner.setup`); then run the tracks whose products
other tracks read (the I-frame steps) and, once they are done, the others — one after
another, in parallel with one GPU each (``--gpus``), or as up to ``[launcher.slurm]
max_parallel`` Slurm jobs at once.

Each step is decided again right before it starts, so it sees what the steps before it
wrote. Failures: a crash is retried from the step's own latest checkpoint up to
``failure.retries`` times; a divergence is rolled back to the own latest with the LR
times ``failure.divergence_lr_factor``, up to ``failure.divergence_retries`` times; then
the track stops and the summary says which step, why, and what to do. Ctrl-C asks the
running steps to save and stop (a second Ctrl-C kills them) and exits 130.

Every state change is in the ledger before it matters, so a SIGKILL of any part of the
process tree at any moment leaves a folder that the next `run` completes without redoing
finished work: it stops the trainers a killed runner left (found by their environment,
:func:`~dcvc_bench.runner.launcher.run_groups`), repairs what a kill cut short
(:mod:`~dcvc_bench.runner.repair`), and archives and records the steps that finished
unrecorded before it checks what any later step needs. A write the file system refuses
(full disk, quota, read-only, permissions), the runner's or the trainer's, stops the run
with one line naming the file, exit code 2, and no retry.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dcvc_bench.checkpoints import WriteError, read_meta
from dcvc_bench.curriculum import Curriculum, Step, accelerate_argv, expand, run_paths
from dcvc_bench.errors import EXIT_USAGE, UserError
from dcvc_bench.faults import fault
from dcvc_bench.runner.archive import archive_final
from dcvc_bench.runner.display import Display
from dcvc_bench.runner.folder import PREVIOUS_CURRICULUM, freeze_curriculum, prepare_synthetic_data
from dcvc_bench.runner.launcher import STOP_GRACE_S, StepExit, StepProcess, StopRequest, child_env, follow
from dcvc_bench.runner.ledger import LEDGER_FILE, Ledger
from dcvc_bench.runner.lock import RunLock
from dcvc_bench.runner.outcome import classify
from dcvc_bench.runner.repair import repair_run_folder, repair_track
from dcvc_bench.runner.setup import close_leftovers, prepare_ledger
from dcvc_bench.runner.slurm_launch import JobExit, SlurmLauncher, live_jobs, resubmits
from dcvc_bench.runner.tracks import feeding_tracks, run_in_slots
from dcvc_bench.runner.resume import Action, Decision, Fingerprint, decide, fingerprints, probe

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
_EVAL_FIELDS = ("epoch", "psnr", "bpp", "ms_ssim", "rd_loss", "loss")


@dataclass(frozen=True)
class StepResult:
    step: Step
    status: str      # skipped | done | failed | diverged | interrupted
    message: str = ""
    by_user: bool = False  # skipped because the user skipped it (`dcvc-bench skip`)
    write_error: bool = False  # failed because the file system refused a write (disk full, ...)


# ---------------------------------------------------------------- the runner


class Runner:
    """One `run` of a curriculum. ``gpus``: run tracks in parallel, one GPU each."""

    def __init__(self, cur: Curriculum, display: Display, gpus: list[int] | None = None,
                 rerun_hint: str = "dcvc-bench run", python: str = sys.executable,
                 stop_grace_s: float = STOP_GRACE_S):
        self.cur = cur
        self.display = display
        self.gpus = gpus
        self.rerun_hint = rerun_hint
        self.python = python
        self.stop_grace_s = stop_grace_s
        self.paths = run_paths(cur)
        self.stop = StopRequest()
        self.steps: list[Step] = []
        self.fingerprints: dict[str, Fingerprint] = {}
        self.ledger = Ledger(self.paths.run_dir / LEDGER_FILE)
        self.live_groups: dict[str, int] = {}  # step id -> process group of its running attempt
        self.slurm = SlurmLauncher(cur, self.paths, lambda: self.ledger, display, self.stop, python, stop_grace_s) \
            if cur.launcher.kind == "slurm" else None  # each step a Slurm job (runner.slurm_launch)
        _check_gpus(cur, gpus)

    def run(self) -> int:
        try:
            return self._run()
        except WriteError as exc:  # the runner's own write: one line, what to do, exit 2
            raise UserError(f"{exc} (`{self.rerun_hint}`; finished steps are kept)") from exc

    def _run(self) -> int:
        with RunLock(self.paths.run_dir) as lock:
            if lock.notice:
                self.display.message(f"warning: {lock.notice}")
            if freeze_curriculum(self.paths.run_dir, self.cur.source_text):
                self.display.message(f"the curriculum changed since the last run; the previous one "
                                     f"is kept as {self.paths.run_dir / PREVIOUS_CURRICULUM}")
            prepare_synthetic_data(self.cur, self.paths, self.display)
            self.steps = expand(self.cur, self.paths.data_dirs)
            self.fingerprints = fingerprints(self.cur, self.steps)
            self.ledger = Ledger.load(self.paths.run_dir / LEDGER_FILE)
            if self.ledger.warning:
                self.display.message(f"warning: {self.ledger.warning}")
            jobs = live_jobs(self.ledger, self.paths)  # Slurm jobs a killed runner left: re-attached to
            if jobs and self.slurm is None:
                step_id, job = next(iter(jobs.items()))
                raise UserError(f"step {step_id} runs as Slurm job {job}; run with --launcher slurm to re-attach "
                                f"to it, or `scancel {job}` first")
            close_leftovers(self.ledger, self.steps, self.paths.run_dir, self.display, self.stop_grace_s, keep=jobs)
            for line in repair_run_folder(self.paths):
                self.display.message(line)
            decisions = prepare_ledger(self.steps, self.ledger, self.paths, self.fingerprints, self._record_done,
                                       self.display)  # runner.setup: the folder before any step
            todo = [d for d in decisions if d.action is Action.RUN]
            by_user = sum(d.user_skipped for d in decisions)
            self.display.message(f"{self.cur.name}: {len(self.steps)} steps, "
                                 f"{len(self.steps) - len(todo) - by_user} done, "
                                 + (f"{by_user} skipped by user, " if by_user else "") + f"{len(todo)} to run "
                                 f"(run folder {self.paths.run_dir})")
            with self._signals():
                results = self._execute()
            return self._summary(results)

    # -- tracks -------------------------------------------------------------------------
    def _execute(self) -> list[StepResult]:
        """The tracks whose products other tracks read (the I-frame steps) first, one after
        another; once each of their steps is done, the other tracks (runner.tracks)."""
        tracks, feeds, waiting = feeding_tracks(self.steps)
        results = run_in_slots([tracks[t] for t in feeds], self.gpus[:1] if self.gpus else [None],
                               self._run_track, self.stop, self.display)
        if any(r.status not in ("done", "skipped") for r in results) or self.stop.graceful.is_set():
            if waiting and not self.stop.graceful.is_set():
                self.display.message(f"not started: the steps of {', '.join(waiting)}, which read what the "
                                     f"steps of {', '.join(feeds)} produce (not all of those finished)")
            return sorted(results, key=lambda r: r.step.index)
        results += run_in_slots([tracks[t] for t in waiting], self._slots(), self._run_track, self.stop,
                                self.display)
        return sorted(results, key=lambda r: r.step.index)

    def _slots(self) -> list[int | None]:
        """Who runs the independent tracks at once: one thread per GPU of ``--gpus``, one per
        Slurm job in flight (``max_parallel``), else a single one."""
        if self.gpus:
            return list(self.gpus)
        return [None] * self.cur.launcher.parallel_tracks

    def _run_track(self, steps: list[Step], gpu: int | None) -> list[StepResult]:
        results = []
        for step in steps:
            if self.stop.graceful.is_set():
                break
            result = self._run_step(step, gpu)
            results.append(result)
            if result.status not in ("done", "skipped"):
                break
        return results

    def _decide(self, step: Step) -> Decision:
        return next(d for d in decide(self.steps, self.ledger, self.paths, self.fingerprints, verify=True)
                    if d.step.id == step.id)

    def _run_step(self, step: Step, gpu: int | None) -> StepResult:
        policy = self.cur.failure
        crashes = divergences = stalls = 0
        force_lr: float | None = None
        position, total = step.index + 1, len(self.steps)
        while True:
            decision = self._decide(step)
            if decision.action is Action.SKIP:
                if decision.recovered:
                    self._record_done(step, decision.recovered_from)
                self.display.step_skipped(step, position, total, decision.reason)
                return StepResult(step, "skipped", decision.reason, by_user=decision.user_skipped)
            if decision.missing:
                message = f"cannot start: missing {decision.missing}"
                self.ledger.update(step.id, status="failed", message=message)
                self.display.message(f"[{position}/{total}] {step.id}: {message}")
                return StepResult(step, "failed", message)
            if self.stop.graceful.is_set():
                return StepResult(step, "interrupted", "stopped before it started")
            flags = decision.run_flags(self.paths)
            if force_lr is not None:
                flags["force_learning_rate"] = force_lr
            start = decision.how()
            if force_lr is not None:
                start += f", LR forced to {force_lr:g}"
            if decision.note:
                self.display.message(f"[{position}/{total}] {step.id}: note: {decision.note}")
            result = self._launch(step, decision, flags, gpu, start)
            for line in repair_track(self.paths, step.track, step.id):  # its trainer is gone now
                self.display.message(f"[{position}/{total}] {step.id}: {line}")
            outcome, message = classify(step, result, self.paths)
            if outcome == "done":
                self._record_done(step, self.paths.own_checkpoint(step, "final"),
                                  result.step_end)
                self.display.step_ended(step, "done")
                return StepResult(step, "done", message)
            if outcome == "interrupted" and isinstance(result, JobExit):
                stalls = 0 if result.saved_latest else stalls + 1
                if resubmits(self.cur, result, self.stop, stalls):
                    message += ("; resubmitting: it continues from its own latest checkpoint" if result.saved_latest
                                else f"; resubmitting ({stalls} of {policy.retries} attempts in a row that saved no "
                                     "epoch)")
                    self.ledger.update(step.id, status="interrupted", message=message)
                    self.display.step_ended(step, "interrupted", message)
                    continue
            if outcome == "interrupted":
                self.ledger.update(step.id, status="interrupted", pid=None, message=message)
                self.display.step_ended(step, "interrupted", message)
                return StepResult(step, "interrupted", message)
            if outcome == "diverged":
                divergences += 1
                if divergences > policy.divergence_retries:
                    message += f"; gave up after {policy.divergence_retries} roll-back(s) with a lower LR"
                    self.ledger.update(step.id, status="diverged", pid=None, message=message)
                    self.display.step_ended(step, "diverged", message)
                    return StepResult(step, "diverged", message)
                force_lr = self._last_lr(step, result, flags) * policy.divergence_lr_factor
                retry = (f"{message}; rolling back to its latest checkpoint with LR {force_lr:g} "
                         f"(roll-back {divergences} of {policy.divergence_retries})")
                self.ledger.update(step.id, status="diverged", pid=None, message=retry)
                self.display.step_ended(step, "diverged", retry)
                continue
            crashes += 1
            log = self.paths.stdout_log(step.id)
            if outcome in ("refused", "write-error") or crashes > policy.retries:
                if outcome == "failed":
                    message += f"; gave up after {policy.retries} retr{'y' if policy.retries == 1 else 'ies'}"
                self.ledger.update(step.id, status="failed", pid=None, message=message)
                self.display.step_ended(step, "failed", f"{message} (log: {log})")
                return StepResult(step, "failed", message, write_error=outcome == "write-error")
            retry = f"{message}; retrying from its latest checkpoint ({crashes} of {policy.retries})"
            self.ledger.update(step.id, status="failed", pid=None, message=retry)
            self.display.step_ended(step, "failed", f"{retry} (log: {log})")

    def _launch(self, step: Step, decision: Decision, flags: dict[str, Any], gpu: int | None,
                start: str) -> StepExit:
        """Record the attempt, start the step, follow it to its end."""
        if self.slurm is not None:  # re-attach to its live job, else submit one; follow it
            return self.slurm.launch(step, (step.index + 1, len(self.steps)), start, flags,
                                     lambda: self._record_attempt(step, decision),
                                     lambda event: self._on_event(step, event))
        events, offset, log_offset, attempt = self._record_attempt(step, decision)
        log = self.paths.stdout_log(step.id)
        argv = accelerate_argv(self.cur, step, flags, python=self.python,
                               gpu_ids=[gpu] if gpu is not None else None)
        self.display.step_started(step, step.index + 1, len(self.steps), start, attempt)
        env = child_env(str(gpu) if gpu is not None else None, run_dir=self.paths.run_dir, step_id=step.id)
        try:
            process = StepProcess(argv, log, env)
        except WriteError:
            raise
        except OSError as exc:
            return StepExit(returncode=None, step_end={
                "status": "failed", "message": f"could not start {argv[0]}: {exc.strerror or exc}"})
        self.live_groups[step.id] = process.pgid
        try:
            fault("launched", self.live_groups.values())
            self.ledger.update(step.id, pid=process.pid)
            result = follow(process, events, lambda event: self._on_event(step, event), self.stop,
                            offset=offset, grace_s=self.stop_grace_s)
        finally:
            self.live_groups.pop(step.id, None)
        result.log_offset = log_offset
        return result

    def _record_attempt(self, step: Step, decision: Decision) -> tuple[Path, int, int, int]:
        """A new attempt in the ledger: (events file, where its events and log start, attempt)."""
        fp = self.fingerprints[step.id]
        record = self.ledger.get(step.id)
        attempt = (record.attempts if record else 0) + 1
        events, log = self.paths.events_file(step.id), self.paths.stdout_log(step.id)
        events.parent.mkdir(parents=True, exist_ok=True)
        offset = events.stat().st_size if events.exists() else 0  # skip earlier attempts' events
        log_offset = log.stat().st_size if log.exists() else 0
        assert decision.start is not None
        self.ledger.update(step.id, track=step.track, status="running", config_hash=fp.hash,
                           config=fp.config, attempts=attempt, epochs=step.epochs,
                           start_kind=decision.start.value, started_at=time.time(),
                           finished_at=None, pid=None, message="")
        return events, offset, log_offset, attempt

    def _on_event(self, step: Step, event: dict[str, Any]) -> None:
        """Mirror the trainer's progress into the ledger (once per epoch, not per iteration).

        These fields copy the step's ``events.jsonl``, which stays the record, so a write
        the file system refuses here does not end the step: on a full disk it is often
        the trainer's own half-written checkpoint that took the last bytes, and the
        trainer's error, which names that file, is the one to report. The ledger keeps
        the change in memory and writes it whole with its next update; the step's
        outcome, recorded when it ends, stops the run if the disk still refuses."""
        self.display.step_event(step, event)
        kind = event.get("event")
        changes: dict[str, Any] = {}
        if kind == "step_start" and isinstance(event.get("start_epoch"), int):
            changes = {"epochs_done": event["start_epoch"]}
        elif kind == "checkpoint" and event.get("kind") == "latest" and isinstance(event.get("epoch"), int):
            changes = {"epochs_done": event["epoch"]}
        elif kind == "checkpoint" and event.get("kind") == "best" and _is_number(event.get("loss")):
            changes = {"best_loss": float(event["loss"])}
        elif kind == "eval":
            changes = {"last_eval": {k: event.get(k) for k in _EVAL_FIELDS}}
        if changes:
            try:
                self.ledger.update(step.id, **changes)
            except WriteError as exc:
                self.display.message(f"[{step.index + 1}/{len(self.steps)}] {step.id}: warning: the ledger's "
                                     f"progress could not be written ({exc}); the step goes on")
        fault(f"event:{kind}" + (f":{event.get('kind')}" if kind == "checkpoint" else ""),
              self.live_groups.values())

    def _last_lr(self, step: Step, result: StepExit, flags: dict[str, Any]) -> float:
        """The LR the step diverged with: its last train event's, else the one it was
        started with, else its latest checkpoint's, else the configured one."""
        for source in ((result.last_train or {}).get("lr"), flags.get("force_learning_rate"),
                       (probe(self.paths.own_checkpoint(step, "latest")).meta or {}).get("lr")):
            if _is_number(source) and source > 0:
                return float(source)
        return float(step.train_flags.get("learning_rate", step.reset_learning_rate))

    def _record_done(self, step: Step, final: Path | None, step_end: dict[str, Any] | None = None) -> None:
        """Archive the step's final checkpoint (unless already archived) and mark it done."""
        record = self.ledger.get(step.id)
        if final is not None:
            archive_final(final, self.paths.final_checkpoint(step.id),
                          {"id": step.id, "config_hash": record.config_hash if record else None,
                           "started_at": record.started_at if record else None})
        meta = read_meta(self.paths.final_checkpoint(step.id)) or {}
        best = (step_end or {}).get("best_loss", meta.get("best_loss"))
        changes: dict[str, Any] = {"status": "done", "finished_at": time.time(), "pid": None,
                                   "epochs_done": step.epochs, "message": (step_end or {}).get("message") or ""}
        if _is_number(best):
            changes["best_loss"] = float(best)
        fault("ledger:before-done")
        self.ledger.update(step.id, **changes)
        fault("ledger:after-done")

    # -- the end ------------------------------------------------------------------------
    def _summary(self, results: list[StepResult]) -> int:
        ran = sum(r.status == "done" for r in results)
        by_user = sum(r.by_user for r in results)
        skipped = sum(r.status == "skipped" for r in results) - by_user
        bad = [r for r in results if r.status in ("failed", "diverged")]
        stopped = [r for r in results if r.status == "interrupted"]
        for r in bad:
            fix = ("Once the disk has room (or what the error names is fixed), run" if r.write_error
                   else f"Its log: {self.paths.stdout_log(r.step.id)}. Fix the cause, then run")
            self.display.message(
                f"{r.step.id} {r.status}: {r.message}. {fix} `{self.rerun_hint}` again: "
                f"finished steps are kept and {r.step.id} continues from its latest checkpoint.")
        if any(r.write_error for r in bad):
            return EXIT_USAGE
        if stopped or self.stop.graceful.is_set():
            where = ", ".join(f"{r.step.id} ({r.message})" for r in stopped) or "before the next step"
            self.display.message(f"interrupted: {where}. Run `{self.rerun_hint}` again to continue.")
            return EXIT_INTERRUPTED
        if bad:
            return EXIT_FAILED
        what = f"done or skipped ({ran} run now, {skipped} done before, {by_user} skipped by user)" if by_user \
            else f"done ({ran} run now, {skipped} done before)"
        self.display.message(f"all {len(self.steps)} steps {what}; "
                             f"checkpoints in {self.paths.run_dir / 'checkpoints'}")
        return EXIT_OK

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM: first one asks the steps to stop gracefully, the next kills them."""
        def handler(signum: int, frame: Any) -> None:
            (self.stop.kill if self.stop.graceful.is_set() else self.stop.graceful).set()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_gpus(cur: Curriculum, gpus: list[int] | None) -> None:
    if not gpus:
        return
    if cur.accelerate.device == "cpu":
        raise UserError('--gpus: this curriculum runs on the CPU ([accelerate] device = "cpu"); '
                        "remove --gpus or the device setting")
    if cur.accelerate.num_processes > 1:
        raise UserError(f"--gpus runs each track on one GPU, but [accelerate] num_processes = "
                        f"{cur.accelerate.num_processes}; set it to 1 or run without --gpus")

