"""``dcvc-bench data convert IN OUT``: MP4 <-> raw YUV 4:2:0 <-> PNG frames, with the
colour conversion of :mod:`dcvc_bench.data.colour` (BT.709 full range unless told).

What goes in: anything :func:`dcvc_bench.data.sources.open_source` reads (a video file, a
``.yuv`` file, a folder of PNG/JPEG frames). What comes out is chosen by ``OUT``:

- ``*.yuv``: raw planar 4:2:0, ``bit_depth`` 8 (``yuv420p``) or 10 (``yuv420p10le``, any
  of 9..16 as 16-bit little-endian samples); by default the bit depth OUT's name says,
  else the source's (8 for RGB sources). From a YUV source of the same bit depth the
  planes are copied bit for bit; otherwise RGB -> YUV with ``matrix`` / ``full_range``
  (chroma by 2×2 averaging). A name whose size or bit depth disagrees with the frames is
  refused (it would be misread later); a name without the size gets a note.
- ``*.mp4``: the same 4:2:0 planes coded **losslessly** by ffmpeg's libx264 (``-qp 0``)
  and tagged with the matrix and range, so that it holds exactly what the ``.yuv`` would.
  Readers that ignore the tags (OpenCV's decoding, hence dcvc-bench's own MP4 reading)
  convert with their defaults: keep ``.yuv`` or PNG for exact colour.
- anything else: a folder of PNG frames ``im00001.png``, ``im00002.png``...; 8-bit PNGs,
  or 16-bit ones with ``bit_depth=16`` (the default when the source has more than 8 bits).
  From YUV: :func:`~dcvc_bench.data.colour.yuv_to_rgb` (chroma replicated). The folder
  must be new or empty.

Writes are atomic: a file appears complete or not at all (``atomic_file``; the PNG folder
is filled in a hidden sibling and renamed). ``frames`` limits the frames converted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from dcvc_bench.checkpoints import atomic_file
from dcvc_bench.clips import yuv_name_info
from dcvc_bench.data import colour
from dcvc_bench.data.sources import FrameSource, open_source
from dcvc_bench.errors import UserError

__all__ = ["convert"]

_TAGS = {"bt709": ("bt709", "bt709", "bt709"), "bt601": ("smpte170m", "smpte170m", "smpte170m")}


def convert(src: Path, dst: Path, *, matrix: str = "bt709", full_range: bool = True,
            bit_depth: Optional[int] = None, width: Optional[int] = None, height: Optional[int] = None,
            in_bit_depth: Optional[int] = None, fps: Optional[float] = None, frames: Optional[int] = None,
            echo: Callable[[str], None] = print) -> int:
    """Convert ``src`` to ``dst`` (module docstring); returns the number of frames written."""
    if matrix not in colour.MATRICES:
        raise UserError(f"--matrix: must be one of {', '.join(colour.MATRICES)}, got {matrix!r}")
    if frames is not None and frames < 1:
        raise UserError(f"--frames: must be >= 1, got {frames}")
    if bit_depth is not None and not 8 <= bit_depth <= 16:
        raise UserError(f"--bit-depth: must be 8..16, got {bit_depth}")
    if src.resolve() == dst.resolve():
        raise UserError(f"{dst}: the output is the input; give another path")
    source = open_source(src, width=width, height=height, bit_depth=in_bit_depth, fps=fps, matrix=matrix,
                         full_range=full_range)
    count = source.frames_up_to(frames) if frames is not None else source.num_frames
    suffix = dst.suffix.lower()
    if suffix == ".yuv":
        depth = bit_depth or yuv_name_info(dst).get("bit_depth") or (source.bit_depth if source.kind == "yuv" else 8)
        _check_yuv_name(dst, source, depth, echo)
        with atomic_file(dst) as fh:
            for index in range(count):
                for plane in _planes(source, index, depth):
                    fh.write(np.ascontiguousarray(plane.astype("<u2" if depth > 8 else np.uint8)).tobytes())
    elif suffix == ".mp4":
        depth = bit_depth or (source.bit_depth if source.kind == "yuv" else 8)
        _write_mp4(source, dst, count, depth, fps)
    else:
        depth = bit_depth or (16 if source.bit_depth > 8 else 8)
        if depth not in (8, 16):
            raise UserError(f"--bit-depth: PNG frames are 8- or 16-bit, got {depth}")
        _write_pngs(source, dst, count, depth)
    echo(f"{dst}: {count} frames of {source.width}x{source.height}, {_describe(dst, depth, matrix, full_range)}")
    return count


def _planes(source: FrameSource, index: int, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if source.kind == "yuv" and source.bit_depth == depth:
        return source.read_yuv(index)
    if source.width % 2 or source.height % 2:
        raise UserError(f"cannot convert {source.path} to 4:2:0: its frames are {source.width}x{source.height}, "
                        "not an even size; pad or crop it first")
    return colour.rgb_to_yuv420(source.read_rgb(index), bit_depth=depth, matrix=source.matrix,
                                full_range=source.full_range)


def _check_yuv_name(dst: Path, source: FrameSource, depth: int, echo: Callable[[str], None]) -> None:
    named = yuv_name_info(dst)
    if "width" in named and (named["width"], named["height"]) != (source.width, source.height):
        raise UserError(f"{dst}: its name says {named['width']}x{named['height']} but the frames are "
                        f"{source.width}x{source.height}; name it with _{source.width}x{source.height}_")
    if named.get("bit_depth", 8) != depth and ("bit_depth" in named or "width" in named):
        raise UserError(f"{dst}: its name says {named.get('bit_depth', 8)}-bit but {depth}-bit samples would be "
                        f"written; put _{depth}bit in the name or pass --bit-depth {named.get('bit_depth', 8)}")
    if "width" not in named:
        fps = f"{source.fps:g}fps_" if source.fps else ""
        echo(f"note: {dst.name} has no WxH in its name: readers need its size; a name like "
             f"{dst.stem}_{source.width}x{source.height}_{fps}420_{depth}bit.yuv carries it")


def _write_mp4(source: FrameSource, dst: Path, count: int, depth: int, fps: Optional[float]) -> None:
    if shutil.which("ffmpeg") is None:
        raise UserError(f"cannot write {dst}: ffmpeg is not on PATH (it codes the MP4); install ffmpeg")
    if depth not in (8, 10):
        raise UserError(f"--bit-depth: MP4 output is 8- or 10-bit, got {depth}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        raw = scratch / "frames.yuv"
        with raw.open("wb") as fh:
            for index in range(count):
                for plane in _planes(source, index, depth):
                    fh.write(np.ascontiguousarray(plane.astype("<u2" if depth > 8 else np.uint8)).tobytes())
        pix_fmt = "yuv420p" if depth == 8 else "yuv420p10le"
        space, primaries, trc = _TAGS[source.matrix]
        rate = fps or source.fps or 30.0
        out = scratch / "out.mp4"
        argv = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", pix_fmt,
                "-s", f"{source.width}x{source.height}", "-r", f"{rate:g}", "-i", str(raw),
                "-c:v", "libx264", "-qp", "0", "-pix_fmt", pix_fmt,
                "-color_range", "pc" if source.full_range else "tv", "-colorspace", space,
                "-color_primaries", primaries, "-color_trc", trc, str(out)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"cannot write {dst}: ffmpeg (libx264, lossless) failed: {last}")
        os.replace(out, dst)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_pngs(source: FrameSource, dst: Path, count: int, depth: int) -> None:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise UserError(f"{dst}: exists and is not an empty folder; PNG frames go into a new folder "
                        "(or give OUT ending in .yuv or .mp4)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    try:
        peak, dtype = (255.0, np.uint8) if depth == 8 else (65535.0, np.uint16)
        for index in range(count):
            rgb = np.clip(np.rint(source.read_rgb(index) * peak), 0, peak).astype(dtype)
            name = partial / f"im{index + 1:05d}.png"
            if not cv2.imwrite(str(name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise UserError(f"cannot write PNG frames into {dst}")
        if dst.exists():
            dst.rmdir()
        os.replace(partial, dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _describe(dst: Path, depth: int, matrix: str, full_range: bool) -> str:
    conv = f"{matrix.upper().replace('BT', 'BT.')} {'full' if full_range else 'limited'} range"
    if dst.suffix.lower() == ".yuv":
        return f"YUV 4:2:0 {depth}-bit, {conv}"
    if dst.suffix.lower() == ".mp4":
        return f"H.264 lossless (libx264 -qp 0) YUV 4:2:0 {depth}-bit, tagged {conv}"
    return f"{depth}-bit PNG frames im00001.png..., RGB by {conv}"
