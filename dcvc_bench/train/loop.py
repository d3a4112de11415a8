"""One training step: one stage at one GOP size, start to finish. Read top to bottom.

How the step starts (decided from the checkpoint it is given, see :func:`decide_start`):
- ``--resume`` of this step's own checkpoint (same stage, GOP and mode): continue — same
  epoch counter, optimizer, scheduler, EMA, LR and RNG;
- ``--resume`` of another GOP of the same stage: its weights, optimizer, EMA and the
  stage's best loss; this step starts at epoch 0 (``--epochs`` counts THIS step);
- ``--resume`` of another stage, ``--load_pretrained``, or (no flag, stage > 1) the
  previous stage's ``best`` found in ``--checkpoint_dir``: weights only, fresh optimizer,
  because the set of trainable parameters differs between stages;
- ``--force_learning_rate`` then sets every param group's LR and clears the plateau
  scheduler's memory.

A crash costs at most the current epoch: ``latest`` is written after every epoch (and on
SIGINT/SIGTERM after the current iteration). A non-finite loss skips the batch; too many
in a row end the step as ``diverged`` without touching the good checkpoints.
"""

from __future__ import annotations

import math
import random
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dcvc_bench.checkpoint_io import load_checkpoint, model_weights, save_checkpoint
from dcvc_bench.checkpoints import checkpoint_path, phase_id
from dcvc_bench.codec.gop import code_frames
from dcvc_bench.data.video import VideoGOPDataset, VideoValidationDataset
from dcvc_bench.errors import UserError
from dcvc_bench.eval.estimate import evaluate_clips
from dcvc_bench.events import EventWriter
from dcvc_bench.models.iframe import build_iframe_codec
from dcvc_bench.models.stages import apply_stage_freeze, reconstruction, stage_loss
from dcvc_bench.models.video_net import DCVC
from dcvc_bench.train.ema import EMA
from dcvc_bench.train.progress import Progress

EXIT_DONE, EXIT_FAILED, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 3, 130
MAX_CONSECUTIVE_NONFINITE = 5
AUX_LEARNING_RATE = 1e-3
TRAIN_EVENT_INTERVAL_S = 0.5


@dataclass
class StartState:
    """What the step starts from; see the module docstring."""

    mode: str                       # "fresh" | "continue" | "new_phase" | "weights_only"
    source: Path | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def start_epoch(self) -> int:
        return int(self.checkpoint.get("epoch", 0)) if self.mode == "continue" else 0


def decide_start(args: Any, phase: str) -> StartState:
    """Classify the checkpoint this step starts from (pure: loads, never mutates)."""
    if args.resume:
        ck = load_checkpoint(args.resume, "--resume")
        same_stage = int(ck.get("stage", -1)) == args.stage
        if same_stage and ck.get("step_id") == phase:
            return StartState("continue", Path(args.resume), ck,
                              f"resuming {phase} at epoch {ck.get('epoch', 0)} of {args.epochs}")
        if same_stage:
            return StartState("new_phase", Path(args.resume), ck,
                              f"new step {phase} from {ck.get('step_id') or 'an older step'}: "
                              "its weights and optimizer, epoch 0")
        return StartState("weights_only", Path(args.resume), ck,
                          f"checkpoint is from stage {ck.get('stage')}: weights only, fresh "
                          f"optimizer (stage {args.stage} trains a different set of parameters)")
    if args.load_pretrained:
        ck = load_checkpoint(args.load_pretrained, "--load_pretrained")
        return StartState("weights_only", Path(args.load_pretrained), ck,
                          "weights only (--load_pretrained), fresh optimizer")
    if args.stage > 1:
        prev = checkpoint_path(args.checkpoint_dir, args.lambda_value, args.quality_index,
                               args.stage - 1, "best")
        if prev.is_file():
            ck = load_checkpoint(prev, "previous stage's best")
            return StartState("weights_only", prev, ck,
                              f"stage {args.stage - 1}'s best found in --checkpoint_dir: "
                              "weights only, fresh optimizer")
        return StartState("fresh", None, {}, f"WARNING: no stage {args.stage - 1} best at {prev}; "
                          "starting from random weights")
    return StartState("fresh", None, {}, "fresh start (random weights)")


def _finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


class StopRequested:
    """SIGINT/SIGTERM set a flag; the loop stops after the current iteration."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> dict[int, Any]:
        """Install the handlers; returns the previous ones for :meth:`restore`."""
        return {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def restore(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _handler(self, signum: int, _frame: Any) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return self.signal is not None


class Trainer:
    def __init__(self, args: Any):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        self.args = args
        self.phase = phase_id(args.stage, args.gop_size, args.stage4_gop_opt)
        self.accelerator = Accelerator(
            mixed_precision=args.mixed_precision,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            # Frozen or loss-free parameters get no gradient in some stages.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process
        set_seed(args.seed, device_specific=True)
        self.events = EventWriter(args.events_file if self.is_main else None)
        self.progress = Progress(enabled=self.is_main)
        self.stop = StopRequested()

        # Data first: bad folders fail before any model is built.
        self.train_set = VideoGOPDataset(args.train_video_dir, args.gop_size, args.crop_size,
                                         samples_per_epoch=self._samples_per_epoch(),
                                         seed=args.seed + self.accelerator.process_index)
        self.val_set = None
        if args.val_video_dir and not args.skip_eval:
            self.val_set = VideoValidationDataset(args.val_video_dir, args.eval_max_frames)

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

        main_params, aux_params = self.net.param_groups()
        self.main_params = main_params
        self.optimizer = torch.optim.Adam(main_params, lr=args.learning_rate)
        self.aux_optimizer = torch.optim.Adam(aux_params, lr=AUX_LEARNING_RATE)
        carries_optimizer = self.start.mode in ("continue", "new_phase")
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

        # EMA is created after the weights are loaded.
        self.ema = EMA(self.net, args.ema_decay) if args.use_ema else None
        if self.ema is not None and carries_optimizer and ck.get("ema_state_dict"):
            self.ema.load_state_dict(ck["ema_state_dict"])

        same_stage = carries_optimizer
        self.best_loss = float(ck.get("best_loss", math.inf)) if same_stage else math.inf
        self.best_ema_loss = float(ck.get("best_ema_loss", math.inf)) if same_stage else math.inf
        self.global_best_loss = float(ck.get("global_best_loss", math.inf)) if ck else math.inf
        self.epoch = self.start.start_epoch
        if self.start.mode == "continue" and ck.get("rng_state"):
            self._restore_rng(ck["rng_state"])
        self.last_loss = float(ck.get("loss", math.nan)) if self.start.mode == "continue" else math.nan

        model = torch.compile(self.net) if args.compile else self.net
        self.model, self.optimizer, self.aux_optimizer = self.accelerator.prepare(
            model, self.optimizer, self.aux_optimizer)
        self.loader = self.accelerator.prepare(DataLoader(
            self.train_set, batch_size=args.batch_size, shuffle=False, drop_last=True,
            num_workers=args.num_workers, persistent_workers=False,
            pin_memory=self.device.type == "cuda"))
        self.iters_per_epoch = len(self.loader)
        if self.iters_per_epoch == 0:
            raise UserError(f"--batch_size {args.batch_size}: larger than an epoch's samples "
                            f"({len(self.train_set)}); lower it or raise --steps_per_epoch")

    # -- setup helpers --------------------------------------------------------------
    def _samples_per_epoch(self) -> int | None:
        if self.args.steps_per_epoch is None:
            return None
        return self.args.steps_per_epoch * self.args.batch_size * self.accelerator.num_processes

    def _load_weights(self, weights: dict[str, torch.Tensor], source: Path | None) -> None:
        try:
            self.net.load_state_dict(weights)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise UserError(f"{source}: weights do not fit a '{self.args.model_preset}' DCVC "
                            f"model ({first}); check --model_preset") from None

    def _load_optimizer(self, optimizer: torch.optim.Optimizer, state: dict, what: str) -> None:
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError) as exc:
            raise UserError(f"{self.start.source}: its {what} state does not match this "
                            f"step's parameters ({exc}); use --load_pretrained for weights only") from None

    def _rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "python" in state:
            random.setstate(_as_tuple(state["python"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- checkpoints ----------------------------------------------------------------
    def _state(self, loss: float, finished: bool, kind: str) -> dict[str, Any]:
        a = self.args
        return {
            "epoch": self.epoch, "epochs": a.epochs,
            "model_state_dict": self.net.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "aux_optimizer_state_dict": self.aux_optimizer.state_dict(),
            "loss": loss, "best_loss": self.best_loss, "best_ema_loss": self.best_ema_loss,
            "global_best_loss": self.global_best_loss,
            "stage": a.stage, "quality_index": a.quality_index, "lambda_value": a.lambda_value,
            "ema_state_dict": self.ema.state_dict() if self.ema else None,
            "scheduler_state_dict": self.scheduler.state_dict() if self.scheduler else None,
            "is_finetuning": bool(a.stage4_gop_opt), "gop_size": a.gop_size,
            "step_id": self.phase, "rng_state": self._rng_state(), "finished": finished,
            "kind": kind, "lr": self.lr, "model_preset": a.model_preset,
            # How frame 0 of each GOP is coded: evaluation rebuilds the same I-frame codec.
            "i_frame": self.iframe.spec.to_record(),
        }

    def save(self, kind: str, loss: float, finished: bool = False,
             weights: dict[str, torch.Tensor] | None = None) -> None:
        if not self.is_main:
            return
        a = self.args
        state = self._state(loss, finished, kind)
        if weights is not None:
            state["model_state_dict"] = weights
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

    def _aux_step(self) -> None:
        """Fit the entropy bottlenecks' quantiles (kept out of the main optimizer)."""
        aux_loss = self.net.aux_loss()
        if aux_loss.requires_grad:
            aux_loss.backward()
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
        open_contexts: list[ExitStack] = []

        def pframe(ref: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
            if not open_contexts:
                stack = ExitStack()
                stack.enter_context(self.accelerator.accumulate(self.model))
                open_contexts.append(stack)
            with self.accelerator.autocast():
                return self.model(ref, x)

        def close_contexts() -> None:
            while open_contexts:
                open_contexts.pop().close()

        def update(loss: torch.Tensor) -> bool:
            if not _finite(loss):
                self.optimizer.zero_grad(set_to_none=True)
                return False
            self.accelerator.backward(loss)
            self._optimizer_step()
            self._aux_step()
            if self.ema is not None:
                self.ema.update(self.net)
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
            ema = evaluate_clips(averaged, self.iframe, clips, a.stage, a.lambda_value, intra, self.device)
            ema.pop("clips", None)
            result["ema"] = ema
        return result

    def run(self) -> int:
        previous = self.stop.install()
        try:
            return self._run()
        finally:
            self.stop.restore(previous)

    def _run(self) -> int:
        a = self.args
        if self.is_main:
            print(f"[dcvc-bench] {self.phase}: {self.start.message}", flush=True)
        self.events.emit("step_start", step=self.phase, stage=a.stage, gop=a.gop_size,
                         **{"lambda": a.lambda_value}, epochs=a.epochs, start_epoch=self.epoch,
                         lr=self.lr, resumed_from=str(self.start.source) if self.start.source else None,
                         lr_reset=self.lr_reset, start_mode=self.start.mode,
                         message=self.start.message, iters_per_epoch=self.iters_per_epoch)
        consecutive_bad = 0
        while self.epoch < a.epochs:
            self.train_set.set_epoch(self.epoch)
            self.progress.start_epoch(self.phase, self.epoch, a.epochs, self.iters_per_epoch)
            epoch_loss_sum, epoch_loss_n = 0.0, 0
            window: list[dict[str, torch.Tensor]] = []
            window_frames, window_t0, last_emit = 0, time.time(), 0.0
            for it, batch in enumerate(self.loader):
                frames = batch.to(self.device, non_blocking=True).float().div_(255.0)
                terms, skipped = self.train_batch(frames)
                consecutive_bad = consecutive_bad + 1 if skipped else 0
                if consecutive_bad > MAX_CONSECUTIVE_NONFINITE:
                    return self._end("diverged", f"non-finite loss in {consecutive_bad} "
                                     "consecutive batches; kept the last good checkpoints", EXIT_DIVERGED)
                finite_terms = [t for t in terms if _finite(t["loss"])]
                window.extend(finite_terms)
                window_frames += frames.shape[0] * frames.shape[1]
                for t in finite_terms:
                    epoch_loss_sum += float(t["loss"])
                    epoch_loss_n += 1
                now = time.time()
                last_iter = it + 1 == self.iters_per_epoch
                if window and (now - last_emit >= TRAIN_EVENT_INTERVAL_S or last_iter or self.stop):
                    self._emit_train(it, window, window_frames / max(now - window_t0, 1e-9))
                    window, window_frames, window_t0, last_emit = [], 0, now, now
                if self.stop:
                    break
            if self.stop:
                return self._interrupted()
            if not all(_finite(p) for p in self.net.parameters()):
                return self._end("diverged", "parameters became non-finite; kept the last good "
                                 "checkpoints", EXIT_DIVERGED)
            self.epoch += 1
            train_loss = epoch_loss_sum / epoch_loss_n if epoch_loss_n else math.nan
            self.last_loss = train_loss
            self._end_of_epoch(train_loss)
            if self.stop:
                return self._interrupted()
        self.save("final", self.last_loss, finished=True)
        return self._end("done", f"{a.epochs} epoch{'' if a.epochs == 1 else 's'} done", EXIT_DONE)

    def _end_of_epoch(self, train_loss: float) -> None:
        """Evaluate when due; step the plateau scheduler and pick ``best`` on ONE quantity:
        the validation loss when evaluation is on (only on evaluation epochs), the training
        loss when it is off. The value comes from the main process (the only one that
        evaluates) so every rank takes the same scheduler step."""
        a = self.args
        evaluating = bool(a.val_video_dir) and not a.skip_eval
        due = evaluating and ((self.epoch % a.eval_freq == 0) or self.epoch == a.epochs)
        result = self.evaluate() if due else None
        selection_loss: float | None = None if evaluating else train_loss
        if result is not None:
            selection_loss = result["loss"]
            self.events.emit("eval", step=self.phase, epoch=self.epoch, **{
                k: result[k] for k in ("psnr", "bpp", "ms_ssim", "rd_loss", "i_frame", "p_frame",
                                       "ema", "loss", "p_first3", "clips")})
            self.progress.note(f"eval: PSNR {result['psnr']:.2f} dB, BPP {result['bpp']:.4f}, "
                               f"loss {selection_loss:.4f}")
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            selection_loss = broadcast_object_list([selection_loss], from_process=0)[0]
        if selection_loss is None or not math.isfinite(selection_loss):
            selection_loss = None
        if self.scheduler is not None and selection_loss is not None:
            self.scheduler.step(selection_loss)
        self.save("latest", train_loss)
        if selection_loss is not None and selection_loss < self.best_loss:
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
                         frames_per_s=fps)
        self.progress.update(it + 1, mean["loss"], mean["bpp"], psnr, self.lr)

    def _interrupted(self) -> int:
        # latest keeps the completed-epoch counter: the partial epoch is redone on resume.
        self.save("latest", self.last_loss)
        name = signal.Signals(self.stop.signal).name if self.stop.signal else "signal"
        return self._end("interrupted", f"stopped by {name} in epoch {self.epoch + 1}; "
                         "latest written", EXIT_INTERRUPTED)

    def _end(self, status: str, message: str, code: int) -> int:
        self.events.emit("step_end", step=self.phase, status=status, epoch=self.epoch,
                         best_loss=self.best_loss, message=message)
        self.progress.close(f"{self.phase}: {status} — {message}")
        return code


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples; a checkpoint may hand back lists."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value


def main(argv: list[str] | None = None) -> int:
    from dcvc_bench.train.args import parse_args

    try:
        args = parse_args(argv)
        trainer = Trainer(args)
        return trainer.run()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
