"""The DCVC P-frame codec (Li, Li & Lu, "Deep Contextual Video Compression", NeurIPS 2021).

One P-frame step: SpyNet estimates motion from the frame to its reference, the motion is
coded (hyperprior + spatial context model), the decoded motion warps reference features
into a *context*, and the frame is coded conditioned on that context (contextual
encoder/decoder, with a temporal prior from the context in the entropy model).

Submodule names follow the reference implementation; they are the checkpoint contract
(see DESIGN.md). The entropy models are CompressAI's, so ``aux_loss()`` and
``update(force=True)`` come from :class:`compressai.models.CompressionModel`;
``load_state_dict`` resizes the CDF buffers as CompressAI's does (see its docstring).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.models.utils import update_registered_buffers

from dcvc_bench.errors import UserError
from dcvc_bench.models.entropy import DEFAULT_HYPER_FILTERS, ENTROPY_MODELS, build_conditional
from dcvc_bench.models.layers import (
    GDN,
    ResBlock,
    ResBlock_LeakyReLU_0_Point_1,
    context_model,
    subpel_conv3x3,
)
from dcvc_bench.models.spynet import ME_Spynet, flow_warp, load_spynet_weights

__all__ = [
    "DCVC",
    "MOTION_MODULES",
    "PAD_MULTIPLE",
    "PRESETS",
    "RESIDUAL_MODULES",
    "crop",
    "pad_to_multiple",
]

# Channel widths. "dcvc" is the paper's (out_channel_mv/N/M, and the 64-wide motion
# refinement net, SpyNet's standard widths). "tiny" is the same network, narrow enough for
# CPU tests and smoke runs; its SpyNet is narrower too (SpyNet's 7x7 convs at full
# resolution would otherwise be ~90% of tiny's compute), so pretrained SpyNet weights
# (--spynet_checkpoint) fit the "dcvc" preset only.
PRESETS: dict[str, dict] = {
    "dcvc": {"channel_mv": 128, "channel_N": 64, "channel_M": 96, "channel_mv_refine": 64,
             "spynet_widths": (32, 64, 32, 16)},
    "tiny": {"channel_mv": 24, "channel_N": 16, "channel_M": 24, "channel_mv_refine": 16,
             "spynet_widths": (8, 16, 8, 4)},
}

# The two branches, for stage-wise freezing: stage 1 trains motion, stages 2-3 the
# residual branch (motion frozen), stage 4 everything.
MOTION_MODULES: tuple[str, ...] = (
    "opticFlow",
    "mvEncoder",
    "mvDecoder_part1",
    "mvDecoder_part2",
    "mvpriorEncoder",
    "mvpriorDecoder",
    "auto_regressive_mv",
    "entropy_parameters_mv",
    "bitEstimator_z_mv",
    "gaussian_conditional_mv",
)
RESIDUAL_MODULES: tuple[str, ...] = (
    "feature_extract",
    "context_refine",
    "contextualEncoder",
    "contextualDecoder_part1",
    "contextualDecoder_part2",
    "priorEncoder",
    "priorDecoder",
    "temporalPriorEncoder",
    "bitEstimator_z",
    "gaussian_conditional",
    "auto_regressive",
    "entropy_parameters",
)

# Total downsampling of the hyperprior latents (4 stride-2 convs, then 2 more).
PAD_MULTIPLE = 64


def pad_to_multiple(x: Tensor, multiple: int = PAD_MULTIPLE) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad ``x`` (…×H×W) on the bottom and right to multiples of ``multiple``.

    Returns the padded tensor and the original (H, W) for :func:`crop`. Replicate
    padding adds flat, cheap-to-code borders instead of an artificial edge.
    """
    height, width = x.shape[-2:]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (height, width)


def crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size`` = (H, W)."""
    height, width = size
    return x[..., :height, :width]


def _bits_per_sample(likelihoods: Tensor) -> Tensor:
    """Estimated code length of each sample, in bits: -log2 of the likelihoods, summed.

    CompressAI's entropy models bound likelihoods below (1e-9), so this stays finite.
    Always fp32, also under bf16/fp16 autocast (a sum of -log2 over a latent in bf16
    loses the low bits of the rate).
    """
    with _fp32_region(likelihoods):
        return -torch.log2(likelihoods.float()).flatten(1).sum(dim=1)


def _fp32_region(like: Tensor):
    """A region where autocast is off (no-op when it is not on): the entropy models,
    their likelihoods and the rate terms run in fp32 under ``--mixed_precision bf16``."""
    return torch.autocast(device_type=like.device.type, enabled=False)


def _entropy_fp32(module: nn.Module, *tensors: Tensor, **kw: Tensor) -> tuple[Tensor, Tensor]:
    """``module(*tensors, **kw)`` (an EntropyBottleneck or GaussianConditional) in fp32."""
    with _fp32_region(tensors[0]):
        return module(*(t.float() for t in tensors), **{k: v.float() for k, v in kw.items()})


def _hyper_analysis(channels_in: int, channels_n: int) -> nn.Sequential:
    """Latent (/16) -> hyper-latent z (/64)."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_n, 3, stride=1, padding=1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(channels_n, channels_n, 5, stride=2, padding=2),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(channels_n, channels_n, 5, stride=2, padding=2),
    )


def _entropy_parameters(channels: int) -> nn.Sequential:
    """1x1 convs 4C -> 10C/3 -> 8C/3 -> 2C: fuse the prior features into (means, scales)."""
    return nn.Sequential(
        nn.Conv2d(channels * 12 // 3, channels * 10 // 3, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(channels * 10 // 3, channels * 8 // 3, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(channels * 8 // 3, channels * 6 // 3, 1),
    )


def _strided_gdn_encoder(
    channels_in: int, channels_mid: int, channels_out: int, kernel_size: int
) -> nn.Sequential:
    """Four stride-2 convs with GDN between them: a /16 analysis transform."""
    padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_mid, kernel_size, stride=2, padding=padding),
        GDN(channels_mid),
        nn.Conv2d(channels_mid, channels_mid, kernel_size, stride=2, padding=padding),
        GDN(channels_mid),
        nn.Conv2d(channels_mid, channels_mid, kernel_size, stride=2, padding=padding),
        GDN(channels_mid),
        nn.Conv2d(channels_mid, channels_out, kernel_size, stride=2, padding=padding),
    )


class DCVC(CompressionModel):
    """DCVC P-frame model: ``forward(ref, x)`` estimates rate and reconstruction.

    ``preset`` picks channel widths from :data:`PRESETS`. The forward pass pads to
    multiples of 64, runs both branches (motion and contextual residual) and reports
    every rate term in bits per *original* pixel, whatever the training stage.

    Two options change the entropy models (not the transforms), for imported weights
    (:mod:`dcvc_bench.models.imports`): ``entropy`` is the conditional of the latents,
    ``"gaussian"`` (CompressAI's) or ``"laplace"`` (:class:`~dcvc_bench.models.entropy.LaplaceConditional`,
    microsoft/DCVC's); ``hyper_filters`` the hidden widths of the hyper-latents' factorized
    prior (CompressAI's ``EntropyBottleneck``; ``(1, 1, 1)`` is DCVC's ``BitEstimator``).
    The submodules keep their names whatever the options. :attr:`options` is what a
    checkpoint records (``model_options``) to rebuild the model.
    """

    def __init__(self, preset: str = "dcvc", *, entropy: str = "gaussian",
                 hyper_filters: tuple[int, ...] = DEFAULT_HYPER_FILTERS):
        super().__init__()
        if preset not in PRESETS:
            raise UserError(
                f"unknown model preset {preset!r}; valid presets: {', '.join(PRESETS)}"
            )
        if entropy not in ENTROPY_MODELS:
            raise UserError(f"unknown entropy model {entropy!r}; valid: {', '.join(ENTROPY_MODELS)}")
        self.preset = preset
        self.entropy = entropy
        self.hyper_filters = tuple(int(f) for f in hyper_filters)
        widths = PRESETS[preset]
        mv, n, m = widths["channel_mv"], widths["channel_N"], widths["channel_M"]
        refine = widths["channel_mv_refine"]

        # --- motion branch ---------------------------------------------------------
        self.opticFlow = ME_Spynet(widths["spynet_widths"])
        self.mvEncoder = _strided_gdn_encoder(2, mv, mv, kernel_size=3)
        self.mvDecoder_part1 = nn.Sequential(
            nn.ConvTranspose2d(mv, mv, 3, stride=2, padding=1, output_padding=1),
            GDN(mv, inverse=True),
            nn.ConvTranspose2d(mv, mv, 3, stride=2, padding=1, output_padding=1),
            GDN(mv, inverse=True),
            nn.ConvTranspose2d(mv, mv, 3, stride=2, padding=1, output_padding=1),
            GDN(mv, inverse=True),
            nn.ConvTranspose2d(mv, 2, 3, stride=2, padding=1, output_padding=1),
        )
        # Refines the decoded flow from (flow, reference frame): 2 + 3 input channels.
        refine_layers: list[nn.Module] = [nn.Conv2d(5, refine, 3, padding=1)]
        for _ in range(5):
            refine_layers += [nn.LeakyReLU(0.1), nn.Conv2d(refine, refine, 3, padding=1)]
        refine_layers += [nn.LeakyReLU(0.1), nn.Conv2d(refine, 2, 3, padding=1)]
        self.mvDecoder_part2 = nn.Sequential(*refine_layers)
        self.mvpriorEncoder = _hyper_analysis(mv, n)
        self.mvpriorDecoder = nn.Sequential(
            nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1),
            nn.LeakyReLU(inplace=True),
            nn.ConvTranspose2d(n, n * 3 // 2, 5, stride=2, padding=2, output_padding=1),
            nn.LeakyReLU(inplace=True),
            nn.ConvTranspose2d(n * 3 // 2, mv * 2, 3, stride=1, padding=1),
        )
        self.auto_regressive_mv = context_model(mv)
        self.entropy_parameters_mv = _entropy_parameters(mv)
        self.bitEstimator_z_mv = EntropyBottleneck(n, filters=self.hyper_filters)
        self.gaussian_conditional_mv = build_conditional(entropy)

        # --- contextual (residual) branch ------------------------------------------
        self.feature_extract = nn.Sequential(
            nn.Conv2d(3, n, 3, stride=1, padding=1),
            ResBlock(n),
        )
        self.context_refine = nn.Sequential(
            ResBlock(n),
            nn.Conv2d(n, n, 3, stride=1, padding=1),
        )
        # Input: the frame (3 channels) and the context (n), concatenated.
        self.contextualEncoder = nn.Sequential(
            nn.Conv2d(n + 3, n, 5, stride=2, padding=2),
            GDN(n),
            ResBlock_LeakyReLU_0_Point_1(n),
            nn.Conv2d(n, n, 5, stride=2, padding=2),
            GDN(n),
            ResBlock_LeakyReLU_0_Point_1(n),
            nn.Conv2d(n, n, 5, stride=2, padding=2),
            GDN(n),
            nn.Conv2d(n, m, 5, stride=2, padding=2),
        )
        self.contextualDecoder_part1 = nn.Sequential(
            subpel_conv3x3(m, n, 2),
            GDN(n, inverse=True),
            subpel_conv3x3(n, n, 2),
            GDN(n, inverse=True),
            ResBlock_LeakyReLU_0_Point_1(n),
            subpel_conv3x3(n, n, 2),
            GDN(n, inverse=True),
            ResBlock_LeakyReLU_0_Point_1(n),
            subpel_conv3x3(n, n, 2),
        )
        self.contextualDecoder_part2 = nn.Sequential(
            nn.Conv2d(n * 2, n, 3, stride=1, padding=1),
            ResBlock(n),
            ResBlock(n),
            nn.Conv2d(n, 3, 3, stride=1, padding=1),
        )
        self.priorEncoder = _hyper_analysis(m, n)
        self.priorDecoder = nn.Sequential(
            nn.ConvTranspose2d(n, m, 5, stride=2, padding=2, output_padding=1),
            nn.LeakyReLU(inplace=True),
            nn.ConvTranspose2d(m, m, 5, stride=2, padding=2, output_padding=1),
            nn.LeakyReLU(inplace=True),
            nn.ConvTranspose2d(m, m, 3, stride=1, padding=1),
        )
        self.temporalPriorEncoder = _strided_gdn_encoder(n, n, m, kernel_size=5)
        self.bitEstimator_z = EntropyBottleneck(n, filters=self.hyper_filters)
        self.gaussian_conditional = build_conditional(entropy)
        self.auto_regressive = context_model(m)
        self.entropy_parameters = _entropy_parameters(m)

    @property
    def options(self) -> dict:
        """The non-default constructor options besides the preset (a checkpoint's
        ``model_options``; empty for the model dcvc-bench trains)."""
        out: dict = {}
        if self.entropy != "gaussian":
            out["entropy"] = self.entropy
        if self.hyper_filters != DEFAULT_HYPER_FILTERS:
            out["hyper_filters"] = list(self.hyper_filters)
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Resize the entropy models' CDF buffers to the checkpoint's, then load.

        CompressionModel.load_state_dict does the resizing too, but its legacy-key
        remapping matches module names as bare prefixes and crashes here, because
        ``bitEstimator_z`` is a prefix of ``bitEstimator_z_mv``. Our checkpoints never
        hold those legacy keys, so only the resizing is kept (always to the
        checkpoint's size, so an already-updated model can load one too).
        """
        for name, module in self.named_modules():
            if isinstance(module, EntropyBottleneck):
                buffers = ["_quantized_cdf", "_offset", "_cdf_length"]
            elif isinstance(module, GaussianConditional):
                buffers = ["_quantized_cdf", "_offset", "_cdf_length", "scale_table"]
            else:
                continue
            present = [b for b in buffers if f"{name}.{b}" in state_dict]
            update_registered_buffers(module, name, present, state_dict, policy="resize")
        return nn.Module.load_state_dict(self, state_dict, strict=strict)

    def load_spynet(self, path: str | Path) -> None:
        """Load pretrained SpyNet weights into ``opticFlow`` (see :func:`load_spynet_weights`)."""
        load_spynet_weights(self.opticFlow, path)

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(main, aux) trainable parameters, the CompressAI way: the entropy bottlenecks'
        ``quantiles`` are fitted by :meth:`aux_loss` with their own optimizer; everything
        else that requires grad is trained by the rate-distortion loss."""
        main, aux = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (aux if name.endswith(".quantiles") else main).append(param)
        return main, aux

    def _code_latent(
        self,
        y: Tensor,
        hyper_params: Tensor,
        context_prediction: nn.Module,
        entropy_parameters: nn.Module,
        gaussian_conditional: GaussianConditional,
    ) -> tuple[Tensor, Tensor]:
        """Quantise ``y`` and compute its likelihoods under the Gaussian whose (means,
        scales) come from ``hyper_params`` and the masked spatial context.

        CompressAI's mbt2018 convention: the context model sees ``y`` with uniform noise
        (training) or rounded (eval); the decoder gets GaussianConditional's output, which
        in eval is ``round(y - mean) + mean`` — exactly what a real decoder reconstructs
        from the symbols, so estimation and real coding decode the same latent.
        Returns (y_hat for the decoder, likelihoods).
        """
        y = y.contiguous()  # uniform noise is drawn in NCHW order whatever the layout (models/fastpath.py)
        y_ctx = gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        params = entropy_parameters(torch.cat((hyper_params, context_prediction(y_ctx)), dim=1))
        means_hat, scales_hat = params.chunk(2, dim=1)
        y_hat, y_likelihoods = _entropy_fp32(gaussian_conditional, y, scales_hat, means=means_hat)
        return y_hat, y_likelihoods

    def forward(self, ref: Tensor, x: Tensor) -> dict:
        """Code frame ``x`` (B×3×H×W in [0, 1]) given the decoded reference ``ref``.

        Returns ``x_hat`` (reconstruction, not clamped), ``x_pred`` (``ref`` warped by the
        decoded motion: the motion stage's target), ``likelihoods`` and per-sample
        ``bits`` for y, z, mv_y, mv_z, and batch-mean ``bpp_*`` per original pixel.
        """
        if ref.shape != x.shape:
            raise ValueError(f"ref {tuple(ref.shape)} and x {tuple(x.shape)} differ in shape")
        ref, size = pad_to_multiple(ref)
        x, _ = pad_to_multiple(x)

        # Motion: estimate, code, decode, refine.
        mv = self.opticFlow(x, ref)
        mv_y = self.mvEncoder(mv)
        mv_z_hat, mv_z_likelihoods = _entropy_fp32(self.bitEstimator_z_mv, self.mvpriorEncoder(mv_y))
        mv_y_hat, mv_y_likelihoods = self._code_latent(
            mv_y,
            self.mvpriorDecoder(mv_z_hat),
            self.auto_regressive_mv,
            self.entropy_parameters_mv,
            self.gaussian_conditional_mv,
        )
        mv_coarse = self.mvDecoder_part1(mv_y_hat)
        mv_hat = mv_coarse + self.mvDecoder_part2(torch.cat((mv_coarse, ref), dim=1))

        # Motion compensation in pixels (for the motion loss) and in features (context).
        x_pred = flow_warp(ref, mv_hat)
        context = self.context_refine(flow_warp(self.feature_extract(ref), mv_hat))

        # Contextual coding of the frame.
        y = self.contextualEncoder(torch.cat((x, context), dim=1))
        z_hat, z_likelihoods = _entropy_fp32(self.bitEstimator_z, self.priorEncoder(y))
        priors = torch.cat((self.temporalPriorEncoder(context), self.priorDecoder(z_hat)), dim=1)
        y_hat, y_likelihoods = self._code_latent(
            y, priors, self.auto_regressive, self.entropy_parameters, self.gaussian_conditional
        )
        x_hat = self.contextualDecoder_part2(
            torch.cat((self.contextualDecoder_part1(y_hat), context), dim=1)
        )

        likelihoods = {
            "y": y_likelihoods,
            "z": z_likelihoods,
            "mv_y": mv_y_likelihoods,
            "mv_z": mv_z_likelihoods,
        }
        bits = {name: _bits_per_sample(lik) for name, lik in likelihoods.items()}
        pixels = size[0] * size[1]
        bpp_terms = {f"bpp_{name}": b.mean() / pixels for name, b in bits.items()}
        return {
            "x_hat": crop(x_hat, size),
            "x_pred": crop(x_pred, size),
            "likelihoods": likelihoods,
            "bits": bits,
            **bpp_terms,
            "bpp": sum(bpp_terms.values()),
        }
