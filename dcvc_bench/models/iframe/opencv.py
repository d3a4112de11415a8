"""OpenCV I-frame codec: JPEG/WebP through ``cv2.imencode``. Its estimate *is* a real
encode/decode, so estimated and real bits agree exactly. The offline default: no weights
needed."""

from __future__ import annotations

import struct
from typing import Any

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


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(H, W) from a JPEG's SOF segment; ValueError if the file is not a whole JPEG."""
    if len(data) < 4 or data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise ValueError("not a complete JPEG stream (missing start or end marker)")
    sof = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("malformed JPEG: expected a marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in sof:
            if seg_len < 7 or i + 9 > len(data):
                raise ValueError("malformed JPEG: short frame header")
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return h, w
        if marker == 0xDA or seg_len < 2:  # scan data before any frame header
            break
        i += 2 + seg_len
    raise ValueError("malformed JPEG: no frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    """(H, W) from a WebP's first chunk; ValueError if the RIFF container is incomplete."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP stream")
    (riff_len,) = struct.unpack("<I", data[4:8])
    if riff_len + 8 != len(data):
        raise ValueError(f"truncated or padded WebP: header says {riff_len + 8} bytes, got {len(data)}")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("malformed WebP: bad VP8 start code")
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

    def _decode_one(self, data: bytes, size: tuple[int, int]) -> Tensor:
        """File bytes -> 3×H×W float; sizes are checked from the header before decoding
        so a malformed stream never makes OpenCV allocate an arbitrary image."""
        h, w = size
        header_size = _jpeg_size(data) if self.fmt == "jpeg" else _webp_size(data)
        if header_size != (h, w):
            raise ValueError(f"{self.fmt} stream is {header_size[0]}×{header_size[1]}, expected {h}×{w}")
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
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
        return self._decode_one(bytes(data), check_size(size)).unsqueeze(0)


def build(spec: OpenCVSpec, device: str = "cpu") -> OpenCVCodec:
    """The registry's builder (OpenCV codes on the CPU whatever ``device`` is)."""
    return OpenCVCodec(spec)
