"""Raw YUV files and ffmpeg's own YUV -> RGB conversions, for the data tests (real ffmpeg)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

PIX_FMT = {8: "yuv420p", 10: "yuv420p10le"}
#: swscale replicates chroma (as colour.yuv_to_rgb does) with these flags: ``neighbor``
#: picks the nearest chroma sample, ``full_chroma_int`` makes it do so per output pixel
#: (without it the yuv2rgb fast path interpolates horizontally), ``accurate_rnd`` rounds.
SWS_FLAGS = "neighbor+accurate_rnd+full_chroma_int"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True, timeout=120)


def make_yuv(source: Path, out: Path, bit_depth: int, frames: int | None = None) -> Path:
    """``source`` (an MP4 made by the tests) as a raw 4:2:0 file of ``bit_depth`` bits."""
    count = ["-frames:v", str(frames)] if frames else []
    ffmpeg("-i", str(source), *count, "-pix_fmt", PIX_FMT[bit_depth], "-f", "rawvideo", str(out))
    return out


def ffmpeg_rgb(yuv: Path, width: int, height: int, bit_depth: int, *, matrix: str = "bt709",
               full_range: bool = True) -> np.ndarray:
    """ffmpeg's scale filter's RGB of a raw 4:2:0 file, explicit matrix and range in and out,
    as float64 (frames, H, W, 3) in [0, 1] (rgb24 for 8-bit input, rgb48le for 10-bit)."""
    out = yuv.with_suffix(".ffmpeg.rgb")
    rng = "full" if full_range else "limited"
    rgb_fmt, dtype, peak = ("rgb24", np.uint8, 255.0) if bit_depth == 8 else ("rgb48le", np.dtype("<u2"), 65535.0)
    ffmpeg("-f", "rawvideo", "-pix_fmt", PIX_FMT[bit_depth], "-s", f"{width}x{height}", "-i", str(yuv),
           "-vf", f"scale=in_color_matrix={matrix}:in_range={rng}:out_color_matrix={matrix}:out_range=full",
           "-sws_flags", SWS_FLAGS, "-pix_fmt", rgb_fmt, "-f", "rawvideo", str(out))
    data = np.fromfile(out, dtype).reshape(-1, height, width, 3)
    out.unlink()
    return data.astype(np.float64) / peak
