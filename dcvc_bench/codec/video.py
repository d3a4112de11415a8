"""Real coding of whole sequences: the API behind ``dcvc-bench encode``/``decode``
(:mod:`dcvc_bench.codec.files`) and ``dcvc-bench eval --real``.

Every frame is really coded and every byte counted: I-frames by the I-frame codec's own
coder, P-frames by :class:`~dcvc_bench.codec.pframe.PFrameCoder` (rANS), framed by
:mod:`dcvc_bench.codec.bitstream`. The encoder runs the shared GOP loop
(:func:`dcvc_bench.codec.gop.code_frames`) with functions that write bytes and return what
the decoder will show; a failure is an exception naming the clip and frame, never a
fallback to estimation.

The reference is the output picture. The decoder outputs 8-bit RGB
(``round(clamp(x, 0, 1) · 255)``), and that picture, back in [0, 1], is the next frame's
reference, on both sides — as in any 8-bit video decoder. (The DCVC reference code keeps
the float reconstruction instead; the difference, at most half a grey level, is far below
coding noise.) So the stream is defined by what decode outputs, and PSNR measured on
:attr:`EncodeResult.decoded` is PSNR of the decoded video.

Exact reproduction needs identical arithmetic: coding runs under
:func:`~dcvc_bench.codec.ar.coding_settings` with the thread count recorded in the stream
header, and the header's model identity (weights, CDF tables and I-frame codec) must match
the decoder's model. Same machine and settings give bit-identical output (tested across
processes); different CPUs or library builds may round differently.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from dcvc_bench.checkpoint_io import ema_fits, iframe_spec_of, load_checkpoint, model_weights, with_ema_weights
from dcvc_bench.codec.ar import coding_settings
from dcvc_bench.codec.bitstream import MAX_SIDE, Header, StreamError, pack_frame, pack_header
from dcvc_bench.codec.gop import code_frames, is_intra_frame
from dcvc_bench.codec.pframe import PFrameCoder
from dcvc_bench.codec.validate import DEFAULT_MAX_PIXELS, OpenedStream, check_codec, open_stream
from dcvc_bench.errors import UserError
from dcvc_bench.models.entropy import model_options_of
from dcvc_bench.models.iframe import IFrameCodec, build_iframe_codec, hash_state_dict
from dcvc_bench.models.video_net import DCVC

__all__ = ["DEFAULT_THREADS", "Codec", "CodingError", "DecodeResult", "EncodeResult", "FrameStats",
           "decode_frames", "decode_video", "encode_video", "load_codec"]

#: Threads for coding; written into the stream so the decoder uses the same number.
DEFAULT_THREADS = max(1, min(os.cpu_count() or 1, 8))


class CodingError(RuntimeError):
    """Encoding a frame failed; the message names the clip and the frame."""


@dataclass
class FrameStats:
    index: int
    kind: str              # "I" or "P"
    bits: int              # real: 8 × the frame's bytes in the stream (length prefix and CRC included)
    payload_bits: int      # 8 × the coded data alone; bits − payload_bits is container framing
    est_bits: float        # the estimate: exact cost of the frame's coded symbols (PFrameAnalysis.bits)
    enc_seconds: float     # coding time, estimate excluded


@dataclass
class EncodeResult:
    stream: bytes
    decoded: Tensor        # T×3×H×W uint8: exactly what decode_video outputs
    frames: list[FrameStats]
    header_bits: int       # 8 × header bytes; header_bits + Σ frame bits = 8 × len(stream)


@dataclass
class DecodeResult:
    frames: Tensor         # T×3×H×W uint8
    dec_seconds: list[float]


class Codec:
    """A DCVC model and its I-frame codec, ready for real coding: eval mode, no
    gradients, CDF tables built (``update(force=True)``)."""

    def __init__(self, net: DCVC, iframe: IFrameCodec, *, ema: bool = False,
                 device: str | torch.device = "cpu", threads: int = DEFAULT_THREADS):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.update(force=True)
        self.iframe = iframe
        self.ema = ema
        self.threads = threads
        self.pframe = PFrameCoder(self.net)
        # After update(): the identity covers the CDF tables the coder really uses.
        text = f"dcvc-bench/{self.net.preset}|{hash_state_dict(self.net.state_dict())}|{iframe.identity()}"
        self.digest = hashlib.sha256(text.encode()).digest()

    @property
    def preset(self) -> str:
        return self.net.preset

    def identity(self) -> str:
        """sha256 (hex) over the P-frame weights with their CDF tables and the I-frame
        codec's identity: two codecs decode each other's streams iff these are equal."""
        return self.digest.hex()


def load_codec(checkpoint: str | os.PathLike[str], *, ema: bool = False, device: str = "cpu") -> Codec:
    """The codec a dcvc-bench checkpoint describes: DCVC rebuilt from ``model_preset``
    (``dcvc`` when absent, as in the reference checkpoints) and ``model_options`` (an
    imported checkpoint's entropy models), its weights (or EMA weights),
    and the I-frame codec from the spec in the checkpoint's ``i_frame`` record."""
    path = Path(checkpoint)
    state = load_checkpoint(path, flag="--checkpoint")
    preset = state.get("model_preset") or "dcvc"
    net = DCVC(str(preset), **model_options_of(state, f"--checkpoint: {path}"))
    try:
        net.load_state_dict(model_weights(state))
    except (RuntimeError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--checkpoint: {path} weights do not fit a '{preset}' DCVC model ({first})") from None
    if ema:
        if not ema_fits(net, state.get("ema_state_dict")):
            raise UserError(f"--checkpoint: {path} has no EMA weights for this model; drop --ema")
        net = with_ema_weights(net, state["ema_state_dict"]["shadow"])
    iframe = build_iframe_codec(iframe_spec_of(state, path), device=device)
    return Codec(net, iframe, ema=ema, device=device)


def _output(x_hat: Tensor) -> tuple[Tensor, Tensor]:
    """The decoder's output picture (3×H×W uint8, CPU) and the reference made from it."""
    pixels = (x_hat.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return pixels[0].cpu(), pixels.float() / 255.0


def _check_input(frames_u8: Tensor, intra_period: int | None) -> int:
    if not isinstance(frames_u8, Tensor) or frames_u8.dtype != torch.uint8 or frames_u8.dim() != 4 \
            or frames_u8.shape[1] != 3 or frames_u8.shape[0] < 1:
        shape = (tuple(frames_u8.shape), frames_u8.dtype) if isinstance(frames_u8, Tensor) else type(frames_u8)
        raise ValueError(f"encode_video takes T×3×H×W uint8 frames, got {shape}")
    height, width = frames_u8.shape[2:]
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise UserError(f"frames of {width}x{height} cannot be coded: each side must be 1..{MAX_SIDE}")
    if intra_period is None or intra_period == -1:
        return -1
    if isinstance(intra_period, bool) or not isinstance(intra_period, int) or intra_period < 1:
        raise UserError(f"--intra-period must be -1 (one I-frame) or >= 1, got {intra_period!r}")
    return intra_period


def encode_video(codec: Codec, frames_u8: Tensor, intra_period: int | None, *, name: str = "clip") -> EncodeResult:
    """Really code ``frames_u8`` (T×3×H×W uint8 RGB): the stream, the decoded frames and,
    per frame, real bits next to the estimate (the exact cost of the same symbols)."""
    intra = _check_input(frames_u8, intra_period)
    size = (int(frames_u8.shape[2]), int(frames_u8.shape[3]))
    device = codec.device
    records: list[bytes] = []
    stats: list[FrameStats] = []
    decoded: list[Tensor] = []

    def finish(kind: str, data: bytes, x_hat: Tensor, seconds: float, est_bits: float) -> Tensor:
        record = pack_frame(kind, data)
        records.append(record)
        stats.append(FrameStats(len(stats), kind, 8 * len(record), 8 * len(data), est_bits, seconds))
        pixels, ref = _output(x_hat)
        decoded.append(pixels)
        return ref

    def iframe_fn(x_u8: Tensor) -> tuple[Tensor, Tensor]:
        x = x_u8.to(device).float() / 255.0
        start = time.perf_counter()
        data = codec.iframe.encode(x)
        x_hat = codec.iframe.decode(data, size).to(device)  # the reference is what the decoder sees
        seconds = time.perf_counter() - start
        est = float(codec.iframe.estimate(x).bits[0])
        ref = finish("I", data, x_hat, seconds, est)
        return ref, torch.tensor([float(stats[-1].bits)])

    def pframe_fn(ref: Tensor, x_u8: Tensor) -> dict:
        x = x_u8.to(device).float() / 255.0
        start = time.perf_counter()
        encoding = codec.pframe.encode(ref, x)
        seconds = time.perf_counter() - start
        est = float(sum(encoding.bits().values()))  # exact cost of its symbols: evaluation's estimate
        out_ref = finish("P", encoding.data, encoding.x_hat, seconds, est)
        return {"x_hat": out_ref, "bits": {"real": torch.tensor([float(stats[-1].bits)])}}

    with coding_settings(codec.threads):
        try:
            for _ in code_frames(frames_u8.unsqueeze(0), iframe_fn, pframe_fn, lambda out: out["x_hat"], intra):
                pass
        except UserError:
            raise
        except Exception as exc:
            t = len(stats)
            kind = "I" if is_intra_frame(t, intra) else "P"
            raise CodingError(f"{name}: encoding frame {t} ({kind}) failed: {type(exc).__name__}: {exc}") from exc

    header = pack_header(Header(
        model_identity=codec.digest, preset=codec.preset, width=size[1], height=size[0],
        frames=len(records), intra_period=intra, threads=codec.threads, ema=codec.ema,
        iframe_identity=codec.iframe.identity()))
    return EncodeResult(stream=header + b"".join(records), decoded=torch.stack(decoded),
                        frames=stats, header_bits=8 * len(header))


def decode_frames(codec: Codec, stream: OpenedStream) -> Iterator[tuple[Tensor, float]]:
    """Decode an opened stream frame by frame: (3×H×W uint8 picture, seconds) each. The
    stream is checked against ``codec`` (:func:`~dcvc_bench.codec.validate.check_codec`)
    before the first frame is decoded; every problem is a one-line :class:`StreamError`."""
    check_codec(stream, codec)
    header, name = stream.header, stream.name
    size = (header.height, header.width)
    ref: Tensor | None = None
    with coding_settings(header.threads):
        for t, payload in enumerate(stream.payloads):
            start = time.perf_counter()
            try:
                if payload.kind == "I":
                    x_hat = codec.iframe.decode(payload.data, size).to(codec.device)
                else:
                    x_hat = codec.pframe.decode(ref, payload.data, size)
            except ValueError as exc:  # the data is refused: the message says why
                raise StreamError(f"{name}: frame {t} ({payload.kind}) does not decode: {exc}") from None
            except Exception as exc:
                raise StreamError(f"{name}: frame {t} ({payload.kind}) does not decode: "
                                  f"{type(exc).__name__}: {exc}") from exc
            pixels, ref = _output(x_hat)
            yield pixels, time.perf_counter() - start


def decode_video(codec: Codec | None, stream: bytes, checkpoint: str | os.PathLike[str] | None = None,
                 *, name: str = "stream", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodeResult:
    """Decode a stream. Without ``codec``, the codec is loaded from ``checkpoint`` (with
    EMA weights when the stream says it was made with them). The whole stream is checked
    before any frame is decoded (:mod:`dcvc_bench.codec.validate`; frames of more than
    ``max_pixels`` pixels are refused, None: no limit but the format's); every problem
    is a one-line :class:`UserError`."""
    opened = open_stream(stream, name=name, max_pixels=max_pixels)
    if codec is None:
        if checkpoint is None:
            raise ValueError("decode_video needs a codec or a checkpoint")
        codec = load_codec(checkpoint, ema=opened.header.ema)
    frames: list[Tensor] = []
    seconds: list[float] = []
    for pixels, elapsed in decode_frames(codec, opened):
        frames.append(pixels)
        seconds.append(elapsed)
    return DecodeResult(frames=torch.stack(frames), dec_seconds=seconds)
