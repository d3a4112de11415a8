"""The ``.dcvc`` container: a header naming everything a decoder must match, then
length-prefixed, checksummed frame payloads.

Layout (big endian; ``crc32`` is zlib's)::

    header  magic "DCVCBNCH" | u16 format version | 32 B model identity (sha256)
            | u8 n + preset (ASCII) | u32 width | u32 height | u32 frame count
            | i32 intra period (-1: only frame 0) | u8 coding threads | u8 flags (bit 0: EMA weights)
            | u16 n + I-frame codec identity (UTF-8) | u32 crc32 of the header so far
    frame   u32 payload length | u32 crc32(payload) | payload
    payload u8 kind (b"I" | b"P") | the frame's coded data: the I-frame codec's bytes, or
            the P-frame's rANS stream (whole 32-bit words: the encoder's final 64-bit state,
            little endian, in [2^31, 2^63), then the words the decoder reads); its length is
            the payload length − 1

Parsing is validation first, without torch: :func:`parse_stream` checks every length and
count against the bytes actually present and against fixed bounds, every field with a
fixed set of values (magic, version, flag bits, thread count, frame kinds against the
intra period, a P-frame's rANS framing), every checksum, and that nothing trails the last
frame. What needs the model — the identity fields against the checkpoint, each payload
against what the frame size makes its codec decode, and a size limit — is
:mod:`dcvc_bench.codec.validate`'s, also before anything is decoded.

A CRC detects accidental damage, not forgery: anyone can write a stream with valid
checksums. What keeps a crafted stream from making the decoder allocate is the checks
above, not the CRCs.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from dcvc_bench.codec.gop import is_intra_frame
from dcvc_bench.errors import UserError

__all__ = ["FORMAT_VERSION", "FRAME_OVERHEAD", "MAGIC", "MAX_SIDE", "FramePayload", "Header", "StreamError",
           "pack_frame", "pack_header", "parse_stream"]

MAGIC = b"DCVCBNCH"
FORMAT_VERSION = 1
#: Largest frame side accepted (8K): bounds what a header can make a decoder allocate.
MAX_SIDE = 8192
MAX_FRAMES = 10_000_000
MAX_THREADS = 64
MAX_PRESET = 32
MAX_IFRAME_IDENTITY = 1024
KINDS = (b"I", b"P")
#: A P-frame is rANS output: whole 32-bit words, at least the 64-bit final state.
RANS_MIN_BYTES, RANS_WORD = 8, 4
FLAG_EMA = 1
FLAGS_KNOWN = FLAG_EMA
#: rANS64's state stays in [2^31, 2^63) (CompressAI's coder): a P-frame starts with it.
RANS_STATE_RANGE = (1 << 31, 1 << 63)

_U32 = struct.Struct(">I")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_FRAME_HEAD = struct.Struct(">II")          # payload length, crc32
_HEADER_START = struct.Struct(">8sH32sB")   # magic, version, identity, preset length
_HEADER_FIELDS = struct.Struct(">IIIiBBH")  # width, height, frames, intra, threads, flags, id length
#: Container bytes around each frame's coded data: length, checksum, kind.
FRAME_OVERHEAD = _FRAME_HEAD.size + 1
#: The smallest possible frame record: a one-byte I-frame.
MIN_FRAME_BYTES = FRAME_OVERHEAD + 1


class StreamError(UserError):
    """A stream that cannot be decoded: not ours, truncated, corrupted or inconsistent."""


@dataclass(frozen=True)
class Header:
    model_identity: bytes        # sha256 digest of the P-frame weights, CDFs and I-frame identity
    preset: str
    width: int
    height: int
    frames: int
    intra_period: int            # -1: only frame 0 is an I-frame
    threads: int                 # thread count the encoder coded with; the decoder uses it too
    ema: bool                    # made with the checkpoint's EMA weights
    iframe_identity: str


@dataclass(frozen=True)
class FramePayload:
    kind: str                    # "I" or "P"
    data: bytes


def pack_header(header: Header) -> bytes:
    _check_header(header)
    preset = header.preset.encode("ascii")
    identity = header.iframe_identity.encode("utf-8")
    if len(header.model_identity) != 32 or len(preset) > MAX_PRESET or len(identity) > MAX_IFRAME_IDENTITY:
        raise ValueError("header field too long for the container")
    data = (_HEADER_START.pack(MAGIC, FORMAT_VERSION, header.model_identity, len(preset)) + preset
            + _HEADER_FIELDS.pack(header.width, header.height, header.frames, header.intra_period,
                                  header.threads, FLAG_EMA if header.ema else 0, len(identity))
            + identity)
    return data + _U32.pack(zlib.crc32(data))


def pack_frame(kind: str, data: bytes) -> bytes:
    """One frame record: length, checksum, kind and coded data."""
    if kind.encode("ascii") not in KINDS or not data:
        raise ValueError(f"cannot pack a {kind!r} frame of {len(data)} bytes")
    payload = kind.encode("ascii") + data
    return _FRAME_HEAD.pack(len(payload), zlib.crc32(payload)) + payload


class _Reader:
    """Bounds-checked reads: every read states what it needs before taking it."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise StreamError(f"truncated stream: {what} needs {n} bytes, only {self.remaining()} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))


def _check_header(h: Header) -> None:
    if not 1 <= h.width <= MAX_SIDE or not 1 <= h.height <= MAX_SIDE:
        raise StreamError(f"frame size {h.width}x{h.height} out of range (1..{MAX_SIDE} per side)")
    if not 1 <= h.frames <= MAX_FRAMES:
        raise StreamError(f"frame count {h.frames} out of range (1..{MAX_FRAMES})")
    if h.intra_period != -1 and h.intra_period < 1:
        raise StreamError(f"intra period {h.intra_period} invalid (-1 or >= 1)")
    if not 1 <= h.threads <= MAX_THREADS:
        raise StreamError(f"thread count {h.threads} out of range (1..{MAX_THREADS})")
    if not _NAME.fullmatch(h.preset) or len(h.preset) > MAX_PRESET:
        raise StreamError(f"model preset {h.preset[:40]!r} is not a preset name")
    if not h.iframe_identity.isprintable() or not 1 <= len(h.iframe_identity.encode()) <= MAX_IFRAME_IDENTITY:
        raise StreamError(f"I-frame codec identity {h.iframe_identity[:40]!r} is not a codec identity")


def _parse_header(reader: _Reader) -> Header:
    magic, version, identity, preset_len = reader.unpack(_HEADER_START, "the header")
    if magic != MAGIC:
        raise StreamError("not a dcvc-bench stream (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise StreamError(f"stream format version {version} is not supported (this dcvc-bench reads {FORMAT_VERSION})")
    preset = reader.take(preset_len, "the header's preset name")
    width, height, frames, intra, threads, flags, id_len = reader.unpack(_HEADER_FIELDS, "the header")
    iframe_identity = reader.take(id_len, "the header's I-frame codec identity")
    (crc,) = reader.unpack(_U32, "the header checksum")
    if zlib.crc32(reader.data[:reader.pos - _U32.size]) != crc:
        raise StreamError("corrupted stream: header checksum mismatch")
    if flags & ~FLAGS_KNOWN:
        raise StreamError(f"header flags 0x{flags:02x} have unknown bits set (this dcvc-bench knows "
                          f"0x{FLAGS_KNOWN:02x}: EMA weights)")
    try:
        header = Header(identity, preset.decode("ascii"), width, height, frames, intra, threads,
                        bool(flags & FLAG_EMA), iframe_identity.decode("utf-8"))
    except UnicodeDecodeError:
        raise StreamError("corrupted stream: header text is not valid") from None
    _check_header(header)
    return header


def _parse_frame(reader: _Reader, index: int, expected_kind: str) -> FramePayload:
    where = f"frame {index}"
    length, crc = reader.unpack(_FRAME_HEAD, f"{where}'s record header")
    payload = reader.take(length, f"{where}'s payload")
    if zlib.crc32(payload) != crc:
        raise StreamError(f"corrupted stream: {where} checksum mismatch")
    if length < 2 or payload[:1] not in KINDS:
        raise StreamError(f"corrupted stream: {where} has no frame type and data")
    kind, data = payload[:1].decode("ascii"), payload[1:]
    if kind != expected_kind:
        raise StreamError(f"inconsistent stream: {where} is coded as {kind}, "
                          f"the intra period makes it {expected_kind}")
    if kind == "P" and (len(data) < RANS_MIN_BYTES or len(data) % RANS_WORD):
        raise StreamError(f"corrupted stream: {where} holds {len(data)} bytes, not a rANS stream "
                          "(whole 32-bit words, at least 8 bytes)")
    if kind == "P" and not RANS_STATE_RANGE[0] <= int.from_bytes(data[:8], "little") < RANS_STATE_RANGE[1]:
        raise StreamError(f"corrupted stream: {where} does not start with a rANS state")
    return FramePayload(kind, data)


def parse_stream(data: bytes) -> tuple[Header, list[FramePayload]]:
    """Validate the whole stream (see the module docstring) and split it into frames."""
    reader = _Reader(bytes(data))
    header = _parse_header(reader)
    if header.frames > reader.remaining() // MIN_FRAME_BYTES:
        most = reader.remaining() // MIN_FRAME_BYTES
        raise StreamError(f"truncated or corrupted stream: header says {header.frames} frames, "
                          f"the {reader.remaining()} bytes after it hold at most {most}")
    frames = []
    for index in range(header.frames):
        expected = "I" if is_intra_frame(index, header.intra_period) else "P"
        frames.append(_parse_frame(reader, index, expected))
    if reader.remaining():
        raise StreamError(f"corrupted stream: {reader.remaining()} unexpected bytes after the last frame")
    return header, frames
