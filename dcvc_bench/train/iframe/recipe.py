"""The I-frame training step: train a VQGAN, an RVQ-VQGAN or a CompressAI image model on
single-frame crops of the training clips. Read top to bottom.

How the step starts:
- ``--resume`` of this step's own checkpoint (same ``--i_frame_type`` and ``--step_tag``):
  continue exactly: epoch and iteration counters, both optimizers, codebooks (they are
  buffers of the weights), discriminator, best loss, RNG;
- ``--load_pretrained`` of another I-frame step's checkpoint (or any VQ checkpoint of the
  same config): its weights (and its discriminator's), fresh optimizers, epoch 0;
- neither: random weights.

``--force_learning_rate LR`` then sets the LR of every param group of the autoencoder's
(CompressAI: the model's) optimizer after its state is loaded, as the P-frame step does;
the discriminator's optimizer gets ``LR × --disc_learning_rate / --learning_rate`` (the
ratio of the two LRs is kept, so a divergence roll-back lowers both by the same factor);
CompressAI's aux optimizer keeps its own fixed LR (the P-frame step's aux does too).
``step_start`` then has ``lr_reset: true``. The runner passes it when it rolls a
diverged step back to its latest.

The epoch loop and its rules (``latest`` only at an epoch's end, SIGINT/SIGTERM, the
evaluation a stop abandons, non-finite losses, full disks) are the P-frame step's:
:mod:`dcvc_bench.train.recipe`. At each epoch's end: the ``codebook`` event (VQ), the
evaluation when due (``eval``), ``latest``, and ``best`` on the validation loss (the newest
epoch when nothing is evaluated); ``final`` after the last epoch. What a batch does and
what a checkpoint holds is the family's: :mod:`.vq`, :mod:`.compressai_model`.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch

from dcvc_bench.checkpoint_io import is_iframe_checkpoint, load_iframe_checkpoint, load_plain, save_checkpoint
from dcvc_bench.checkpoints import IFRAME_KINDS, iframe_checkpoint_path
from dcvc_bench.curriculum.iframe_spec import COMPRESSAI_TYPE, VQ_TYPES
from dcvc_bench.data.frames import FrameCropDataset, ValidationFrames
from dcvc_bench.errors import UserError
from dcvc_bench.events import IFRAME_EVENT_FIELDS
from dcvc_bench.models.iframe.vq_checkpoint import is_vq_checkpoint
from dcvc_bench.train.progress import Progress
from dcvc_bench.train.recipe import (
    CheckedEvents,
    EpochLoop,
    make_accelerator,
    make_loader,
    restore_rng,
    rng_state,
    run_main,
    samples_per_epoch,
)
from dcvc_bench.train.start import StartState
from dcvc_bench.train.stopping import StopRequested

KIND = "iframe"


class IFrameTrainer(EpochLoop):
    def __init__(self, args: Any, stop: StopRequested | None = None):
        """Set the step up in order: accelerator, data (bad folders fail before any model
        is built), what it starts from, the family (model, losses, optimizers, prepared),
        the counters and RNG, then the prepared loader."""
        self.args = args
        self.stop = stop if stop is not None else StopRequested()
        self._setup_accelerator()
        self._setup_data()
        self._setup_start()
        self._setup_family()
        self._setup_forced_lr()
        self._setup_state()
        self.loader, self.iters_per_epoch = make_loader(self.accelerator, self.train_set, args)

    @property
    def step_label(self) -> str:
        return self.args.step_tag

    def _setup_accelerator(self) -> None:
        self.accelerator = make_accelerator(self.args)
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        self.events = CheckedEvents(self.args.events_file if self.is_main else None, IFRAME_EVENT_FIELDS)
        self.progress = Progress(enabled=self.is_main)

    def _setup_data(self) -> None:
        a = self.args
        self.train_set = FrameCropDataset(a.train_video_dir, a.crop_size, samples_per_epoch(a, self.accelerator),
                                          seed=a.seed + self.accelerator.process_index)
        self.val_set = None
        if a.val_video_dir and not a.skip_eval:
            self.val_set = ValidationFrames(a.val_video_dir, a.eval_max_frames)

    def _setup_start(self) -> None:
        self.start = decide_start(self.args)

    def _setup_family(self) -> None:
        vq = self.args.i_frame_type in VQ_TYPES
        if vq:
            from dcvc_bench.train.iframe.vq import VQFamily as Family
        else:
            from dcvc_bench.train.iframe.compressai_model import CompressAIFamily as Family
        self.family = Family(self.args, self.accelerator, self.start)
        perceptual = getattr(self.family, "perceptual", None)
        if self.is_main and perceptual is not None and not perceptual.on and self.args.perceptual_weight > 0:
            print(f"warning: the perceptual (LPIPS) term is off: {perceptual.reason}", file=sys.stderr, flush=True)

    def _setup_forced_lr(self) -> None:
        """``--force_learning_rate`` on the loaded optimizers (module docstring)."""
        a, forced = self.args, self.args.force_learning_rate
        self.lr_reset = forced is not None
        if forced is None:
            return
        for group in self.family.optimizer.param_groups:
            group["lr"] = forced
        self.start.message += f", LR forced to {forced:g}"
        disc = getattr(self.family, "disc_optimizer", None)
        if disc is not None:
            disc_lr = forced * a.disc_learning_rate / a.learning_rate
            for group in disc.param_groups:
                group["lr"] = disc_lr
            self.start.message += f" (discriminator {disc_lr:g})"

    def _setup_state(self) -> None:
        ck, continuing = self.start.checkpoint, self.start.mode == "continue"
        self.epoch = self.start.start_epoch
        self.iteration = int(ck.get("iteration", 0)) if continuing else 0
        self.best_loss = float(ck.get("best_loss", math.inf)) if continuing else math.inf
        self.last_loss = float(ck.get("loss", math.nan)) if continuing else math.nan
        if continuing and ck.get("rng"):
            restore_rng(ck["rng"])
        self._init_loop_state(continuing)

    # -- the loop's hooks -------------------------------------------------------------
    def _emit_step_start(self) -> None:
        a = self.args
        if self.is_main:
            print(f"[dcvc-bench] iframe {a.i_frame_type} {a.step_tag}: {self.start.message}", flush=True)
        self.events.emit("step_start", step=a.step_tag, kind=KIND, i_frame_type=a.i_frame_type, stage=None,
                         gop=None, **{"lambda": a.lambda_value if a.i_frame_type == COMPRESSAI_TYPE else None},
                         epochs=a.epochs, start_epoch=self.epoch, lr=self.family.lr,
                         resumed_from=str(self.start.source) if self.start.source else None, lr_reset=self.lr_reset,
                         start_mode=self.start.mode, message=self.start.message,
                         iters_per_epoch=self.iters_per_epoch, iteration=self.iteration,
                         processes=self.accelerator.num_processes, **self.family.describe())

    def train_batch(self, x: torch.Tensor) -> tuple[list[dict[str, torch.Tensor]], int]:
        terms, skipped = self.family.train_batch(x, self.iteration)
        self.iteration += 1
        return terms, skipped

    def _emit_train(self, it: int, window: list[dict[str, torch.Tensor]], rate: float) -> None:
        keys = {k for t in window for k in t}
        mean = {k: float(torch.stack([t[k].float() for t in window if k in t]).mean()) for k in keys}
        fields = self.family.train_fields(mean, self.iteration - 1)
        self.events.emit("train", step=self.args.step_tag, epoch=self.epoch, iter=it + 1, iteration=self.iteration,
                         iters_per_epoch=self.iters_per_epoch, loss=mean["loss"], lr=self.family.lr,
                         frames_per_s=rate, **fields)
        self.progress.update(it + 1, mean["loss"], fields["bpp"], fields["psnr"], self.family.lr)

    def _parameters_finite(self) -> bool:
        return self.family.parameters_finite()

    def evaluate(self) -> dict[str, Any] | None:
        if self.val_set is None or not self.is_main:
            return None
        return self.family.evaluate(self.val_set[i] for i in range(len(self.val_set))) or None

    def _end_of_epoch(self, train_loss: float) -> None:
        """Evaluate when due, then (state changes only after the evaluation returned) the
        ``codebook`` and ``eval`` events, ``latest``, and ``best`` on the validation loss;
        without evaluation ``best`` is the newest epoch."""
        a = self.args
        evaluating = self.val_set is not None
        due = evaluating and (self.epoch % a.eval_freq == 0 or self.epoch == a.epochs)
        result = self._evaluate_abandonable() if due else None
        stats = self.family.codebook_stats()
        if stats is not None:
            self.events.emit("codebook", step=a.step_tag, epoch=self.epoch, iter=self.iteration, layers=stats)
        selection: float | None = None if evaluating else train_loss
        if result is not None:
            selection = result["loss"]
            self.events.emit("eval", step=a.step_tag, epoch=self.epoch, **result)
            self.progress.note(_eval_note(result))
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            selection = broadcast_object_list([selection], from_process=0)[0]
        self.save("latest", train_loss)
        if selection is not None and math.isfinite(selection) and (selection < self.best_loss or not evaluating):
            self.best_loss = selection
            self.save("best", selection)
        self.family.begin_epoch()

    def _save_pending_latest(self) -> None:
        self.save("latest", self.last_loss, pending=True, rng=self._epoch_end_rng)

    def _save_final(self) -> None:
        fit = getattr(self.family, "fit_counts", None)
        if fit is not None:  # VQ: the final's index tables, fitted on training crops
            a = self.args
            fit_set = FrameCropDataset(a.train_video_dir, a.crop_size, min(a.index_fit_samples, len(self.train_set)),
                                       seed=a.seed + self.accelerator.process_index)
            fit_set.set_epoch(a.epochs)  # a draw no training epoch made
            loader = torch.utils.data.DataLoader(fit_set, batch_size=a.batch_size, num_workers=a.num_workers)
            batches = iter(loader)
            first = next(batches)
            self.family.initialise_unrun_layers(first)
            if self.is_main:
                fit([first, *batches])
        self.save("final", self.last_loss, finished=True)

    # -- checkpoints ------------------------------------------------------------------
    def save(self, kind: str, loss: float, finished: bool = False, pending: bool = False,
             rng: dict[str, Any] | None = None) -> None:
        if not self.is_main:
            return
        a = self.args
        state = self.family.content()
        state.update({
            "kind": KIND, "checkpoint_kind": kind, "i_frame_type": a.i_frame_type, "step_id": a.step_tag,
            "epoch": self.epoch, "epochs": a.epochs, "iteration": self.iteration, "loss": loss,
            "best_loss": self.best_loss, "rng": rng if rng is not None else rng_state(), "finished": finished,
            "pending_end_of_epoch": pending, "lr": self.family.lr,
        })
        path = iframe_checkpoint_path(a.checkpoint_dir, a.i_frame_type, a.step_tag, kind)
        save_checkpoint(path, state)
        self.events.emit("checkpoint", step=a.step_tag, kind=kind, path=str(path), epoch=self.epoch, loss=loss)


def decide_start(args: Any) -> StartState:
    """Classify the checkpoint this step starts from (module docstring)."""
    a, tag = args, args.step_tag
    if a.resume:
        ck = load_iframe_checkpoint(a.resume, "--resume")
        if (ck.get("i_frame_type"), ck.get("step_id")) != (a.i_frame_type, tag):
            raise UserError(f"--resume: {a.resume} is the checkpoint of step {ck.get('step_id')!r} "
                            f"({ck.get('i_frame_type')}), not of this one ({tag!r}, {a.i_frame_type}); give this "
                            "step's latest, or --load_pretrained for its weights")
        return StartState("continue", _path(a.resume), ck,
                          f"resuming at epoch {ck.get('epoch', 0)} of {a.epochs} (iteration {ck.get('iteration', 0)})")
    if a.load_pretrained:
        ck = load_plain(a.load_pretrained, "--load_pretrained")
        vq = a.i_frame_type in VQ_TYPES
        fits = (is_iframe_checkpoint(ck) and ck.get("i_frame_type") == a.i_frame_type) or (vq and is_vq_checkpoint(ck))
        if not fits:
            raise UserError(f"--load_pretrained: {a.load_pretrained} is not the checkpoint of an I-frame step of "
                            f"type {a.i_frame_type}" + (" nor a VQ checkpoint" if vq else ""))
        return StartState("weights_only", _path(a.load_pretrained), ck,
                          f"weights of {ck.get('step_id') or 'a VQ checkpoint'} (--load_pretrained), fresh optimizers")
    return StartState("fresh", None, {}, "fresh start (random weights)")


def _path(value: str) -> Any:
    from pathlib import Path

    return Path(value)


def _eval_note(result: dict[str, Any]) -> str:
    text = f"eval: PSNR {result['psnr']:.2f} dB, BPP {result['bpp']:.4f}, loss {result['loss']:.4f}"
    for d in result.get("depths") or []:
        text += f"\n    {d['layers']} layers: PSNR {d['psnr']:.2f} dB, BPP {d['bpp_uniform']:.4f} uniform, " \
                f"{d['bpp_entropy']:.4f} entropy"
    return text


def main(argv: list[str] | None = None) -> int:
    from dcvc_bench.train.iframe.args import parse_args

    return run_main(parse_args, IFrameTrainer, argv)


__all__ = ["IFRAME_KINDS", "IFrameTrainer", "decide_start", "main"]
