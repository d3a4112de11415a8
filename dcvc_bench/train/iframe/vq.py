"""The VQGAN / RVQ-VQGAN family of the I-frame step: model, discriminator, losses, one
training batch, the evaluation, and what its checkpoints hold.

One batch (taming-transformers' recipe, one autoencoder pass per batch):
1. the autoencoder at the trained depth (:mod:`.depth`; EMA codebooks move in this pass);
2. ``loss = rec + perceptual_weight·LPIPS + codebook_weight·commitment`` and, from
   iteration ``--disc_start`` on, ``+ w·g_loss`` with the adaptive weight ``w``
   (:mod:`.losses`), through the discriminator with its gradients off;
3. one step of the autoencoder's optimizer; then, from ``--disc_start`` on, one step of
   the discriminator's on the hinge loss of the real crops and the (detached)
   reconstructions, passed through it together (one forward per backward, as DDP wants;
   its BatchNorm statistics therefore cover both).
A non-finite loss restores the codebooks to what they were before the pass and skips the
update (the step's divergence rule counts it).

Checkpoints are valid VQ checkpoints (:mod:`dcvc_bench.models.iframe.vq`) plus training
keys. ``latest``/``best`` carry the index counts of the epoch's training batches; the
``final``'s are fitted on ``--index_fit_samples`` training crops at the trained depth L,
after layers L..N-1 that were never run got their k-means initialisation on the same
crops (so the file loads as a codec; a later progressive step trains them from there).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dcvc_bench.errors import UserError
from dcvc_bench.eval.metrics import mse_to_psnr
from dcvc_bench.models.discriminator import PatchDiscriminator
from dcvc_bench.models.iframe.vq_checkpoint import vq_checkpoint_state
from dcvc_bench.models.iframe.vq_config import VQConfig
from dcvc_bench.models.vq_coding import IndexTables, count_indices, uniform_bits
from dcvc_bench.models.vqgan import VQGAN
from dcvc_bench.train.iframe import depth as D
from dcvc_bench.train.iframe.losses import (
    adaptive_weight,
    generator_loss,
    hinge_d_loss,
    load_perceptual,
    reconstruction_loss,
)
from dcvc_bench.train.recipe import finite, load_optimizer_state

ADAM_BETAS = (0.5, 0.9)  # taming-transformers' VQGAN optimizers


class VQFamily:
    def __init__(self, args: Any, accelerator: Any, start: Any):
        self.args, self.acc, self.device = args, accelerator, accelerator.device
        self._setup_model(start)
        self._setup_optimizers(start)
        self.model, self.disc, self.optimizer, self.disc_optimizer = accelerator.prepare(
            self.net, self.disc_net, self.optimizer, self.disc_optimizer)
        self.last_layer = self.net.decoder.conv_out.weight  # unwrapped: the same tensor under DDP
        ck = start.checkpoint if start.mode == "continue" else {}
        self.adaptive = torch.tensor(float(ck.get("disc_adaptive_weight", 0.0)), device=self.device)
        self.counts = np.zeros((self.depth, self.cfg.codebook_size), dtype=np.int64)
        if ck.get("pending_end_of_epoch") and "index_counts" in ck:
            self.counts = ck["index_counts"].numpy().copy()  # the interrupted epoch's, for its end
        D.train_mode(self.net, self.frozen)

    # -- set-up ---------------------------------------------------------------------
    def _setup_model(self, start: Any) -> None:
        a = self.args
        self.cfg = VQConfig.from_json(a.vqgan_config, what="--vqgan_config")
        if self.cfg.family != a.i_frame_type:
            raise UserError(f"--vqgan_config: {a.vqgan_config} is a {self.cfg.family!r} config; use "
                            f"--i_frame_type {self.cfg.family} or a {a.i_frame_type} config")
        n = self.cfg.num_quantizers
        self.depth = n
        self.layers = a.rvq_train_layers if a.rvq_train_layers is not None else n
        self.frozen = a.rvq_frozen_layers
        if self.layers > n:
            raise UserError(f"--rvq_train_layers {self.layers}: the config has {n} residual layers (1..{n})")
        if self.frozen >= self.layers:
            raise UserError(f"--rvq_frozen_layers {self.frozen}: must be below --rvq_train_layers {self.layers} "
                            "(freeze the first F, train the next up to L)")
        q = self.cfg.quantizer
        self.dropout = q.quantize_dropout if a.rvq_quantize_dropout is None else a.rvq_quantize_dropout
        self.eval_depths = _eval_depths(a.rvq_eval_layers, self.layers) if self.cfg.residual else [self.layers]
        self.net = VQGAN(self.cfg)
        self.disc_net = PatchDiscriminator(channels=a.disc_channels, layers=a.disc_layers)
        ck = start.checkpoint
        if ck:
            self._load_weights(ck, start.source)
        if self.frozen:
            untrained = [i for i, ok in enumerate(D.initialised_layers(self.net)[: self.frozen]) if not ok]
            if untrained:
                raise UserError(f"--rvq_frozen_layers {self.frozen}: codebook(s) {untrained} of the weights it starts "
                                "from were never trained; --load_pretrained the final of the step that trained "
                                f"the first {self.frozen} layers")
        D.freeze(self.net, self.frozen)
        self.net.to(self.device)
        self.disc_net.to(self.device)
        self.perceptual = load_perceptual(a.lpips_weights, a.perceptual_weight, self.device)

    def _load_weights(self, ck: dict[str, Any], source: Any) -> None:
        saved = ck.get("config")
        if saved != self.cfg.to_dict():
            raise UserError(f"{source}: its VQ config differs from --vqgan_config {self.args.vqgan_config}; "
                            "use the config it was trained with")
        try:
            self.net.load_state_dict(ck["state_dict"], strict=True)
            if ck.get("disc_state_dict"):
                self.disc_net.load_state_dict(ck["disc_state_dict"], strict=True)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise UserError(f"{source}: weights do not fit (--vqgan_config, --disc_channels, --disc_layers): "
                            f"{first}") from None

    def _setup_optimizers(self, start: Any) -> None:
        a = self.args
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=a.learning_rate, betas=ADAM_BETAS)
        self.disc_optimizer = torch.optim.Adam(self.disc_net.parameters(), lr=a.disc_learning_rate, betas=ADAM_BETAS)
        if start.mode == "continue":
            ck = start.checkpoint
            load_optimizer_state(self.optimizer, ck["optimizer_state_dict"], "optimizer", start.source)
            if ck.get("disc_optimizer_state_dict"):
                load_optimizer_state(self.disc_optimizer, ck["disc_optimizer_state_dict"], "discriminator "
                                     "optimizer", start.source)

    # -- what the recipe asks -------------------------------------------------------
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def describe(self) -> dict[str, Any]:
        """Extra ``step_start`` fields."""
        return {"perceptual": self.perceptual.record(), "rvq_train_layers": self.layers,
                "rvq_frozen_layers": self.frozen, "quantize_dropout": bool(self.dropout and self.cfg.residual),
                "disc_start": self.args.disc_start, "eval_depths": self.eval_depths if self.cfg.residual else None}

    def parameters_finite(self) -> bool:
        return all(finite(t) for t in (*self.net.parameters(), *self.net.buffers(), *self.disc_net.parameters())
                   if t.dtype.is_floating_point)

    def begin_epoch(self) -> None:
        self.counts[:] = 0

    def train_batch(self, x: Tensor, iteration: int) -> tuple[list[dict[str, Tensor]], int]:
        a = self.args
        D.train_mode(self.net, self.frozen)
        disc_on = iteration >= a.disc_start
        snapshot = {k: v.clone() for k, v in self.net.quantize.state_dict().items()}
        with D.trained_depth(self.net, self.layers, self.dropout), self.acc.autocast():
            out = self.model(x)
        x_hat = out["x_hat"].float()
        rec = reconstruction_loss(a.recon_loss, x_hat, x)
        nll = rec
        terms: dict[str, Tensor] = {"rec_loss": rec.detach(),
                                    "mse": F.mse_loss(x_hat.detach().clamp(0, 1), x)}
        if self.perceptual.on:
            p_loss = self.perceptual(x, x_hat)
            nll = rec + a.perceptual_weight * p_loss
            terms["perceptual_loss"] = p_loss.detach()
        codebook = out["codebook_loss"].float()
        terms["codebook_loss"] = codebook.detach()
        loss = nll + a.codebook_weight * codebook
        if disc_on:
            self.disc_net.requires_grad_(False)
            with self.acc.autocast():
                g_loss = generator_loss(self.disc_net(out["x_hat"]))
            scale = float(self.acc.scaler.get_scale()) if self.acc.scaler is not None else 1.0
            if finite(g_loss) and finite(nll):
                weight = adaptive_weight(nll, g_loss, self.last_layer, scale)
                if weight is not None:
                    self.adaptive = weight
            disc_weight = self.adaptive * a.disc_weight
            loss = loss + disc_weight * g_loss
            terms.update(g_loss=g_loss.detach(), disc_weight=disc_weight.detach())
        terms["loss"] = loss.detach()
        if not finite(loss):
            self.net.quantize.load_state_dict(snapshot)  # the pass's EMA codebook updates rolled back
            self.optimizer.zero_grad(set_to_none=True)
            return [terms], 1
        self.acc.backward(loss)
        self._step(self.optimizer, self.params)
        self.counts += count_indices(out["indices"][:, : self.layers], self.cfg.codebook_size, self.depth)
        if disc_on:
            self.disc_net.requires_grad_(True)
            with self.acc.autocast():
                logits = self.disc(torch.cat([x, x_hat.detach()]))
            real, fake = logits.split(x.shape[0])
            d_loss = hinge_d_loss(real, fake)
            terms["d_loss"] = d_loss.detach()
            if finite(d_loss):
                self.acc.backward(d_loss)
                self._step(self.disc_optimizer, list(self.disc_net.parameters()))
            else:  # the autoencoder stepped; the discriminator's update is skipped
                self.disc_optimizer.zero_grad(set_to_none=True)
                return [terms], 1
        return [terms], 0

    def _step(self, optimizer: Any, params: list[Tensor]) -> None:
        if self.args.grad_clip_max_norm > 0:
            self.acc.clip_grad_norm_(params, self.args.grad_clip_max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def train_fields(self, mean: dict[str, float], iteration: int) -> dict[str, Any]:
        """The family's fields of a ``train`` event from the window's mean terms."""
        h = w = self.args.crop_size
        return {"rec_loss": mean["rec_loss"], "perceptual_loss": mean.get("perceptual_loss"),
                "codebook_loss": mean["codebook_loss"], "g_loss": mean.get("g_loss"), "d_loss": mean.get("d_loss"),
                "disc_weight": mean.get("disc_weight"), "disc_on": iteration >= self.args.disc_start,
                "psnr": float(mse_to_psnr(max(mean["mse"], 1e-10))),
                "bpp": uniform_bits(h, w, self.cfg.downsampling, self.layers, self.cfg.codebook_size) / (h * w)}

    # -- evaluation -----------------------------------------------------------------
    def codebook_stats(self) -> list[dict[str, Any]]:
        """Per trained layer, from this epoch's training batches (this process's): usage
        (% of the K entries used at least once), perplexity (2^entropy of the index
        frequencies) and dead codes (entries never used)."""
        k, out = self.cfg.codebook_size, []
        for layer in range(self.layers):
            c = self.counts[layer].astype(np.float64)
            total = c.sum()
            p = c[c > 0] / total if total else np.array([])
            entropy = float(-(p * np.log2(p)).sum()) if total else 0.0
            used = int((c > 0).sum())
            out.append({"layer": layer, "usage": 100.0 * used / k, "perplexity": 2.0 ** entropy if total else None,
                        "dead": k - used})
        return out

    @torch.no_grad()
    def evaluate(self, frames: Iterable[tuple[str, Tensor]]) -> dict[str, Any]:
        """The codec a decoder implements on the validation frames: indices at the
        trained depth, decoded (clamped) at each evaluated depth; ``loss`` is the training
        loss's autoencoder part (rec + perceptual) at depth L."""
        a, cfg = self.args, self.cfg
        tables = IndexTables(self.counts)
        sums: dict[int, list[float]] = {d: [0.0, 0.0, 0.0, 0.0] for d in self.eval_depths}  # psnr, mse, uni, ent
        loss_sum, n = 0.0, 0
        self.net.eval()
        try:
            with D.trained_depth(self.net, self.layers, False), torch.autocast(self.device.type, enabled=False):
                for _name, frame in frames:
                    x = frame.to(self.device).float().div_(255.0)
                    hw = x.shape[2] * x.shape[3]
                    idx = self.net.encode_indices(x, self.layers)
                    for d in self.eval_depths:
                        x_hat = self.net.decode_indices(idx[:, :d], (x.shape[2], x.shape[3]))
                        mse = float(F.mse_loss(x_hat, x))
                        s = sums[d]
                        s[0] += float(mse_to_psnr(max(mse, 1e-10)))
                        s[1] += mse
                        s[2] += uniform_bits(x.shape[2], x.shape[3], cfg.downsampling, d, cfg.codebook_size) / hw
                        s[3] += float(tables.entropy_bits(idx[:, :d]).sum()) / hw
                        if d == self.layers:
                            loss = reconstruction_loss(a.recon_loss, x_hat, x)
                            if self.perceptual.on:
                                loss = loss + a.perceptual_weight * self.perceptual(x, x_hat)
                            loss_sum += float(loss)
                    n += 1
        finally:
            D.train_mode(self.net, self.frozen)
        if n == 0:
            return {}
        depths = [{"layers": d, "psnr": s[0] / n, "mse": s[1] / n, "bpp_uniform": s[2] / n, "bpp_entropy": s[3] / n}
                  for d, s in sums.items()]
        top = depths[-1]
        return {"psnr": top["psnr"], "bpp": top["bpp_uniform"], "bpp_entropy": top["bpp_entropy"],
                "rd_loss": loss_sum / n, "loss": loss_sum / n, "frames": n,
                "depths": depths if cfg.residual else None}

    # -- checkpoints ----------------------------------------------------------------
    def content(self) -> dict[str, Any]:
        """A VQ checkpoint of the current weights (the epoch's counts) plus the family's
        training keys."""
        state = vq_checkpoint_state(self.net, self.counts)
        state.update({
            "optimizer_state_dict": self.optimizer.state_dict(),
            "disc_state_dict": {k: v.detach().cpu().clone() for k, v in self.disc_net.state_dict().items()},
            "disc_optimizer_state_dict": self.disc_optimizer.state_dict(),
            "disc_adaptive_weight": float(self.adaptive), "disc_config": {"channels": self.args.disc_channels,
                                                                          "layers": self.args.disc_layers},
            "perceptual": self.perceptual.on, "perceptual_record": self.perceptual.record(),
            "rvq_train_layers": self.layers, "rvq_frozen_layers": self.frozen,
            "quantize_dropout": bool(self.dropout and self.cfg.residual),
        })
        return state

    @torch.no_grad()
    def initialise_unrun_layers(self, batch: Tensor) -> None:
        """Before the final, on every process (the library synchronises k-means across
        processes): give the layers that never ran (L..N-1) their k-means initialisation
        on the residuals of the training crops ``batch``, so the file loads as a codec."""
        if all(D.initialised_layers(self.net)):
            return
        self.net.eval()
        try:
            with torch.autocast(self.device.type, enabled=False):
                self.net.encode_indices(batch.to(self.device).float().div_(255.0), self.depth)
        finally:
            D.train_mode(self.net, self.frozen)

    @torch.no_grad()
    def fit_counts(self, batches: Iterable[Tensor]) -> None:
        """The final's index counts: the training crops ``batches`` at the trained depth
        (rows L..N-1 stay zero: uniform tables)."""
        counts = np.zeros_like(self.counts)
        self.net.eval()
        try:
            with D.trained_depth(self.net, self.layers, False), torch.autocast(self.device.type, enabled=False):
                for b in batches:
                    idx = self.net.encode_indices(b.to(self.device).float().div_(255.0), self.layers)
                    counts += count_indices(idx, self.cfg.codebook_size, self.depth)
        finally:
            D.train_mode(self.net, self.frozen)
        self.counts = counts

def _eval_depths(given: list[int] | None, layers: int) -> list[int]:
    """``--rvq_eval_layers`` (each <= L), or every even depth <= L, and L."""
    if given is not None:
        too_deep = [d for d in given if d > layers]
        if too_deep:
            raise UserError(f"--rvq_eval_layers: {too_deep} deeper than the trained depth {layers} "
                            "(--rvq_train_layers)")
        return sorted(set(given) | {layers})
    return sorted({d for d in range(2, layers + 1, 2)} | {layers})
