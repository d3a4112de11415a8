"""The CompressAI family of the I-frame step: a zoo architecture (``--i_frame_model_name``,
``--i_frame_quality``) trained from random weights, CompressAI's way.

- loss ``λ·255²·MSE(x̂, x) + bpp`` (CompressAI's RateDistortionLoss; ``bpp`` = -log2 of
  every latent likelihood over the crop's pixels), one optimizer on every parameter but
  the entropy bottlenecks' quantiles;
- the aux loss (the quantiles' fit) with its own Adam (LR 1e-3, as CompressAI's example);
- under DDP the quantiles stay out of the gradient all-reduce: their aux loss depends
  only on them and the (all-reduced) density models, so every process takes the same step;
- every checkpoint's ``state_dict`` is the model after ``update(force=True)`` (on a copy:
  the entropy coder's tables, what ``--i_frame_checkpoint`` of the P-frame step loads and
  real coding needs), so the ``final`` is directly a trained I-frame codec.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from dcvc_bench.eval.metrics import mse_to_psnr
from dcvc_bench.models.iframe import build_iframe_codec
from dcvc_bench.errors import UserError
from dcvc_bench.train.recipe import finite, load_optimizer_state

AUX_LEARNING_RATE = 1e-3
#: The entropy coder's table buffers (EntropyBottleneck, GaussianConditional): their lengths
#: follow the quantiles and scales they were made from by ``update(force=True)``.
_CODER_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
_CODEC_LOG = "dcvc_bench.models.iframe.compressai"


class CompressAIFamily:
    def __init__(self, args: Any, accelerator: Any, start: Any):
        self.args, self.acc, self.device = args, accelerator, accelerator.device
        spec = args.i_frame_spec
        log = logging.getLogger(_CODEC_LOG)
        level = log.level
        log.setLevel(logging.ERROR)  # "random weights": what a step that trains them starts from
        try:
            self.codec = build_iframe_codec(spec, device=str(self.device))
        finally:
            log.setLevel(level)
        self.net = self.codec.trainable()
        for p in self.net.parameters():
            p.requires_grad_(True)
        ck = start.checkpoint
        if ck:
            if (ck.get("model_name"), ck.get("quality")) != (spec.model_name, spec.quality):
                raise UserError(f"{start.source}: it holds {ck.get('model_name')} quality {ck.get('quality')}, not "
                                f"--i_frame_model_name {spec.model_name} --i_frame_quality {spec.quality}")
            try:
                _load_state(self.net, ck["state_dict"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise UserError(f"{start.source}: weights do not fit {spec.model_name} quality {spec.quality}: "
                                f"{str(exc).strip().splitlines()[0][:160]}") from None
        self.net.train()
        main = [p for n, p in self.net.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in self.net.named_parameters() if n.endswith(".quantiles")]
        self.params = main
        self.optimizer = torch.optim.Adam(main, lr=args.learning_rate)
        self.aux_optimizer = torch.optim.Adam(aux, lr=AUX_LEARNING_RATE)
        if start.mode == "continue":
            load_optimizer_state(self.optimizer, ck["optimizer_state_dict"], "optimizer", start.source)
            load_optimizer_state(self.aux_optimizer, ck["aux_optimizer_state_dict"], "aux optimizer", start.source)
        if accelerator.num_processes > 1:
            # The quantiles' aux loss depends on nothing that differs between processes, so
            # every process takes the same aux step: keep them out of DDP's gradient hooks,
            # which the aux backward (outside the wrapped forward) would otherwise trip.
            from torch.nn.parallel import DistributedDataParallel as DDP

            DDP._set_params_and_buffers_to_ignore_for_model(
                self.net, [n for n, _ in self.net.named_parameters() if n.endswith(".quantiles")])
        self.model, self.optimizer, self.aux_optimizer = accelerator.prepare(self.net, self.optimizer,
                                                                             self.aux_optimizer)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def describe(self) -> dict[str, Any]:
        return {"model_name": self.args.i_frame_model_name, "quality": self.args.i_frame_quality}

    def parameters_finite(self) -> bool:
        return all(finite(p) for p in self.net.parameters())

    def begin_epoch(self) -> None:
        pass

    def _forward(self, model: torch.nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """x̂ (cropped back) and the bits per sample, in fp32 (CompressAI's likelihoods).
        ``model``: the prepared (DDP) one in training, the bare one in the main process's
        evaluation (a DDP forward on one process would wait for the others)."""
        h, w = x.shape[2], x.shape[3]
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = model(self.codec._pad(x))
            bits = sum(-torch.log2(lik).flatten(1).sum(dim=1) for lik in out["likelihoods"].values())
        return out["x_hat"][:, :, :h, :w], bits

    def train_batch(self, x: Tensor, iteration: int) -> tuple[list[dict[str, Tensor]], int]:
        self.net.train()
        x_hat, bits = self._forward(self.model, x)
        mse = F.mse_loss(x_hat, x)
        bpp = bits.sum() / (x.shape[0] * x.shape[2] * x.shape[3])
        loss = self.args.lambda_value * 255 ** 2 * mse + bpp
        terms = {"loss": loss.detach(), "rec_loss": mse.detach(), "bpp": bpp.detach(),
                 "mse": F.mse_loss(x_hat.detach().clamp(0, 1), x)}
        if not finite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            return [terms], 1
        self.acc.backward(loss)
        if self.args.grad_clip_max_norm > 0:
            self.acc.clip_grad_norm_(self.params, self.args.grad_clip_max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        aux = self.net.aux_loss()
        terms["aux_loss"] = aux.detach()
        if finite(aux):
            self.acc.backward(aux)
            self.aux_optimizer.step()
        self.aux_optimizer.zero_grad(set_to_none=True)
        return [terms], 0

    def train_fields(self, mean: dict[str, float], iteration: int) -> dict[str, Any]:
        return {"rec_loss": mean["rec_loss"], "perceptual_loss": None, "codebook_loss": None, "g_loss": None,
                "d_loss": None, "disc_weight": None, "disc_on": False, "aux_loss": mean.get("aux_loss"),
                "psnr": float(mse_to_psnr(max(mean["mse"], 1e-10))), "bpp": mean["bpp"]}

    def codebook_stats(self) -> None:
        return None

    @torch.no_grad()
    def evaluate(self, frames: Iterable[tuple[str, Tensor]]) -> dict[str, Any]:
        """The eval-mode forward (rounded latents) on each validation frame: PSNR of the
        clamped x̂, the likelihoods' bits over its pixels, ``rd_loss`` = ``loss`` =
        λ·255²·MSE + bpp."""
        lmbda = self.args.lambda_value
        psnr = bpp = loss = 0.0
        n = 0
        self.net.eval()
        try:
            for _name, frame in frames:
                x = frame.to(self.device).float().div_(255.0)
                x_hat, bits = self._forward(self.net, x)
                mse = float(F.mse_loss(x_hat.clamp(0, 1), x))
                b = float(bits.sum()) / (x.shape[2] * x.shape[3])
                psnr += float(mse_to_psnr(max(mse, 1e-10)))
                bpp += b
                loss += lmbda * 255 ** 2 * mse + b
                n += 1
        finally:
            self.net.train()
        if n == 0:
            return {}
        return {"psnr": psnr / n, "bpp": bpp / n, "rd_loss": loss / n, "loss": loss / n, "frames": n,
                "depths": None, "rate_estimate": "likelihoods"}

    def content(self) -> dict[str, Any]:
        updated = copy.deepcopy(self.net)
        updated.update(force=True)
        return {
            "state_dict": {k: v.detach().cpu().clone() for k, v in updated.state_dict().items()},
            "model_name": self.args.i_frame_model_name, "quality": self.args.i_frame_quality,
            "lambda_value": self.args.lambda_value,
            "optimizer_state_dict": self.optimizer.state_dict(),
            "aux_optimizer_state_dict": self.aux_optimizer.state_dict(),
        }


def _load_state(net: torch.nn.Module, state: dict[str, Tensor]) -> None:
    """``load_state_dict`` of a checkpoint of this family into the built model. The coder
    tables of both were made by ``update(force=True)``, each from its own quantiles, so
    their lengths differ once training moved them; CompressAI's ``load_state_dict`` resizes
    only empty tables, so the built model's are first replaced by ones of the checkpoint's
    shape (their values are the checkpoint's after the load)."""
    for name, buffer in list(net.named_buffers()):
        owner, _, attr = name.rpartition(".")
        saved = state.get(name)
        if attr in _CODER_TABLES and saved is not None and saved.shape != buffer.shape:
            net.get_submodule(owner).register_buffer(attr, buffer.new_zeros(saved.shape))
    net.load_state_dict(state)
