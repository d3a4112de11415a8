"""Real coding of one DCVC P-frame into one rANS stream, and the decoder's reconstruction.

The order of operations is :meth:`DCVC.forward`'s, run through the model's own submodules;
what changes is quantisation. The four coded tensors share one rANS stream, in decoding
order: motion hyper-latent, motion latent, frame hyper-latent, frame latent (one
final-state flush per frame instead of four: 8 bytes each, a large share of a small
P-frame). Hyper-latents are coded exactly as ``EntropyBottleneck.compress`` codes them
(symbols ``round(z − median)``, one CDF per channel, the bottleneck's tables) and
``z_hat = symbol + median`` as its ``decompress`` rebuilds it. Latents go through
:class:`~dcvc_bench.codec.ar.ContextCoder` (``y_hat = round(y − mean) + mean``; the forward
pass feeds ``round(y)`` to the context instead, one reason its likelihoods are not the
coded rate). :meth:`PFrameCoder.analyse` computes every symbol and CDF index without
writing them; their exact code length is evaluation's estimate, and :meth:`encode` is
``analyse`` plus the rANS coder. Everything after the latents (motion decoding and refinement, context,
temporal prior, reconstruction) is one function per step shared by encoder and decoder,
so the encoder's reconstruction is the decoder's.

A payload is checked twice (see :mod:`~dcvc_bench.codec.ar`): before decoding, against
the least the latents of the frame size can take (:meth:`PFrameCoder.check_payload`), and
after its latents are decoded and before anything is reconstructed, against the
re-encoding of what was decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dcvc_bench.codec.ar import ContextCoder, RansLog, RansTables, rans_min_bytes, wave_schedule
from dcvc_bench.models.spynet import flow_warp
from dcvc_bench.models.video_net import DCVC, PAD_MULTIPLE, crop, pad_to_multiple

from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck

__all__ = ["STREAM_ORDER", "CodedTensor", "PFrameAnalysis", "PFrameCoder", "PFrameEncoding", "latent_shapes"]

#: Zero bytes after a payload handed to the rANS decoder, which does no bounds checking:
#: a forged payload that makes it read on reads these (and is then refused) first.
_DECODER_SLACK = bytes(4096)

#: Downsampling of the latents (mv_y, y) and of the hyper-latents (mv_z, z).
LATENT_DOWN, HYPER_DOWN = 16, PAD_MULTIPLE
#: The coded tensors of a P-frame in stream (= decoding) order.
STREAM_ORDER = ("mv_z", "mv_y", "z", "y")


def latent_shapes(size: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Spatial shape of each coded tensor for a frame of original ``size`` (H, W)."""
    padded = [s + (-s % PAD_MULTIPLE) for s in size]
    latent = (padded[0] // LATENT_DOWN, padded[1] // LATENT_DOWN)
    hyper = (padded[0] // HYPER_DOWN, padded[1] // HYPER_DOWN)
    return {"mv_z": hyper, "mv_y": latent, "z": hyper, "y": latent}


@dataclass
class CodedTensor:
    """One coded tensor of a P-frame: its symbols and CDF indexes in stream order (int32,
    CPU), the tables they are coded with, and the tensor before quantisation."""

    symbols: Tensor = field(repr=False)
    indexes: Tensor = field(repr=False)
    tables: RansTables = field(repr=False)
    latent: Tensor = field(repr=False)

    def bits(self) -> float:
        """The exact cost of the symbols in the rANS stream (flush excluded)."""
        return float(self.tables.code_length(self.symbols, self.indexes).sum())

    def write(self, encoder: BufferedRansEncoder) -> None:
        self.tables.encode(encoder, self.symbols, self.indexes)


@dataclass
class PFrameAnalysis:
    """What :meth:`PFrameCoder.analyse` computed: the coded tensors (:data:`STREAM_ORDER`),
    the reconstruction the decoder will compute (1×3×H×W, clamped to [0, 1]) and, for
    benchmarks, each autoregressive latent with its hyperprior features."""

    coded: dict[str, CodedTensor] = field(repr=False)
    x_hat: Tensor
    latents: dict[str, tuple[Tensor, Tensor]] = field(repr=False)

    def bits(self) -> dict[str, float]:
        """Exact code length of each coded tensor: the P-frame's estimate."""
        return {name: self.coded[name].bits() for name in STREAM_ORDER}


@dataclass
class PFrameEncoding:
    """What :meth:`PFrameCoder.encode` produced: the rANS stream, the reconstruction the
    decoder will compute (1×3×H×W, clamped to [0, 1]) and, for benchmarks, each
    autoregressive latent with its hyperprior features; ``coded`` as in
    :class:`PFrameAnalysis` (``8·len(data)`` exceeds their bits by the rANS flush)."""

    data: bytes
    x_hat: Tensor
    latents: dict[str, tuple[Tensor, Tensor]] = field(repr=False)
    coded: dict[str, CodedTensor] = field(default_factory=dict, repr=False)

    def bits(self) -> dict[str, float]:
        return {name: self.coded[name].bits() for name in STREAM_ORDER if name in self.coded}


class HyperCoder:
    """A hyper-latent coded as ``EntropyBottleneck.compress`` codes it, into a shared
    stream: symbols ``round(z − median)``, the channel's CDF; ``z_hat = symbol + median``
    as ``decompress`` rebuilds it."""

    def __init__(self, bottleneck: EntropyBottleneck):
        self.bottleneck = bottleneck
        self.tables = RansTables(bottleneck)
        self.medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def symbols(self, z: Tensor) -> tuple[CodedTensor, Tensor]:
        """The symbols ``encode`` writes (C-major, with their per-channel CDF indexes)
        and ``z_hat``."""
        symbols = self.bottleneck.quantize(z, "symbols", self.medians)
        indexes = self.bottleneck._build_indexes(z.size())
        coded = CodedTensor(symbols.reshape(-1).int().cpu(), indexes.reshape(-1).int().cpu(), self.tables, z)
        return coded, self.bottleneck.dequantize(symbols, self.medians)

    def encode(self, encoder: BufferedRansEncoder, z: Tensor) -> Tensor:
        coded, z_hat = self.symbols(z)
        coded.write(encoder)
        return z_hat

    def decode(self, decoder: RansDecoder, shape: tuple[int, int], log: RansLog | None = None) -> Tensor:
        indexes = self.bottleneck._build_indexes((1, self.medians.shape[1], *shape)).to(self.medians.device)
        return self.bottleneck.dequantize(self.tables.decode(decoder, indexes, log), self.medians)

    def min_bits(self, shape: tuple[int, int]) -> float:
        """A lower bound on the rANS bits a hyper-latent of ``shape`` takes: channel c is
        always coded with table c."""
        return shape[0] * shape[1] * sum(self.tables.min_bits())


class PFrameCoder:
    """Encoder and decoder of P-frames for one DCVC model, which must be in eval mode with
    its CDF tables built (``update(force=True)``) before this is created."""

    def __init__(self, net: DCVC):
        if net.training:
            raise ValueError("real coding needs the model in eval mode")
        self.net = net
        self.mv = ContextCoder(net.auto_regressive_mv, net.entropy_parameters_mv, net.gaussian_conditional_mv)
        self.y = ContextCoder(net.auto_regressive, net.entropy_parameters, net.gaussian_conditional)
        self.mv_z = HyperCoder(net.bitEstimator_z_mv)
        self.z = HyperCoder(net.bitEstimator_z)

    # -- steps shared by encoder and decoder --------------------------------------------

    def _context(self, ref: Tensor, mv_y_hat: Tensor) -> Tensor:
        """Decoded motion, refined with the reference, warps the reference's features."""
        net = self.net
        mv_coarse = net.mvDecoder_part1(mv_y_hat)
        mv_hat = mv_coarse + net.mvDecoder_part2(torch.cat((mv_coarse, ref), dim=1))
        return net.context_refine(flow_warp(net.feature_extract(ref), mv_hat))

    def _priors(self, context: Tensor, z_hat: Tensor) -> Tensor:
        return torch.cat((self.net.temporalPriorEncoder(context), self.net.priorDecoder(z_hat)), dim=1)

    def _reconstruct(self, y_hat: Tensor, context: Tensor, size: tuple[int, int]) -> Tensor:
        net = self.net
        x_hat = net.contextualDecoder_part2(torch.cat((net.contextualDecoder_part1(y_hat), context), dim=1))
        return crop(x_hat, size).clamp(0.0, 1.0)

    # -- coding ---------------------------------------------------------------------------

    def analyse(self, ref: Tensor, x: Tensor) -> PFrameAnalysis:
        """Everything :meth:`encode` computes for ``x`` (1×3×H×W in [0, 1]) against the
        decoded reference ``ref``, without writing a byte: each coded tensor's symbols
        and CDF indexes (their exact code length is the P-frame's estimate) and the
        reconstruction the decoder will compute."""
        if ref.shape != x.shape or x.dim() != 4 or x.shape[0] != 1:
            raise ValueError(f"expected two 1×3×H×W frames, got {tuple(ref.shape)} and {tuple(x.shape)}")
        net = self.net
        ref, size = pad_to_multiple(ref)
        x, _ = pad_to_multiple(x)
        coded: dict[str, CodedTensor] = {}
        mv_y = net.mvEncoder(net.opticFlow(x, ref))
        mv_z = net.mvpriorEncoder(mv_y)
        coded["mv_z"], mv_z_hat = self.mv_z.symbols(mv_z)
        mv_params = net.mvpriorDecoder(mv_z_hat)
        symbols, indexes, mv_y_hat = self.mv.symbols(mv_y, mv_params, wave_schedule(*mv_y.shape[2:], self.mv.slope))
        coded["mv_y"] = CodedTensor(symbols, indexes, self.mv.tables, mv_y)
        context = self._context(ref, mv_y_hat)

        y = net.contextualEncoder(torch.cat((x, context), dim=1))
        z = net.priorEncoder(y)
        coded["z"], z_hat = self.z.symbols(z)
        priors = self._priors(context, z_hat)
        symbols, indexes, y_hat = self.y.symbols(y, priors, wave_schedule(*y.shape[2:], self.y.slope))
        coded["y"] = CodedTensor(symbols, indexes, self.y.tables, y)
        return PFrameAnalysis(coded=coded, x_hat=self._reconstruct(y_hat, context, size),
                              latents={"mv_y": (mv_y, mv_params), "y": (y, priors)})

    def encode(self, ref: Tensor, x: Tensor) -> PFrameEncoding:
        """Code ``x`` (1×3×H×W in [0, 1]) against the decoded reference ``ref``: the
        symbols of :meth:`analyse`, in decoding order, into one rANS stream."""
        analysis = self.analyse(ref, x)
        encoder = BufferedRansEncoder()
        for name in STREAM_ORDER:
            analysis.coded[name].write(encoder)
        return PFrameEncoding(data=encoder.flush(), x_hat=analysis.x_hat, latents=analysis.latents,
                              coded=analysis.coded)

    def min_payload_bits(self, size: tuple[int, int]) -> float:
        """A lower bound on what the four coded tensors of a frame of ``size`` (H, W) take
        from a rANS stream, whatever their values (:meth:`~dcvc_bench.codec.ar.RansTables.min_bits`)."""
        shapes = latent_shapes(size)
        return (self.mv_z.min_bits(shapes["mv_z"]) + self.mv.min_bits(shapes["mv_y"])
                + self.z.min_bits(shapes["z"]) + self.y.min_bits(shapes["y"]))

    def check_payload(self, data: bytes, size: tuple[int, int]) -> None:
        """Refuse, before decoding, a payload too short to hold the latents of a frame of
        ``size``: the decoder would read past its end (a stream claiming a larger frame)."""
        least = rans_min_bytes(self.min_payload_bits(size))
        if len(data) < least:
            raise ValueError(f"its {len(data)} bytes cannot hold the latents of a {size[1]}x{size[0]} frame "
                             f"(they take at least {least} bytes with this model)")

    def decode(self, ref: Tensor, data: bytes, size: tuple[int, int]) -> Tensor:
        """Rebuild the frame (1×3×H×W in [0, 1]) from :meth:`encode`'s stream. Raises
        ValueError for a payload that cannot be that frame's (:meth:`check_payload`), and
        :class:`~dcvc_bench.codec.ar.RansStreamError` for one that is not exactly the
        encoding of the latents it decodes to (checked before reconstruction)."""
        self.check_payload(data, size)
        net = self.net
        shapes = latent_shapes(size)
        ref, _ = pad_to_multiple(ref)
        log = RansLog()
        decoder = RansDecoder()
        decoder.set_stream(bytes(data) + _DECODER_SLACK)
        mv_z_hat = self.mv_z.decode(decoder, shapes["mv_z"], log)
        mv_params = net.mvpriorDecoder(mv_z_hat)
        mv_y_hat = self.mv.decode(decoder, mv_params, shapes["mv_y"],
                                  wave_schedule(*shapes["mv_y"], self.mv.slope), log)
        context = self._context(ref, mv_y_hat)

        z_hat = self.z.decode(decoder, shapes["z"], log)
        priors = self._priors(context, z_hat)
        y_hat = self.y.decode(decoder, priors, shapes["y"], wave_schedule(*shapes["y"], self.y.slope), log)
        log.check(bytes(data))
        return self._reconstruct(y_hat, context, size)
