"""Resume decisions: for each step, skip it or say exactly how it starts, and why.

Pure functions of (the ordered steps, the ledger, what is on disk): no subprocess, no
writes, no torch; the checkpoints are read through their JSON sidecars. `run` decides
again right before launching each step (earlier steps have produced their checkpoints by
then); `plan` and `status` show the same decisions as "what the next run would do".

The rules (shared/DESIGN.md, "Resume rules"):

- SKIP: the ledger says done with the same config hash and the step's archived final
  (``steps/<id>/final.pth``) is on disk, intact. A step whose end the runner did not get
  to record (killed between the trainer's last write and the ledger's, or between the
  archive's ``.pth`` and its sidecar) is recognised from its ``final`` checkpoint and
  skipped too; it is archived and recorded before any later step is decided, and its
  archive counts as there for the steps after it. `run` decides with ``verify=True``:
  every checkpoint it trusts must have the sha256 its sidecar recorded, so an archive
  replaced behind its back (same size, mtime set back) is not a finished step.
- RESUME_OWN_LATEST: the step started with this config and did not finish, and its own
  ``latest`` (the stage's; an I-frame step's ``iframe_{type}_{tag}_latest.pth``) was
  written by it (sidecar ``step_id`` = the step's phase id, not finished): ``--resume``
  it, no LR reset. A ``latest`` whose sidecar does not match the file cannot be
  attributed to a step and is not resumed (the decision says so).
- Otherwise the step's planned start, by its kind's rule (``runner.starts``): FRESH;
  PREVIOUS_STAGE_BEST (``--load_pretrained`` the previous stage's best, or the archived
  final of that stage's last step); STAGE_LATEST_LR_RESET (``--resume`` the previous
  step's archived final with ``--force_learning_rate`` the reset LR); for an I-frame step
  after the first, PREVIOUS_STEP_FINAL (``--load_pretrained`` the previous I-frame step's
  archived final: weights only). Whatever the start, a step that reads an artifact
  (``Step.input_flags``, the P-frame steps reading the trained I-frame codec) is given
  the archived final of its last producer that is not skipped (``--vqgan_checkpoint`` /
  ``--i_frame_checkpoint``); none there and none to be written is ``missing``.
- A step that runs makes every later step that consumes what it produces run too (their
  inputs change), and so on down the chain: for P-frame steps, every later step of its
  track (each continues its track's weights, ``Step.consumes``); a step whose config hash
  changed loses its history. Steps that consume nothing it produces (other tracks) are
  untouched. A changed producer also changes the config hash of the steps that only read
  its artifact (``curriculum.config_hashes``).
- SKIPPED (by user, ``dcvc-bench skip``): never launched, whatever its config hash or the
  steps before it do; only ``dcvc-bench skip --undo`` brings it back. The rest of its
  track starts as if the skipped steps were absent: a GOP increase resumes the archived
  final of the last earlier step that is not skipped (LR reset), never the skipped step's
  own ``latest`` (the weights of a step the user chose not to finish); a step whose stage
  has no earlier step left starts as the stage's first step would (the previous stage's
  best, weights only; fresh at stage 1). A stage's first step still loads the previous
  stage's best. Skipping changes no config hash, so it re-runs nothing by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

from dcvc_bench.checkpoints import parse_iframe_checkpoint_name, read_meta
from dcvc_bench.curriculum import Curriculum, RunPaths, StartKind, Step, config_hashes
from dcvc_bench.curriculum import step_config_hash
from dcvc_bench.curriculum.expand import input_hashes
from dcvc_bench.curriculum.start_words import start_phrase
from dcvc_bench.runner.ledger import SKIPPED, UNFINISHED, Ledger, StepRecord
from dcvc_bench.runner.starts import input_flags, planned_start, stage_checkpoint

__all__ = ["Action", "CheckpointState", "Decision", "Fingerprint", "decide", "explain_change", "fingerprint",
           "fingerprints", "probe", "skipped_steps", "stage_checkpoint"]

#: Names shown for config keys when a change is explained.
_KEY_NAMES = {"lambda_value": "lambda", "gop_size": "gop", "quality_index": "quality"}
#: Why a step the user skipped is not run (``skip (by user)``).
SKIPPED_REASON = "by user"
#: Keys explained first (the ones a user edits most).
_KEY_ORDER = ("lambda_value", "quality_index", "epochs", "gop_size", "learning_rate",
              "reset_learning_rate", "batch_size", "crop_size")


class Action(str, Enum):
    SKIP = "skip"
    RUN = "run"


@dataclass(frozen=True)
class Fingerprint:
    """A step's resolved configuration: its hash (stored in the ledger and compared) and
    the readable flags behind it (stored too, to explain a change key by key)."""

    hash: str
    config: dict[str, Any]


def fingerprint(cur: Curriculum, step: Step, inputs: Mapping[str, str | None] | None = None) -> Fingerprint:
    """``inputs``: the config hashes of the producers of what the step only reads
    (``Step.inputs``); :func:`fingerprints` fills them in for a whole curriculum."""
    config = {**step.train_flags, "reset_learning_rate": step.reset_learning_rate}
    if cur.data.synthetic is not None:
        config.update({f"synthetic.{k}": v for k, v in cur.data.synthetic.model_dump().items()})
    for artifact, value in (inputs or {}).items():  # a changed producer is explained by name
        config[f"input {artifact}"] = value[:12] if value else None
    return Fingerprint(step_config_hash(cur, step, inputs), config)


def fingerprints(cur: Curriculum, steps: Sequence[Step]) -> dict[str, Fingerprint]:
    """Every step's fingerprint (step id ->), the producers' hashes chained in run order."""
    hashes = config_hashes(cur, steps)
    return {s.id: fingerprint(cur, s, input_hashes(s, steps, hashes)) for s in steps}


@dataclass(frozen=True)
class CheckpointState:
    """A checkpoint file as seen through its sidecar. ``meta`` is None when the file is
    missing or its sidecar is missing or describes another version of the file."""

    path: Path
    exists: bool
    meta: dict[str, Any] | None

    @property
    def unknown(self) -> bool:
        """The file is there but nothing trustworthy says which step wrote it."""
        return self.exists and self.meta is None

    def written_by(self, step: Step) -> bool:
        return self.meta is not None and self.meta.get("step_id") == step.phase_id

    @property
    def finished(self) -> bool:
        """Its sidecar says finished; an I-frame step's ``final`` (or its archive) whose
        sidecar has no ``finished`` field is a final by its name."""
        if self.meta is None:
            return False
        if "finished" in self.meta:
            return bool(self.meta["finished"])
        parsed = parse_iframe_checkpoint_name(self.path.name)
        return (parsed is not None and parsed[2] == "final") or \
            (self.path.name == "final.pth" and "i_frame_type" in self.meta)


def probe(path: str | Path, verify: bool = False) -> CheckpointState:
    path = Path(path)
    return CheckpointState(path, path.is_file(), read_meta(path, verify=verify))


@dataclass(frozen=True)
class Decision:
    """What the runner does with one step, and why (both shown to users)."""

    step: Step
    action: Action
    reason: str
    start: StartKind | None = None
    #: ``resume`` / ``load_pretrained`` / ``force_learning_rate`` for this start.
    start_flags: dict[str, Any] = field(default_factory=dict)
    #: Something on disk that could not be used, said plainly.
    note: str = ""
    #: What the start needs that is not on disk and no earlier step will write.
    missing: str | None = None
    #: The ledger record belongs to an older config or lineage: reset it before running.
    stale: bool = False
    #: A finished step that the ledger did not record as done: record it now.
    recovered: bool = False
    #: ... after archiving this ``final`` checkpoint (None: the archive is in place).
    recovered_from: Path | None = None
    #: Not run because the user skipped it (``dcvc-bench skip``).
    user_skipped: bool = False
    #: The archives of what the step reads, by trainer flag (``Step.input_flags``).
    input_flags: dict[str, str] = field(default_factory=dict)

    def run_flags(self, paths: RunPaths) -> dict[str, Any]:
        """All run-dependent trainer flags of this start (see curriculum RUN_FLAGS)."""
        return {"checkpoint_dir": str(paths.checkpoints_dir(self.step.track)),
                "events_file": str(paths.events_file(self.step.id)), **self.start_flags, **self.input_flags}

    def how(self) -> str:
        """How the step starts, in words (:mod:`dcvc_bench.curriculum.start_words`),
        naming the checkpoint it starts from: ``previous step's final + LR reset to 1e-4
        (weights + optimizer; l2048-s1g2/final.pth)``."""
        assert self.start is not None
        source = self.start_flags.get("resume") or self.start_flags.get("load_pretrained")
        if self.start is StartKind.FRESH or source is None:
            return start_phrase(StartKind.FRESH)
        path = Path(source)
        name = f"{path.parent.name}/final.pth" if path.name == "final.pth" else path.name
        return start_phrase(self.start, self.start_flags.get("force_learning_rate"), name)

    def describe(self) -> str:
        """The next action in words: ``skip (done)``, ``run (why): how it starts``."""
        if self.action is Action.SKIP:
            return f"skip ({self.reason})"
        text = f"run ({self.reason}): {self.how()}"
        if self.note:
            text += f"; note: {self.note}"
        if self.missing:
            text += f"; cannot start: missing {self.missing}"
        return text


def decide(steps: Sequence[Step], ledger: Ledger, paths: RunPaths,
           fingerprints: Mapping[str, Fingerprint], verify: bool = False) -> list[Decision]:
    """One decision per step, in order (see the module docstring for the rules).
    ``verify``: check checkpoints by content (sha256), as `run` does; readers that must
    answer at once (`status`, `plan`, the TUI) check size and mtime only."""
    rerun: dict[str, str] = {}      # artifact -> id of the first step that runs and changes it
    by_id = {s.id: s for s in steps}
    will_run: set[str] = set()      # ids of the earlier steps that run, or get archived now
    skipped = skipped_steps(steps, ledger)

    decisions: list[Decision] = []
    for step in steps:
        record = ledger.get(step.id)
        if step.id in skipped:
            decisions.append(Decision(step, Action.SKIP, SKIPPED_REASON, user_skipped=True))
            continue
        fp = fingerprints[step.id]
        upstream = next((rerun[a] for a in step.consumes if a in rerun), None)
        if upstream is None:
            skip = _finished(step, record, fp, paths, verify)
            if skip is not None:
                decisions.append(skip)
                if skip.recovered_from is not None:
                    will_run.add(step.id)  # its archive is written before anything runs
                continue
        rerun.setdefault(step.produces, upstream or step.id)
        reason, stale = _why(step, record, fp, upstream and by_id[upstream], paths, verify)
        own = None if stale else _own_latest(step, record, fp, paths, verify)
        reads, unread = input_flags(step, steps, paths, will_run, skipped)
        if own is not None and own.written_by(step) and not own.finished:
            decision = Decision(step, Action.RUN, reason, StartKind.RESUME_OWN_LATEST,
                                {"resume": str(own.path)}, missing=unread, input_flags=reads)
        else:
            note = ""
            if own is not None and own.unknown:
                note = (f"{own.path.name} cannot be resumed: its sidecar does not match the file, so "
                        "which step wrote it is unknown; the step starts over")
            start, flags, missing, fallback = planned_start(step, steps, paths, will_run, skipped)
            decision = Decision(step, Action.RUN, reason, start, flags,
                                "; ".join(n for n in (note, fallback) if n), missing or unread, stale,
                                input_flags=reads)
        decisions.append(decision)
        will_run.add(step.id)
    return decisions


def _finished(step: Step, record: StepRecord | None, fp: Fingerprint,
              paths: RunPaths, verify: bool = False) -> Decision | None:
    """A SKIP decision when the step is finished with this config, else None."""
    if record is None or record.config_hash != fp.hash:
        return None
    archive = probe(paths.final_checkpoint(step.id), verify)
    archived = archive.written_by(step) and archive.finished
    if record.status == "done" and archived:
        return Decision(step, Action.SKIP, "done")
    if record.status not in (*UNFINISHED, "done") or record.started_at is None:
        return None
    # The trainer finished, the runner was killed before recording it.
    if archived and record.status != "done" and archive.meta.get("config_hash") == fp.hash \
            and archive.meta.get("started_at") == record.started_at:
        return Decision(step, Action.SKIP, "done (recorded now from its archived final)", recovered=True)
    # The archive is missing or does not match (killed while archiving), and the step's
    # own final of this attempt is still the stage's final: archive it again.
    final = probe(paths.own_checkpoint(step, "final"), verify)
    if final.written_by(step) and final.finished \
            and final.meta.get("file_mtime_ns", 0) >= record.started_at * 1e9:
        return Decision(step, Action.SKIP, "done (archived now from its final checkpoint)",
                        recovered=True, recovered_from=final.path)
    return None


def _why(step: Step, record: StepRecord | None, fp: Fingerprint, upstream: Step | None,
         paths: RunPaths, verify: bool = False) -> tuple[str, bool]:
    """Why the step runs, and whether its ledger record is stale (older config/lineage)."""
    if record is not None and record.config_hash not in (None, fp.hash):
        return f"config changed ({explain_change(record.config, fp.config)})", True
    if upstream is not None and record is not None and (record.status != "pending" or record.attempts):
        where = "an earlier step of this track" if upstream.track == step.track else "a step it consumes"
        return f"{where} re-runs ({upstream.id})", True
    if record is None or record.config_hash is None:
        return (f"not run yet ({record.message})" if record and record.message else "not run yet"), False
    if record.status == "done":
        archive = paths.final_checkpoint(step.id)
        if not archive.is_file():
            what = "is missing"
        elif verify and read_meta(archive) is not None:  # size and mtime match, content does not
            what = "no longer has the content (sha256) recorded when it was archived"
        else:
            what = "does not match its sidecar"
        return f"done, but its archived final {archive} {what}", True
    if record.status == "pending":
        return "not run yet", False
    at = f" at epoch {record.epochs_done}/{record.epochs or step.epochs}"
    return f"{record.status}{at}" + (f": {record.message}" if record.message else ""), False


def _own_latest(step: Step, record: StepRecord | None, fp: Fingerprint,
                paths: RunPaths, verify: bool = False) -> CheckpointState | None:
    """Its own latest (the stage's, by its kind's name) when the step may continue from it
    (it started with this config and did not finish), else None."""
    if record is None or record.config_hash != fp.hash or record.status not in UNFINISHED:
        return None
    return probe(paths.own_checkpoint(step, "latest"), verify)


def skipped_steps(steps: Sequence[Step], ledger: Ledger) -> set[str]:
    """Ids of the steps the user skipped."""
    return {s.id for s in steps if (r := ledger.get(s.id)) is not None and r.status == SKIPPED}


def explain_change(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 3) -> str:
    """``lambda 2048→1024, epochs 10→12`` for the keys that differ (``+N more``)."""
    if not old:
        return "the ledger does not say what it was before"
    keys = [k for k in (*old, *(k for k in new if k not in old)) if old.get(k) != new.get(k)]
    keys.sort(key=lambda k: (_KEY_ORDER.index(k) if k in _KEY_ORDER else len(_KEY_ORDER)))
    if not keys:
        return "settings outside the trainer flags"
    parts = [f"{_KEY_NAMES.get(k, k)} {_show(old.get(k))}→{_show(new.get(k))}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"+{len(keys) - limit} more")
    return ", ".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
