"""What a stream must pass before any of it is decoded: the checks behind
``dcvc-bench decode`` and :func:`dcvc_bench.codec.video.decode_video`.

A stream is untrusted input. Its CRCs detect accidental damage, not forgery: anyone can
write a stream with valid checksums. So a stream is refused, with one line, unless it
passes, in this order and before anything is decoded or allocated beyond the stream:

1. :func:`open_stream` (no torch, so a bad stream costs well under a second): the
   container's structure and fixed-value fields (:func:`~dcvc_bench.codec.bitstream.parse_stream`),
   then a size limit, ``max_pixels`` (``--max-size``): what a stream may make the decoder
   allocate, which a user on a small machine can lower.
2. :func:`check_codec` (the model loaded, nothing decoded): every identity field against
   the checkpoint's codec (model digest, I-frame codec identity, preset, EMA flag); then
   every payload against what the header's frame size makes its codec decode: an I-frame's
   own container and declared size (a JPEG's frame header, before libjpeg sees it), and a
   P-frame's length against the least its latents can take — their grid sizes follow
   from the frame size (:func:`~dcvc_bench.codec.pframe.latent_shapes`, the decoder's own),
   and the model's CDF tables bound the bits per symbol. A payload too short for them
   would make CompressAI's rANS decoder, which does no bounds checking, read past its end
   while the network allocates for the claimed size: that is the allocation attack.

While decoding, each P-frame is also checked exactly (it must be the re-encoding of the
latents it decodes to: no trailing or altered bytes) and each I-frame's decoder must not
report corrupt data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcvc_bench.codec.bitstream import MAX_SIDE, FramePayload, Header, StreamError, parse_stream
from dcvc_bench.errors import UserError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SIZE", "OpenedStream", "check_codec", "max_pixels_of", "open_stream"]

#: The default limit on decoded frame size: DCI 4K. Decoding needs memory in proportion
#: (about 0.6 KB a pixel with the tiny preset, several times that with dcvc's widths).
DEFAULT_MAX_SIZE = (4096, 2160)
DEFAULT_MAX_PIXELS = DEFAULT_MAX_SIZE[0] * DEFAULT_MAX_SIZE[1]


@dataclass(frozen=True)
class OpenedStream:
    """A stream that passed :func:`open_stream`; ``name`` prefixes every error about it."""

    header: Header
    payloads: list[FramePayload]
    name: str


def max_pixels_of(text: str | None) -> int:
    """``--max-size WIDTHxHEIGHT`` as a pixel count (None: the default)."""
    if text is None:
        return DEFAULT_MAX_PIXELS
    from dcvc_bench.data.synth import parse_size

    try:
        width, height = parse_size(text)
    except UserError:
        width = height = 0
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise UserError(f"--max-size: expected WIDTHxHEIGHT with sides 1..{MAX_SIDE}, such as "
                        f"{DEFAULT_MAX_SIZE[0]}x{DEFAULT_MAX_SIZE[1]}, got {text!r}")
    return width * height


def open_stream(data: bytes, *, name: str = "stream", max_pixels: int | None = DEFAULT_MAX_PIXELS,
                limit: str | None = None) -> OpenedStream:
    """Parse and check ``data`` (stage 1 above). ``max_pixels`` None: only the format's
    own bound (:data:`~dcvc_bench.codec.bitstream.MAX_SIDE` per side). ``limit`` names the
    setting in the error (default ``max_pixels=N``; the CLI passes ``--max-size WxH``)."""
    try:
        header, payloads = parse_stream(data)
    except StreamError as exc:
        raise StreamError(f"{name}: {exc}") from None
    pixels = header.width * header.height
    if max_pixels is not None and pixels > max_pixels:
        setting = limit or f"max_pixels={max_pixels}"
        raise StreamError(f"{name}: its {header.width}x{header.height} frames ({pixels:,} pixels) exceed the "
                          f"decoder's limit of {max_pixels:,} pixels ({setting}); raise the limit to decode "
                          "a stream you trust")
    return OpenedStream(header, payloads, name)


def check_codec(stream: OpenedStream, codec: Any) -> None:
    """Check ``stream`` against the :class:`~dcvc_bench.codec.video.Codec` that is to
    decode it (stage 2 above)."""
    from dcvc_bench.models.video_net import PRESETS

    header, name = stream.header, stream.name
    if header.model_identity != codec.digest:
        detail = ""
        if header.iframe_identity != codec.iframe.identity():
            detail = f" (I-frame codec {header.iframe_identity[:60]} vs {codec.iframe.identity()[:60]})"
        raise StreamError(f"{name}: stream was made by model {header.model_identity.hex()[:16]}, "
                          f"checkpoint is {codec.identity()[:16]}{detail}")
    if header.iframe_identity != codec.iframe.identity():
        raise StreamError(f"{name}: stream names I-frame codec {header.iframe_identity[:60]!r}, "
                          f"the checkpoint's is {codec.iframe.identity()[:60]!r}")
    if header.preset not in PRESETS:
        raise StreamError(f"{name}: stream names model preset {header.preset!r}; known presets: "
                          f"{', '.join(PRESETS)}")
    if header.preset != codec.preset:
        raise StreamError(f"{name}: stream names model preset {header.preset!r}, the checkpoint's is "
                          f"{codec.preset!r}")
    if header.ema != codec.ema:
        made, using = ("EMA", "plain") if header.ema else ("plain", "EMA")
        raise StreamError(f"{name}: stream says it was made with the {made} weights, the codec uses the "
                          f"{using} weights")
    size = (header.height, header.width)
    for index, payload in enumerate(stream.payloads):
        try:
            if payload.kind == "I":
                codec.iframe.check(payload.data, size)
            else:
                codec.pframe.check_payload(payload.data, size)
        except ValueError as exc:
            raise StreamError(f"{name}: frame {index} ({payload.kind}) does not decode: {exc}") from None
