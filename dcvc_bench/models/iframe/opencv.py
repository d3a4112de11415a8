"""OpenCV I-frame codec: JPEG/WebP through ``cv2.imencode``. Its estimate *is* a real
encode/decode, so estimated and real bits agree exactly. The offline default: no weights
needed."""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import tempfile
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from torch import Tensor

from dcvc_bench.curriculum.iframe_spec import OpenCVSpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.base import IFrameCodec, IFrameResult, check_batch, check_size

_OPENCV_FORMATS = {
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
}


# ---- strict reading of untrusted JPEG/WebP payloads (the decode path of `dcvc-bench decode`)
#
# A frame payload is untrusted: its CRC detects damage, not forgery. Before OpenCV decodes
# it, its container structure is walked end to end (no bytes after it, one frame header,
# the size it declares) without decoding anything; while OpenCV decodes it, any message
# libjpeg prints ("Corrupt JPEG data: ...", which OpenCV only prints and then returns an
# image) makes the decode an error. Pillow is no way around this: it silences libjpeg's
# warnings too (in a test it raised on 1 of 200 bit-flipped JPEGs; libjpeg warned on 54).

_JPEG_SOF_HUFFMAN = {0xC0, 0xC1, 0xC2}   # baseline, extended, progressive: what libjpeg-turbo decodes
_JPEG_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SEGMENTS = {0xC4, 0xDB, 0xDD, 0xFE} | set(range(0xE0, 0xF0))  # DHT, DQT, DRI, COM, APPn
_JPEG_NEXT_MARKER = re.compile(rb"\xff(?!\x00)")  # in entropy-coded data, 0xFF 0x00 is a stuffed byte


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(H, W) of a JPEG whose marker structure is whole: SOI, segments whose lengths fit,
    one 8-bit 3-component Huffman frame header, scans whose entropy-coded data holds only
    restart markers (in order), and EOI as the last two bytes. ValueError otherwise."""
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream (no start-of-image marker)")
    size: tuple[int, int] | None = None
    scans, i = 0, 2
    while True:
        if i + 2 > n:
            raise ValueError("truncated JPEG stream (no end-of-image marker)")
        if data[i] != 0xFF:
            raise ValueError(f"malformed JPEG: expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2
        if marker == 0xD9:
            if size is None or not scans:
                raise ValueError("malformed JPEG: image ends before a frame header and a scan")
            if i != n:
                raise ValueError(f"malformed JPEG: {n - i} bytes after its end-of-image marker")
            return size
        if marker in _JPEG_SOF_OTHER:
            raise ValueError(f"unsupported JPEG coding process (frame marker 0x{marker:02x})")
        if marker not in _JPEG_SEGMENTS and marker not in _JPEG_SOF_HUFFMAN and marker != 0xDA:
            raise ValueError(f"malformed JPEG: unexpected marker 0x{marker:02x}")
        if i + 2 > n:
            raise ValueError("truncated JPEG stream")
        (seg_len,) = struct.unpack(">H", data[i:i + 2])
        if seg_len < 2 or i + seg_len > n:
            raise ValueError(f"malformed JPEG: segment 0x{marker:02x} of {seg_len} bytes does not fit")
        body, i = data[i + 2:i + seg_len], i + seg_len
        if marker in _JPEG_SOF_HUFFMAN:
            if size is not None:
                raise ValueError("malformed JPEG: a second frame header")
            if len(body) < 6:
                raise ValueError("malformed JPEG: short frame header")
            precision, h, w, components = struct.unpack(">BHHB", body[:6])
            if len(body) != 6 + 3 * components or precision != 8 or components != 3 or not (h and w):
                raise ValueError(f"unsupported JPEG frame header ({precision}-bit, {components} components, "
                                 f"{w}x{h}); the OpenCV codec writes 8-bit 3-component frames")
            size = (h, w)
        elif marker == 0xDA:  # start of scan: entropy-coded data up to the next marker other than RSTn
            if size is None:
                raise ValueError("malformed JPEG: a scan before the frame header")
            scans += 1
            restart = 0
            while True:
                found = _JPEG_NEXT_MARKER.search(data, i)
                if found is None or found.start() + 1 >= n:
                    raise ValueError("truncated JPEG stream (scan data has no end)")
                code = data[found.start() + 1]
                if 0xD0 <= code <= 0xD7:
                    if code != 0xD0 + restart:
                        raise ValueError(f"corrupted JPEG: restart marker RST{code - 0xD0} where RST{restart} belongs")
                    restart = (restart + 1) % 8
                    i = found.start() + 2
                    continue
                i = found.start()
                break


def _webp_size(data: bytes) -> tuple[int, int]:
    """(H, W) from a WebP's first chunk, after checking that its RIFF chunks fill the file
    exactly; ValueError otherwise."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP stream")
    (riff_len,) = struct.unpack("<I", data[4:8])
    if riff_len + 8 != len(data):
        raise ValueError(f"truncated or padded WebP: header says {riff_len + 8} bytes, got {len(data)}")
    i = 12
    while i < len(data):
        if i + 8 > len(data):
            raise ValueError("malformed WebP: truncated chunk header")
        fourcc, (chunk_len,) = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])
        i += 8 + chunk_len + (chunk_len & 1)
        if i > len(data):
            raise ValueError(f"malformed WebP: chunk {fourcc!r} of {chunk_len} bytes does not fit")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a" or data[20] & 1:
            raise ValueError("malformed WebP: not a VP8 key frame")
        w, h = struct.unpack("<HH", data[26:30])
        return h & 0x3FFF, w & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("malformed WebP: bad VP8L signature")
        (bits,) = struct.unpack("<I", data[21:25])
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return h, w
    raise ValueError(f"malformed WebP: unknown chunk {chunk!r}")


@contextlib.contextmanager
def _native_messages() -> Iterator[list[str]]:
    """Collect what native code prints on stderr (file descriptor 2) meanwhile: libjpeg
    reports corrupt data there and carries on. Yields a list filled on exit."""
    messages: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield messages
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                messages.extend(line.strip() for line in sink.read().decode("utf-8", "replace").splitlines()
                                if line.strip())
    finally:
        os.close(saved)


class OpenCVCodec(IFrameCodec):
    """JPEG or WebP via OpenCV. ``estimate`` really encodes and decodes every sample, so
    its bits are the real size (8·len(bytes)) and its x_hat the real reconstruction.

    The frame is quantised to 8-bit RGB before coding (stored BGR, OpenCV's order).
    """

    rate_knob = "quality"

    def __init__(self, spec: OpenCVSpec):
        if not isinstance(spec, OpenCVSpec):
            raise TypeError(f"OpenCVCodec takes an OpenCVSpec, got {type(spec).__name__}")
        if spec.codec not in _OPENCV_FORMATS:  # the spec's choices and this table must agree
            raise UserError(f"OpenCV I-frame format {spec.codec!r} unknown; use one of {', '.join(_OPENCV_FORMATS)}")
        self.spec = spec
        self.fmt = spec.codec
        self.quality = spec.quality
        self.name = spec.label

    def identity(self) -> str:
        # The bytes are a standard JPEG/WebP file: format and quality (the whole spec)
        # define the stream; any conforming decoder reads it, so the library version is
        # not part of it.
        return self.name

    @property
    def exact_estimate(self) -> bool:
        return True

    def with_rate(self, value: Any) -> OpenCVCodec:
        return OpenCVCodec(self.spec.with_settings(quality=value))

    def _encode_one(self, img: Tensor) -> bytes:
        """3×H×W float -> file bytes."""
        rgb = (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        bgr = np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy()[:, :, ::-1])
        ext, flag = _OPENCV_FORMATS[self.fmt]
        ok, buf = cv2.imencode(ext, bgr, [int(flag), self.quality])
        if not ok:
            raise RuntimeError(f"cv2.imencode({ext}) failed for a {bgr.shape} frame")
        return buf.tobytes()

    def check(self, data: bytes, size: tuple[int, int]) -> None:
        h, w = check_size(size)
        header_size = _jpeg_size(data) if self.fmt == "jpeg" else _webp_size(data)
        if header_size != (h, w):
            raise ValueError(f"{self.fmt} stream is {header_size[0]}×{header_size[1]}, expected {h}×{w}")

    def _decode_one(self, data: bytes, size: tuple[int, int], strict: bool = False) -> Tensor:
        """File bytes -> 3×H×W float. The container is checked (:meth:`check`) before
        decoding, so a malformed stream never makes OpenCV allocate an arbitrary image;
        ``strict`` (untrusted bytes) also makes anything libjpeg reports an error."""
        h, w = size
        self.check(data, size)
        with (_native_messages() if strict else contextlib.nullcontext([])) as messages:
            bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if messages:
            raise ValueError(f"corrupt {self.fmt} data ({self.fmt} decoder: {messages[0][:200]})")
        if bgr is None or bgr.shape != (h, w, 3):
            raise ValueError(f"cannot decode {self.fmt} stream of {len(data)} bytes")
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)
        return rgb.float() / 255.0

    @torch.no_grad()
    def estimate(self, x: Tensor) -> IFrameResult:
        check_batch(x, single=False)
        size = (x.shape[2], x.shape[3])
        x_hats, bits = [], []
        for img in x:
            data = self._encode_one(img)
            x_hats.append(self._decode_one(data, size))
            bits.append(8.0 * len(data))
        x_hat = torch.stack(x_hats).to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
        return IFrameResult(x_hat=x_hat, bits=torch.tensor(bits, dtype=torch.float32, device=x.device))

    @torch.no_grad()
    def encode(self, x: Tensor) -> bytes:
        check_batch(x, single=True)
        return self._encode_one(x[0])

    @torch.no_grad()
    def decode(self, data: bytes, size: tuple[int, int]) -> Tensor:
        return self._decode_one(bytes(data), check_size(size), strict=True).unsqueeze(0)


def build(spec: OpenCVSpec, device: str = "cpu") -> OpenCVCodec:
    """The registry's builder (OpenCV codes on the CPU whatever ``device`` is)."""
    return OpenCVCodec(spec)
