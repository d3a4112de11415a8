"""What every training recipe shares (the P-frame step in :mod:`.loop`, the I-frame step
in :mod:`.iframe`): the epoch loop with its stop, divergence and end rules, the RNG state
that a checkpoint carries, the event writer whose failed writes are :class:`WriteError`,
and ``main()``'s one-line errors.

The rules of the loop (:class:`EpochLoop`), the same for every step kind:

- ``latest`` is written at the end of every epoch, and only there, so a crash costs at
  most the current epoch.
- SIGINT/SIGTERM (or the death of the runner, see :mod:`.stopping`) stop the step after
  the current iteration and save nothing new: the resumed step repeats the interrupted
  epoch from the previous epoch's ``latest`` exactly as it ran. During the evaluation that
  ends an epoch they stop it at once and save the trained epoch as ``latest`` marked
  ``pending_end_of_epoch``; the resumed step does that end of epoch again.
- A non-finite loss skips the batch (its update is rolled back before it is applied);
  more than :data:`MAX_CONSECUTIVE_NONFINITE` in a row, or non-finite parameters at an
  epoch's end, end the step ``diverged`` (exit 3) without touching the good checkpoints.
- A write that fails for lack of space or permission ends the step ``failed`` with one
  line naming the file, exit 2, the previous checkpoint intact.

A recipe provides the hooks listed on :class:`EpochLoop`.
"""

from __future__ import annotations

import math
import random
import sys
import time
from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch

from dcvc_bench.checkpoints import WriteError, write_error_of
from dcvc_bench.errors import UserError
from dcvc_bench.events import EVENT_FIELDS, EventWriter
from dcvc_bench.train.stopping import StopNow, StopRequested, supervised

EXIT_DONE, EXIT_FAILED, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 3, 130
MAX_CONSECUTIVE_NONFINITE = 5
TRAIN_EVENT_INTERVAL_S = 0.5


def finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


# -- RNG state ------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The RNG states a checkpoint carries (torch, Python, CUDA when present)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "python" in state:
        random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples; a checkpoint may hand back lists."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


# -- set-up ---------------------------------------------------------------------------
def make_accelerator(args: Any, log_with: list[Any] | None = None) -> Any:
    """The step's Accelerator (``--mixed_precision``, ``--gradient_accumulation_steps``
    when the recipe has it), seeded per process with ``--seed``. Unused parameters are
    allowed under DDP: frozen or loss-free parameters get no gradient in some steps.
    ``log_with``: accelerate tracker objects (:mod:`dcvc_bench.train.trackers`)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    import os

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    # Several processes on a machine without a GPU (or --force_cpu): DDP over gloo. Without
    # cpu=True accelerate would leave each process alone, every one of them "rank 0".
    cpu = bool(getattr(args, "force_cpu", False)) or (world > 1 and not torch.cuda.is_available())
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=getattr(args, "gradient_accumulation_steps", 1),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        log_with=log_with or None,
    )
    if accelerator.num_processes != world:
        raise UserError(f"launched as {world} processes, but they are not connected (each one sees "
                        f"{accelerator.num_processes}); on the CPU pass --force_cpu")
    set_seed(args.seed, device_specific=True)
    return accelerator


def samples_per_epoch(args: Any, accelerator: Any) -> int | None:
    """Samples of an epoch over all processes: ``--steps_per_epoch`` batches, or None (all)."""
    if args.steps_per_epoch is None:
        return None
    return args.steps_per_epoch * args.batch_size * accelerator.num_processes


#: Batches each DataLoader worker keeps decoded ahead of the trainer.
PREFETCH_FACTOR = 4


def make_loader(accelerator: Any, dataset: Any, args: Any) -> tuple[Any, int]:
    """The prepared training loader (order from the dataset's own seeded draws, uint8
    until the batch is on the device) and its iterations per epoch; a batch larger than
    an epoch is one line."""
    from torch.utils.data import DataLoader

    # Pinned host memory on CUDA (the batch's copy overlaps compute: non_blocking in
    # to_device); each worker keeps PREFETCH_FACTOR batches ready. Workers are not
    # persistent on purpose: a new epoch's seed (set_epoch) reaches workers only through
    # a fresh iterator, and respawning them costs well under a second per epoch.
    workers = args.num_workers
    loader = accelerator.prepare(DataLoader(
        dataset, batch_size=args.batch_size, shuffle=False, drop_last=True,
        num_workers=workers, persistent_workers=False,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
        pin_memory=accelerator.device.type == "cuda"))
    if len(loader) == 0:
        raise UserError(f"--batch_size {args.batch_size}: larger than an epoch's samples "
                        f"({len(dataset)}); lower it or raise --steps_per_epoch")
    return loader, len(loader)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict, what: str, source: Any) -> None:
    """Load a checkpoint's optimizer state; one that does not fit is one line."""
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{source}: its {what} state does not match this "
                        f"step's parameters ({exc}); use --load_pretrained for weights only") from None


# -- events ---------------------------------------------------------------------------
class CheckedEvents(EventWriter):
    """The event writer, with a failed write (disk full...) as a :class:`WriteError`."""

    def __init__(self, path: Any, schema: dict[str, tuple[str, ...]] = EVENT_FIELDS):
        try:
            super().__init__(path, schema)
        except OSError as exc:
            if (cause := write_error_of(exc)) is not None and not isinstance(exc, WriteError):
                raise WriteError(path, cause) from None
            raise

    def emit(self, kind: str, /, **fields: Any) -> dict[str, Any]:
        try:
            return super().emit(kind, **fields)
        except OSError as exc:
            if (cause := write_error_of(exc)) is not None and not isinstance(exc, WriteError):
                raise WriteError(self.path, cause) from None
            raise


# -- main -----------------------------------------------------------------------------
def run_main(parse: Callable[[Sequence[str] | None], Any], make: Callable[[Any, StopRequested], Any],
             argv: list[str] | None = None) -> int:
    """Parse the flags, build the recipe under supervision (a stop during set-up is
    honoured) and run it; a UserError is one line ``error: ...`` and exit 2."""
    from dcvc_bench.errors import EXIT_USAGE

    stop = StopRequested()
    try:
        args = parse(argv)
        with supervised(stop):  # from here on a stop (or the runner's death) is honoured
            return make(args, stop).run()
    except UserError as exc:
        print_error(str(exc))
        return EXIT_USAGE


def print_error(message: str) -> None:
    try:
        print(f"error: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass  # stderr may be a file on the full disk


# -- the epoch loop -------------------------------------------------------------------
class EpochLoop:
    """The epoch loop and its stop/divergence/end rules (module docstring).

    A recipe sets ``args`` (with ``epochs``), ``stop``, ``events``, ``progress``,
    ``start`` (a :class:`~dcvc_bench.train.start.StartState`), ``loader``,
    ``train_set`` (with ``set_epoch``), ``iters_per_epoch``, ``device``, ``epoch``,
    ``best_loss``, ``last_loss`` and calls :meth:`_init_loop_state`; it implements
    :attr:`step_label`, :meth:`_emit_step_start`, :meth:`train_batch`,
    :meth:`_emit_train`, :meth:`_parameters_finite`, :meth:`_end_of_epoch`,
    :meth:`_save_pending_latest` and :meth:`_save_final`, and may override
    :meth:`_to_device` and :meth:`_images_in`.
    """

    step_label: str

    def _init_loop_state(self, continuing: bool) -> None:
        self.iter_in_epoch = 0              # iterations done in the epoch in progress
        self.epochs_this_run = 0            # epochs whose end this run reached
        self.has_own_latest = continuing
        self._epoch_end_rng: dict[str, Any] = {}

    # -- hooks ------------------------------------------------------------------------
    def _emit_step_start(self) -> None:
        raise NotImplementedError

    def train_batch(self, x: torch.Tensor) -> tuple[list[dict[str, torch.Tensor]], int]:
        """One batch: the per-update loss terms (each with ``loss``) and how many
        updates were skipped (non-finite loss)."""
        raise NotImplementedError

    def _emit_train(self, it: int, window: list[dict[str, torch.Tensor]], rate: float) -> None:
        raise NotImplementedError

    def _parameters_finite(self) -> bool:
        raise NotImplementedError

    def _end_of_epoch(self, train_loss: float) -> None:
        """Evaluate (inside :meth:`_evaluate_abandonable`), pick ``best``, write ``latest``.
        Nothing may change state before the evaluation returns: a stop abandons it."""
        raise NotImplementedError

    def _save_pending_latest(self) -> None:
        """Write ``latest`` of the trained epoch whose evaluation a stop interrupted,
        marked ``pending_end_of_epoch``, with the RNG state ``self._epoch_end_rng``."""
        raise NotImplementedError

    def _save_final(self) -> None:
        raise NotImplementedError

    def evaluate(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 from the loader -> float in [0, 1] on the device."""
        return batch.to(self.device, non_blocking=True).float().div_(255.0)

    def _images_in(self, x: torch.Tensor) -> int:
        """Frames in a batch (for ``frames_per_s``): all dimensions but C×H×W."""
        return math.prod(x.shape[:-3])

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> int:
        """Run the step under supervision (stop handlers, parent/runner watch) unless
        :func:`run_main` already set it up. A write the user must make possible (a full
        disk) ends the step ``failed`` with its one line, when that can still be written."""
        with nullcontext() if self.stop.installed else supervised(self.stop):
            try:
                return self._run()
            except WriteError as exc:
                try:  # (main turns the error into its line and exit 2)
                    self._end("failed", str(exc), EXIT_FAILED)
                except (WriteError, OSError):
                    pass  # the events file is on the full disk too
                raise

    def _run(self) -> int:
        a = self.args
        self._emit_step_start()
        if self.start.mode == "continue" and self.start.checkpoint.get("pending_end_of_epoch"):
            # Its evaluation was interrupted: do the end of that epoch now, as it would have been.
            self.progress.note(f"epoch {self.epoch}: its evaluation was interrupted; running it again")
            if (code := self._finish_epoch(self.last_loss)) is not None:
                return code
        consecutive_bad = 0
        while self.epoch < a.epochs:
            if self.stop:
                return self._interrupted()
            # Accelerate's loader sets its dataset's epoch to its own iteration count when
            # iterated (0 after a resume): give it ours, or a resumed step redraws epoch 0's samples.
            self.train_set.set_epoch(self.epoch)
            if hasattr(self.loader, "set_epoch"):
                self.loader.set_epoch(self.epoch)
            self.progress.start_epoch(self.step_label, self.epoch, a.epochs, self.iters_per_epoch)
            epoch_loss_sum, epoch_loss_n = 0.0, 0
            window: list[dict[str, torch.Tensor]] = []
            window_frames, window_t0, last_emit = 0, time.time(), 0.0
            for it, batch in enumerate(self.loader):
                x = self._to_device(batch)
                terms, skipped = self.train_batch(x)
                consecutive_bad = consecutive_bad + 1 if skipped else 0
                if consecutive_bad > MAX_CONSECUTIVE_NONFINITE:
                    return self._end("diverged", f"non-finite loss in {consecutive_bad} "
                                     "consecutive batches; kept the last good checkpoints", EXIT_DIVERGED)
                finite_terms = [t for t in terms if finite(t["loss"])]
                window.extend(finite_terms)
                window_frames += self._images_in(x)
                for t in finite_terms:
                    epoch_loss_sum += float(t["loss"])
                    epoch_loss_n += 1
                self.iter_in_epoch = it + 1
                now = time.time()
                last_iter = it + 1 == self.iters_per_epoch
                if window and (now - last_emit >= TRAIN_EVENT_INTERVAL_S or last_iter or self.stop):
                    self._emit_train(it, window, window_frames / max(now - window_t0, 1e-9))
                    window, window_frames, window_t0, last_emit = [], 0, now, now
                if self.stop:
                    break
            if self.stop and self.iter_in_epoch < self.iters_per_epoch:
                return self._interrupted()  # an epoch trained to its end goes on to its end
            if not self._parameters_finite():
                return self._end("diverged", "parameters became non-finite; kept the last good "
                                 "checkpoints", EXIT_DIVERGED)
            self.epoch += 1
            self.iter_in_epoch = 0
            train_loss = epoch_loss_sum / epoch_loss_n if epoch_loss_n else math.nan
            self.last_loss = train_loss
            if (code := self._finish_epoch(train_loss)) is not None:
                return code
        self._save_final()
        return self._end("done", f"{a.epochs} epoch{'' if a.epochs == 1 else 's'} done", EXIT_DONE)

    def _finish_epoch(self, train_loss: float) -> int | None:
        """The end of a trained epoch (:meth:`_end_of_epoch`); an exit code when the step
        stops there. A stop during the evaluation abandons it at once and saves the trained
        epoch as ``latest`` marked ``pending_end_of_epoch`` (with the RNG state of this
        moment), so the resumed step runs this end of epoch again and goes on exactly as
        an uninterrupted one would."""
        self._epoch_end_rng = rng_state()
        try:
            self._end_of_epoch(train_loss)
        except StopNow:
            return self._interrupted(during_evaluation=True)
        self.has_own_latest = True
        self.epochs_this_run += 1
        return self._interrupted() if self.stop else None

    def _evaluate_abandonable(self) -> dict[str, Any] | None:
        """:meth:`evaluate`, abandoned (StopNow) as soon as a stop is asked for."""
        with self.stop.abandonable():
            return self.evaluate()

    def _interrupted(self, during_evaluation: bool = False) -> int:
        """End the step ``interrupted``. ``latest`` is only ever an epoch's end: a stop in
        the middle of an epoch saves nothing (the resumed step repeats that epoch from the
        ``latest`` of the epoch before, exactly as it ran); a stop during the evaluation
        that ends an epoch saves that epoch (see :meth:`_finish_epoch`)."""
        a, why = self.args, self.stop.describe()
        of = f"of {a.epochs}"
        if during_evaluation:
            self._save_pending_latest()
            message = (f"stopped {why} during the evaluation after epoch {self.epoch} {of}; "
                       f"latest holds epoch {self.epoch}, whose evaluation runs again on resume")
        elif self.iter_in_epoch == 0:
            if self.epochs_this_run == 0:
                message = f"stopped {why} before training epoch {self.epoch + 1} {of}; nothing saved"
            else:
                message = f"stopped {why} after epoch {self.epoch} {of}; latest holds epoch {self.epoch}"
        else:
            where = (f"in epoch {self.epoch + 1} {of} (iteration {self.iter_in_epoch} of "
                     f"{self.iters_per_epoch}); nothing saved")
            kept = (f"latest still holds epoch {self.epoch}, and a resumed step repeats epoch "
                    f"{self.epoch + 1}" if self.has_own_latest else
                    "no epoch of this step had ended, so it starts again from its beginning")
            message = f"stopped {why} {where}: {kept}"
        return self._end("interrupted", message, EXIT_INTERRUPTED)

    def _end(self, status: str, message: str, code: int) -> int:
        self.events.emit("step_end", step=self.step_label, status=status, epoch=self.epoch,
                         best_loss=self.best_loss, message=message)
        self.progress.close(f"{self.step_label}: {status} — {message}")
        return code
