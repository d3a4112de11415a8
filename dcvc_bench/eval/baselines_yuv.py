"""x265 / x264 in YUV 4:2:0 mode (``eval --color yuv420``), as traditional codecs are run
for DCVC's YUV420 tables: the source's own 4:2:0 planes go to the encoder, no colour
conversion at all.

- Internal bit depth 10 (:data:`YUV_INTERNAL_BIT_DEPTH`; ``-pix_fmt yuv420p10le``: x265
  Main10, x264 High10). 8-bit planes are shifted left by 2 here (exactly, as the reference
  encoders' ``InputBitDepth=8`` with a 10-bit internal depth do; not by swscale, which
  replicates bits), and the 10-bit decoder output is brought back to 8 bits by rounding,
  ``(v + 2) >> 2`` (as HM/VTM write an 8-bit output file; swscale would dither).
- 4 reference frames (``ref=4``), low delay (``bframes=0``, zerolatency, keyint as the
  intra period), the ``--baseline-preset`` (``veryslow`` for anchors); the rest of the
  encoder settings, the bits and the SEI handling are :mod:`dcvc_bench.eval.baselines`'.
- The decoded planes are scored per plane against the source
  (:func:`dcvc_bench.eval.metrics.yuv420_metrics`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from dcvc_bench.eval.annexb import AccessUnit
from dcvc_bench.eval.baselines import CODECS, FRAME_RATE, BaselinePoint, _codec_args, code_stream

YUV_INTERNAL_BIT_DEPTH = 10
YUV_PIX_FMT = "yuv420p10le"
YUV_REFS = 4
YUV_COLOUR_PATH = ("yuv420p source planes (8-bit shifted to 10) -> encoder (10-bit internal) -> decoder -> "
                   "yuv420p10le -> rounded to the source's bit depth; metrics per plane (Y, U, V)")


def encode_yuv_argv(ffmpeg: str, point: BaselinePoint, width: int, height: int, frames: int,
                    intra_period: int, output: str) -> list[str]:
    """ffmpeg argv (YUV 4:2:0 mode): raw yuv420p10le planes on stdin -> the encoder at
    10-bit internal depth, 4 reference frames, low delay -> raw elementary stream."""
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", YUV_PIX_FMT, "-s", f"{width}x{height}", "-framerate", str(FRAME_RATE),
            "-i", "pipe:0", "-frames:v", str(frames), "-pix_fmt", YUV_PIX_FMT,
            *_codec_args(point, intra_period, [f"ref={YUV_REFS}"]), "-f", CODECS[point.codec].muxer, "-y", output]


def decode_yuv_argv(ffmpeg: str, codec: str, stream: str) -> list[str]:
    """ffmpeg argv (YUV 4:2:0 mode): elementary stream -> the decoder's yuv420p10le planes on stdout."""
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-f", CODECS[codec].muxer, "-i", stream,
            "-pix_fmt", YUV_PIX_FMT, "-f", "rawvideo", "pipe:1"]


def to_internal(plane: np.ndarray, bit_depth: int) -> np.ndarray:
    """A source plane at the 10-bit internal depth: shifted left (exact)."""
    return (np.asarray(plane).astype(np.uint16) << (YUV_INTERNAL_BIT_DEPTH - bit_depth)).astype("<u2")


def from_internal(plane: np.ndarray, bit_depth: int) -> np.ndarray:
    """A 10-bit decoded plane at the source's depth: rounded, (v + 2) >> 2 for 8 bits."""
    shift = YUV_INTERNAL_BIT_DEPTH - bit_depth
    if shift == 0:
        return np.asarray(plane).astype(np.uint16)
    out = np.minimum((np.asarray(plane).astype(np.int32) + (1 << (shift - 1))) >> shift, 2 ** bit_depth - 1)
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


@dataclass
class BaselineYUVResult:
    decoded: tuple[np.ndarray, np.ndarray, np.ndarray]   # Y, U, V at the source's bit depth, T×H×W / T×H/2×W/2
    stream_bytes: int
    sha256: str
    units: list[AccessUnit]
    encode_argv: list[str]
    decode_argv: list[str]
    enc_seconds: float
    dec_seconds: float


def run_baseline_yuv(ffmpeg: str, point: BaselinePoint, planes: tuple[np.ndarray, np.ndarray, np.ndarray],
                     bit_depth: int, intra_period: int,
                     workdir: str | os.PathLike[str] | None = None) -> BaselineYUVResult:
    """Encode a clip's YUV 4:2:0 planes (Y T×H×W, U/V T×H/2×W/2, integers at
    ``bit_depth`` 8 or 10) with one baseline point at 10-bit internal depth, decode it
    back to the source's bit depth and measure the stream."""
    y, u, v = planes
    t, h, w = np.shape(y)
    if bit_depth not in (8, 10):
        raise ValueError(f"YUV baselines take 8- or 10-bit sources, not {bit_depth}-bit")
    if h % 2 or w % 2 or np.shape(u) != (t, h // 2, w // 2) or np.shape(v) != (t, h // 2, w // 2):
        raise ValueError(f"not 4:2:0 planes: Y {np.shape(y)}, U {np.shape(u)}, V {np.shape(v)}")
    frames = b"".join(to_internal(p[i], bit_depth).tobytes() for i in range(t) for p in (y, u, v))
    coded = code_stream(ffmpeg, point, t, frames,
                        lambda name: encode_yuv_argv(ffmpeg, point, w, h, t, intra_period, name),
                        lambda name: decode_yuv_argv(ffmpeg, point.codec, name), workdir)
    raw = coded.raw
    luma, chroma = h * w, (h // 2) * (w // 2)
    if len(raw) != t * 2 * (luma + 2 * chroma):
        raise RuntimeError(f"{point.label} decode: ffmpeg returned {len(raw)} bytes, expected {t} frames of "
                           f"{w}x{h} yuv420p10le")
    out = np.frombuffer(raw, "<u2").reshape(t, luma + 2 * chroma)
    decoded = (from_internal(out[:, :luma].reshape(t, h, w), bit_depth),
               from_internal(out[:, luma:luma + chroma].reshape(t, h // 2, w // 2), bit_depth),
               from_internal(out[:, luma + chroma:].reshape(t, h // 2, w // 2), bit_depth))
    return BaselineYUVResult(decoded=decoded, stream_bytes=len(coded.data),
                             sha256=hashlib.sha256(coded.data).hexdigest(), units=coded.units,
                             encode_argv=coded.encode_argv, decode_argv=coded.decode_argv,
                             enc_seconds=coded.enc_seconds, dec_seconds=coded.dec_seconds)
