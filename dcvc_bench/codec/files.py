"""``dcvc-bench encode`` / ``decode``: files in, files out, around :mod:`dcvc_bench.codec.video`.

Importing this module does not import torch: ``decode`` checks the stream
(:func:`~dcvc_bench.codec.validate.open_stream`) before it loads the model, so a bad or
oversized stream is refused in well under a second, with little memory. Decoded frames go
to disk one at a time (memory stays one frame's, whatever the frame count) into a
temporary sibling that replaces nothing until every frame decoded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from dcvc_bench.checkpoints import atomic_write_bytes
from dcvc_bench.codec.timing import Stopwatch, load_note
from dcvc_bench.codec.validate import DEFAULT_MAX_SIZE, max_pixels_of, open_stream
from dcvc_bench.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["decode_file", "encode_file"]


def _read_clip(path: Path, frames: int | None) -> "torch.Tensor":
    import numpy as np
    import torch

    from dcvc_bench.data.video import ShortClipError, probe_video, read_frames

    if not path.is_file():
        raise UserError(f"input video {path} does not exist")
    if frames is not None and frames < 1:
        raise UserError(f"--frames must be >= 1, got {frames}")
    count = frames if frames is not None else probe_video(path).frames
    try:
        array = read_frames(path, 0, count)
    except ShortClipError as exc:  # fewer frames than asked: code those there are
        array = exc.frames
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))


def encode_file(src: Path, dst: Path, checkpoint: Path, *, frames: int | None, intra_period: int,
                ema: bool, echo: Callable[[str], None]) -> int:
    """``dcvc-bench encode``: an MP4 (first ``frames`` frames) into a ``.dcvc`` stream."""
    from dcvc_bench.codec.video import encode_video, load_codec

    clip = _read_clip(src, frames)
    codec = load_codec(checkpoint, ema=ema)
    watch = Stopwatch()
    result = encode_video(codec, clip, intra_period, name=src.name)
    _, cpu = watch.read()
    atomic_write_bytes(dst, result.stream)
    pixels = clip.shape[0] * clip.shape[2] * clip.shape[3]
    real = 8 * len(result.stream)
    est = sum(f.est_bits for f in result.frames)  # as `eval` prints it: the header is framing
    echo(f"{dst}: {clip.shape[0]} frames of {clip.shape[3]}x{clip.shape[2]}, {len(result.stream)} bytes, "
         f"{real / pixels:.4f} bpp (estimate {est / pixels:.4f} bpp, real {100 * (real / est - 1):+.2f}%), "
         f"encoded in {sum(f.enc_seconds for f in result.frames):.1f} s (CPU {cpu:.1f} s)")
    _echo_load(echo)
    return 0


def _echo_load(echo: Callable[[str], None]) -> None:
    note = load_note()
    if note:
        echo(f"note: {note}")


def _write_mp4(dst: Path, frames: Iterator["torch.Tensor"], size: tuple[int, int]) -> int:
    import cv2
    import numpy as np

    height, width = size
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=".partial.mp4", dir=dst.parent)
    os.close(fd)
    count = 0
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
        if not writer.isOpened():
            raise UserError(f"cannot write {dst}: OpenCV's mp4v writer did not open")
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame.permute(1, 2, 0).numpy()[..., ::-1]))  # RGB -> BGR
                count += 1
        finally:
            writer.release()
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _write_pngs(dst: Path, frames: Iterator["torch.Tensor"]) -> int:
    import cv2
    import numpy as np

    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent))
    names: list[str] = []
    try:
        for index, frame in enumerate(frames):
            names.append(f"frame_{index:05d}.png")
            bgr = np.ascontiguousarray(frame.permute(1, 2, 0).numpy()[..., ::-1])
            if not cv2.imwrite(str(partial / names[-1]), bgr):
                raise UserError(f"cannot write PNG frames into {dst}")
        dst.mkdir(exist_ok=True)
        for name in names:
            os.replace(partial / name, dst / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return len(names)


def decode_file(src: Path, dst: Path, checkpoint: Path, *, max_size: str | None = None,
                echo: Callable[[str], None]) -> int:
    """``dcvc-bench decode``: a ``.dcvc`` stream into PNG frames (a folder: lossless) or an
    ``.mp4`` (OpenCV's mp4v: lossy, for viewing only). Frames of more than ``max_size``
    (WIDTHxHEIGHT, as pixels) are refused before the model is loaded."""
    max_pixels = max_pixels_of(max_size)
    if not src.is_file():
        raise UserError(f"input stream {src} does not exist")
    to_mp4 = dst.suffix.lower() == ".mp4"
    if not to_mp4 and dst.exists() and not dst.is_dir():
        raise UserError(f"{dst} is a file: give a folder (PNG frames) or a .mp4 path")
    limit = "--max-size " + (max_size or "{}x{}".format(*DEFAULT_MAX_SIZE))
    stream = open_stream(src.read_bytes(), name=src.name, max_pixels=max_pixels, limit=limit)

    from dcvc_bench.codec.video import decode_frames, load_codec

    codec = load_codec(checkpoint, ema=stream.header.ema)
    seconds: list[float] = []
    watch = Stopwatch()

    def pictures() -> Iterator["torch.Tensor"]:
        for pixels, elapsed in decode_frames(codec, stream):
            seconds.append(elapsed)
            yield pixels

    size = (stream.header.height, stream.header.width)
    count = _write_mp4(dst, pictures(), size) if to_mp4 else _write_pngs(dst, pictures())
    total = sum(seconds)
    _, cpu = watch.read()
    echo(f"{dst}: {count} frames decoded in {total:.1f} s ({count / max(total, 1e-9):.2f} frames/s; "
         f"CPU {cpu:.1f} s with writing the frames)")
    _echo_load(echo)
    return 0
