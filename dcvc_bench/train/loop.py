"""One training step: one stage at one GOP size, start to finish. Read top to bottom.

How the step starts (decided from the checkpoint it is given, see
:func:`~dcvc_bench.train.start.decide_start`):
- ``--resume`` of this step's own checkpoint (same stage, GOP and mode): continue — same
  epoch counter, optimizer, scheduler, EMA, LR and RNG;
- ``--resume`` of another GOP of the same stage: its weights, optimizer, EMA and the
  stage's best loss; this step starts at epoch 0 (``--epochs`` counts THIS step);
- ``--resume`` of another stage, ``--load_pretrained``, or (no flag, stage > 1) the
  previous stage's ``best`` found in ``--checkpoint_dir``: weights only, fresh optimizer,
  because the set of trainable parameters differs between stages;
- ``--force_learning_rate`` then sets every param group's LR and clears the plateau
  scheduler's memory.

The epoch loop and its rules (``latest`` only at an epoch's end, SIGINT/SIGTERM, the
evaluation a stop abandons, non-finite losses, full disks) are every recipe's:
:mod:`dcvc_bench.train.recipe`. An interrupted and resumed step ends with the weights an
uninterrupted one would have.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from dcvc_bench.checkpoint_io import ema_fits, model_weights, save_checkpoint
from dcvc_bench.checkpoints import checkpoint_path, phase_id
from dcvc_bench.codec.gop import code_frames
from dcvc_bench.data.video import VideoGOPDataset, VideoValidationDataset
from dcvc_bench.errors import UserError
from dcvc_bench.eval.estimate import TRAIN_RATE, evaluate_clips
from dcvc_bench.models.fastpath import contiguous_tensors, prepare_input, prepare_model
from dcvc_bench.models.iframe import build_iframe_codec
from dcvc_bench.models.stages import apply_stage_freeze, reconstruction, stage_loss
from dcvc_bench.models.video_net import DCVC
from dcvc_bench.train.ema import EMA
from dcvc_bench.train.progress import Progress, eval_note
from dcvc_bench.train.recipe import (
    EXIT_DIVERGED,
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EpochLoop,
    finite,
    load_optimizer_state,
    make_accelerator,
    make_loader,
    restore_rng,
    rng_state,
    run_main,
    samples_per_epoch,
)
from dcvc_bench.train.ranks import RankCheck, RanksDiverged
from dcvc_bench.train.start import decide_start
from dcvc_bench.train.trackers import TrackedEvents, finish_trackers, start_trackers, tracker_instances
from dcvc_bench.train.stopping import StopRequested

__all__ = ["EXIT_DIVERGED", "EXIT_DONE", "EXIT_FAILED", "EXIT_INTERRUPTED", "Trainer", "main"]
AUX_LEARNING_RATE = 1e-3


class Trainer(EpochLoop):
    def __init__(self, args: Any, stop: StopRequested | None = None):
        """Set the step up in order, like a torchtune recipe: accelerator, data (bad
        folders fail before any model is built), model, optimizers and schedule, EMA and
        the best losses so far, then the prepared model and loader."""
        self.args = args
        self.phase = phase_id(args.stage, args.gop_size, args.stage4_gop_opt)
        self.stop = stop if stop is not None else StopRequested()
        self._setup_accelerator()
        self._setup_data()
        self._setup_model()
        self._setup_optimizers()
        self._setup_ema_and_bests()
        self._setup_prepared()

    def _setup_accelerator(self) -> None:
        self.accelerator = make_accelerator(self.args, tracker_instances(self.args, self.tracker_run))
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        start_trackers(self.accelerator, self.args)
        self.events = TrackedEvents(self.args.events_file if self.is_main else None, self.accelerator)
        self.ranks = RankCheck(self.accelerator, getattr(self.args, "check_ranks", "epoch"), self.events, self.phase)
        self.progress = Progress(enabled=self.is_main)

    def _setup_data(self) -> None:
        args = self.args
        self.train_set = VideoGOPDataset(args.train_video_dir, args.gop_size, args.crop_size,
                                         samples_per_epoch=samples_per_epoch(args, self.accelerator),
                                         # one seed: the ranks' shards (accelerate's sampler)
                                         # are disjoint parts of one epoch's samples
                                         seed=args.seed,
                                         frame_cache=getattr(args, "frame_cache", None))
        self.val_set = None
        if args.val_video_dir and not args.skip_eval:
            self.val_set = VideoValidationDataset(args.val_video_dir, args.eval_max_frames, min_frames=2)

    def _setup_model(self) -> None:
        """The frozen I-frame codec, DCVC with the weights it starts from, the stage's freeze."""
        args = self.args
        self.iframe = build_iframe_codec(args.i_frame_spec, device=str(self.device))

        self.net = DCVC(args.model_preset)
        if args.spynet_checkpoint:
            self.net.load_spynet(args.spynet_checkpoint)
        self.start = decide_start(args, self.phase)
        ck = self.start.checkpoint
        if ck:
            self._load_weights(model_weights(ck), self.start.source)
        apply_stage_freeze(self.net, args.stage)
        self.net.to(self.device)
        # The layout only (models/fastpath.py); the checkpoint written is the same either way.
        self.memory_format = getattr(args, "memory_format", "contiguous")
        prepare_model(self.net, self.memory_format)

    def _setup_optimizers(self) -> None:
        """Adam (main and aux); a carried optimizer when the step continues its stage; the
        forced LR of a GOP increase; the plateau scheduler (its memory cleared by a reset)."""
        args, ck = self.args, self.start.checkpoint
        main_params, aux_params = self.net.param_groups()
        self.main_params = main_params
        self.optimizer = torch.optim.Adam(main_params, lr=args.learning_rate)
        self.aux_optimizer = torch.optim.Adam(aux_params, lr=AUX_LEARNING_RATE)
        carries_optimizer = self.carries_optimizer
        if carries_optimizer and ck.get("optimizer_state_dict"):
            self._load_optimizer(self.optimizer, ck["optimizer_state_dict"], "optimizer")
            if ck.get("aux_optimizer_state_dict"):
                self._load_optimizer(self.aux_optimizer, ck["aux_optimizer_state_dict"], "aux optimizer")

        self.lr_reset = args.force_learning_rate is not None
        if self.lr_reset:
            for group in self.optimizer.param_groups:
                group["lr"] = args.force_learning_rate
        self.scheduler = None
        if args.use_scheduler:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=args.scheduler_factor,
                patience=args.scheduler_patience, min_lr=args.scheduler_min_lr)
            # Forcing the LR also clears the plateau memory (fresh scheduler).
            if carries_optimizer and not self.lr_reset and ck.get("scheduler_state_dict"):
                self.scheduler.load_state_dict(ck["scheduler_state_dict"])

    def _setup_ema_and_bests(self) -> None:
        """The EMA (made after the weights are loaded), the best losses, epoch and RNG."""
        args, ck = self.args, self.start.checkpoint
        carries_optimizer = self.carries_optimizer
        self.ema = EMA(self.net, args.ema_decay) if args.use_ema else None
        self.ema_start = self._load_ema(ck.get("ema_state_dict") if carries_optimizer else None)

        same_stage = carries_optimizer
        self.best_loss = float(ck.get("best_loss", math.inf)) if same_stage else math.inf
        self.best_ema_loss = float(ck.get("best_ema_loss", math.inf)) if same_stage else math.inf
        self.global_best_loss = float(ck.get("global_best_loss", math.inf)) if ck else math.inf
        self.epoch = self.start.start_epoch
        self.eval_history: list[dict[str, Any]] = []   # this attempt's evaluations, for latent health
        if self.start.mode == "continue" and ck.get("rng_state"):
            restore_rng(ck["rng_state"])
        self.last_loss = float(ck.get("loss", math.nan)) if self.start.mode == "continue" else math.nan
        self._init_loop_state(continuing=self.start.mode == "continue")

    def _setup_prepared(self) -> None:
        """The model, optimizers and loader handed to accelerate."""
        args = self.args
        model = torch.compile(self.net) if args.compile else self.net
        self.model, self.optimizer, self.aux_optimizer = self.accelerator.prepare(
            model, self.optimizer, self.aux_optimizer)
        if self.accelerator.num_processes > 1 and self.ema is not None and not self.start.checkpoint:
            # DDP gave every rank rank 0's random initialisation: the EMA starts from it too.
            self.ema = EMA(self.net, args.ema_decay)
        self.loader, self.iters_per_epoch = make_loader(self.accelerator, self.train_set, args)

    @property
    def step_label(self) -> str:
        return self.phase

    @property
    def tracker_run(self) -> str:
        """The step's run name in the trackers (``--tracker_run``, else its phase id)."""
        return getattr(self.args, "tracker_run", None) or self.phase

    def run(self) -> int:
        try:
            return super().run()
        except RanksDiverged as exc:  # every rank saw the same digests: all end here
            return self._end("failed", str(exc), EXIT_FAILED)
        finally:
            finish_trackers(self.accelerator)

    @property
    def carries_optimizer(self) -> bool:
        """The step continues its stage: it starts from that stage's optimizer state."""
        return self.start.mode in ("continue", "new_phase")

    # -- setup helpers --------------------------------------------------------------
    def _load_weights(self, weights: dict[str, torch.Tensor], source: Path | None) -> None:
        try:
            self.net.load_state_dict(weights)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise UserError(f"{source}: weights do not fit a '{self.args.model_preset}' DCVC "
                            f"model ({first}); check --model_preset") from None

    def _load_ema(self, saved: Any) -> str | None:
        """Continue the checkpoint's EMA when the step carries its optimizer; one that does
        not fit this model is an error, never dropped silently. Returns how the EMA
        started (recorded in ``step_start``)."""
        if self.ema is None:
            return None
        if not saved:
            return "from the loaded weights" if self.start.checkpoint else "from the initial weights"
        if not ema_fits(self.net, saved):
            raise UserError(f"{self.start.source}: its EMA state (ema_state_dict) does not fit a "
                            f"'{self.args.model_preset}' DCVC model; resume with --no-use_ema, or "
                            "--load_pretrained for its weights only")
        self.ema.load_state_dict(saved, self.net)
        return f"continued ({self.ema.num_updates} updates)"

    def _load_optimizer(self, optimizer: torch.optim.Optimizer, state: dict, what: str) -> None:
        load_optimizer_state(optimizer, state, what, self.start.source)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- checkpoints ----------------------------------------------------------------
    def _state(self, loss: float, finished: bool, kind: str) -> dict[str, Any]:
        a = self.args
        return {
            "epoch": self.epoch, "epochs": a.epochs,
            # Contiguous whatever --memory_format ran: a checkpoint does not depend on it.
            "model_state_dict": contiguous_tensors(self.net.state_dict()),
            "optimizer_state_dict": contiguous_tensors(self.optimizer.state_dict()),
            "aux_optimizer_state_dict": contiguous_tensors(self.aux_optimizer.state_dict()),
            "loss": loss, "best_loss": self.best_loss, "best_ema_loss": self.best_ema_loss,
            "global_best_loss": self.global_best_loss,
            "stage": a.stage, "quality_index": a.quality_index, "lambda_value": a.lambda_value,
            "ema_state_dict": contiguous_tensors(self.ema.state_dict()) if self.ema else None,
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler else None,
            "is_finetuning": bool(a.stage4_gop_opt), "gop_size": a.gop_size,
            "step_id": self.phase, "rng_state": rng_state(), "finished": finished,
            "pending_end_of_epoch": False,
            "kind": kind, "lr": self.lr, "model_preset": a.model_preset,
            # How frame 0 of each GOP is coded: evaluation rebuilds the same I-frame codec.
            "i_frame": self.iframe.spec.to_record(),
        }

    def save(self, kind: str, loss: float, finished: bool = False,
             weights: dict[str, torch.Tensor] | None = None, extra: dict[str, Any] | None = None) -> None:
        if not self.is_main:
            return
        a = self.args
        state = self._state(loss, finished, kind)
        if weights is not None:
            state["model_state_dict"] = contiguous_tensors(weights)
        state.update(extra or {})
        path = checkpoint_path(a.checkpoint_dir, a.lambda_value, a.quality_index, a.stage, kind)
        save_checkpoint(path, state)
        self.events.emit("checkpoint", step=self.phase, kind=kind, path=str(path),
                         epoch=self.epoch, loss=loss)

    # -- training ---------------------------------------------------------------------
    def _iframe_fn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = self.iframe.estimate(x)
        return result.x_hat.to(x.device), result.bits.to(x.device)

    def _optimizer_step(self) -> None:
        if self.accelerator.sync_gradients and self.args.grad_clip_max_norm > 0:
            self.accelerator.clip_grad_norm_(self.main_params, self.args.grad_clip_max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _optimizer_stepped(self) -> bool:
        """Whether the last ``_optimizer_step`` changed the weights: not a micro-step of
        gradient accumulation, nor a step the fp16 grad scaler skipped."""
        return self.accelerator.sync_gradients and not getattr(self.optimizer, "step_was_skipped", False)

    def _aux_step(self) -> None:
        """Fit the entropy bottlenecks' quantiles (kept out of the main optimizer)."""
        aux_loss = self.net.aux_loss()
        if aux_loss.requires_grad:
            # torch.autograd.grad, not backward(): a backward outside DDP's forward would
            # fire DDP's gradient hooks, marking the quantiles used in the next iteration,
            # whose reduction then fails on their missing gradients (num_processes > 1).
            params = [p for group in self.aux_optimizer.param_groups for p in group["params"] if p.requires_grad]
            for p, grad in zip(params, torch.autograd.grad(aux_loss, params, allow_unused=True)):
                if grad is not None:
                    p.grad = grad if p.grad is None else p.grad + grad
            self.aux_optimizer.step()
        self.aux_optimizer.zero_grad(set_to_none=True)

    def train_batch(self, frames: torch.Tensor) -> tuple[list[dict[str, torch.Tensor]], int]:
        """Train on one batch of GOPs (B×T×3×H×W in [0,1]).

        Default: one optimizer step per P-frame, reference detached. GOP optimisation:
        the loss summed over the GOP through the undetached reference chain, one step.
        Returns the per-P-frame terms and the number of skipped (non-finite) updates.
        The accumulate/autocast contexts must cover the forward (DDP decides at forward
        time whether to all-reduce), so they are opened in the P-frame callback.
        """
        stage, lmbda = self.args.stage, self.args.lambda_value
        gop_opt = self.args.stage4_gop_opt
        self.ranks.note_batch(frames)
        open_contexts: list[ExitStack] = []

        def pframe(ref: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
            if not open_contexts:
                stack = ExitStack()
                stack.enter_context(self.accelerator.accumulate(self.model))
                open_contexts.append(stack)
            with self.accelerator.autocast():
                return self.model(prepare_input(ref, self.memory_format), prepare_input(x, self.memory_format))

        def close_contexts() -> None:
            while open_contexts:
                open_contexts.pop().close()

        def update(loss: torch.Tensor) -> bool:
            if not finite(loss):
                self.optimizer.zero_grad(set_to_none=True)
                return False
            self.accelerator.backward(loss)
            self._optimizer_step()
            self._aux_step()
            if self._optimizer_stepped():
                if self.ema is not None:
                    self.ema.update(self.net)
                self.ranks.after_optimizer_step(self.net, self.ema, self.epoch, self.iter_in_epoch + 1)
            return True

        terms_list: list[dict[str, torch.Tensor]] = []
        gop_losses: list[torch.Tensor] = []
        skipped = 0
        try:
            for coded in code_frames(frames, self._iframe_fn, pframe,
                                     lambda out: reconstruction(out, stage),
                                     detach_reference=not gop_opt):
                if coded.kind == "I":
                    continue
                loss, terms = stage_loss(coded.output, coded.x, stage, lmbda)
                terms_list.append(terms)
                if gop_opt:
                    gop_losses.append(loss)
                    continue
                skipped += not update(loss)
                close_contexts()
            if gop_opt:
                skipped += not update(torch.stack(gop_losses).sum())
        finally:
            close_contexts()
        return terms_list, skipped

    def evaluate(self) -> dict[str, Any] | None:
        if self.val_set is None or not self.is_main:
            return None
        a = self.args
        intra = None if a.eval_intra_period == -1 else a.eval_intra_period
        clips = (self.val_set[i] for i in range(len(self.val_set)))
        result = evaluate_clips(self.net, self.iframe, clips, a.stage, a.lambda_value, intra, self.device)
        result["ema"] = None
        if self.ema is not None and a.evaluate_both:
            averaged = self.ema.averaged_copy(self.net)
            clips = (self.val_set[i] for i in range(len(self.val_set)))
            ema = evaluate_clips(averaged, self.iframe, clips, a.stage, a.lambda_value, intra, self.device,
                                 measure_proxy=False)
            ema.pop("clips", None)
            result["ema"] = ema
        return result

    def _emit_step_start(self) -> None:
        a = self.args
        if self.is_main:
            print(f"[dcvc-bench] {self.phase}: {self.start.message}", flush=True)
        self.events.emit("step_start", step=self.phase, stage=a.stage, gop=a.gop_size,
                         **{"lambda": a.lambda_value}, epochs=a.epochs, start_epoch=self.epoch,
                         lr=self.lr, resumed_from=str(self.start.source) if self.start.source else None,
                         lr_reset=self.lr_reset, start_mode=self.start.mode,
                         message=self.start.message, iters_per_epoch=self.iters_per_epoch,
                         ema_start=self.ema_start)

    def _parameters_finite(self) -> bool:
        return all(finite(p) for p in self.net.parameters())

    def _save_final(self) -> None:
        self.save("final", self.last_loss, finished=True)

    def _save_pending_latest(self) -> None:
        self.save("latest", self.last_loss,
                  extra={"pending_end_of_epoch": True, "rng_state": self._epoch_end_rng})

    def _end_of_epoch(self, train_loss: float) -> None:
        """Evaluate when due; step the plateau scheduler and pick ``best`` on ONE quantity.

        With evaluation on (only on evaluation epochs), both are the validation ``loss`` of
        the codec a decoder implements (:func:`dcvc_bench.eval.estimate.selection_loss`:
        the decoded x̂ in every stage, never stage 1's warped prediction, and the exact
        cost of the coded symbols of the stage's rate terms); ``global_best`` is its
        ``rd_loss`` (all frames, all rates). With evaluation off, nothing a decoder
        reproduces ranks the epochs: the scheduler steps on the training loss and
        ``best`` is the newest epoch. The value comes from the main process (the only
        one that evaluates) so every rank takes the same scheduler step."""
        a = self.args
        if self.ranks.mode == "epoch":
            self.ranks.at_epoch_end(self.net, self.ema, self.epoch - 1, self.iters_per_epoch)
        evaluating = bool(a.val_video_dir) and not a.skip_eval
        due = evaluating and ((self.epoch % a.eval_freq == 0) or self.epoch == a.epochs)
        # Nothing may change state before this returns: a stop abandons it (_finish_epoch).
        result = self._evaluate_abandonable() if due else None
        selection_loss: float | None = None if evaluating else train_loss
        if result is not None:
            selection_loss = result["loss"]
            self.events.emit("eval", step=self.phase, epoch=self.epoch, **{
                k: result[k] for k in ("psnr", "bpp", "ssim", "ms_ssim", "rd_loss", "i_frame", "p_frame",
                                       "ema", "loss", "p_first3", "rate_estimate", "latents",
                                       "train_proxy", "clips")})
            self.eval_history.append({"epoch": self.epoch, "latents": result["latents"]})
            self.progress.note(eval_note(result, self.eval_history, a.stage))
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            selection_loss = broadcast_object_list([selection_loss], from_process=0)[0]
        if selection_loss is None or not math.isfinite(selection_loss):
            selection_loss = None
        if self.scheduler is not None and selection_loss is not None:
            self.scheduler.step(selection_loss)
        self.save("latest", train_loss)
        if not evaluating and math.isfinite(train_loss):  # the newest: no training loss speaks for a decoder
            self.best_loss = train_loss
            self.save("best", train_loss)
        elif selection_loss is not None and selection_loss < self.best_loss:
            self.best_loss = selection_loss
            self.save("best", selection_loss)
        if result is not None:
            if result["ema"] is not None and result["ema"]["loss"] is not None \
                    and result["ema"]["loss"] < self.best_ema_loss:
                self.best_ema_loss = result["ema"]["loss"]
                self.save("best_ema", self.best_ema_loss,
                          weights=self.ema.averaged_copy(self.net).state_dict())
            if result["rd_loss"] is not None and result["rd_loss"] < self.global_best_loss:
                self.global_best_loss = result["rd_loss"]
                self.save("global_best", self.global_best_loss)

    def _emit_train(self, it: int, window: list[dict[str, torch.Tensor]], fps: float) -> None:
        mean = {k: float(torch.stack([t[k] for t in window]).mean()) for k in window[0]}
        psnr = -10.0 * math.log10(max(mean["mse"], 1e-10))
        self.events.emit("train", step=self.phase, epoch=self.epoch, iter=it + 1,
                         iters_per_epoch=self.iters_per_epoch, loss=mean["loss"], mse=mean["mse"],
                         psnr=psnr, bpp=mean["bpp"], bpp_y=mean["bpp_y"], bpp_z=mean["bpp_z"],
                         bpp_mv_y=mean["bpp_mv_y"], bpp_mv_z=mean["bpp_mv_z"], lr=self.lr,
                         frames_per_s=fps, rate_estimate=TRAIN_RATE)
        self.progress.update(it + 1, mean["loss"], mean["bpp"], psnr, self.lr)


def main(argv: list[str] | None = None) -> int:
    from dcvc_bench.train.args import parse_args

    return run_main(parse_args, Trainer, argv)
