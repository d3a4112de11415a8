"""Synthetic MP4 clips with real motion, for smoke runs and tests.

Why synthetic: the smoke curriculum and the test suite must train end to end on a CPU
in minutes without downloading a dataset. Flat colours or pure noise teach a motion
model nothing, so every clip has what optical flow needs to latch onto:

- a multi-scale textured background (octaves of smooth noise, colour gradients, a few
  anti-aliased shapes) on a canvas larger than the frame;
- a global pan: the frame window moves over the canvas at a constant sub-pixel velocity
  (``cv2.warpAffine``), bouncing back at the canvas edge so long clips need no huge canvas;
- 2-4 independently moving textured objects, each with its own velocity (bouncing off the
  frame edges) and most of them rotating.

Clips are deterministic: the same ``seed`` gives byte-identical decoded frames (each clip
draws from ``numpy.random.default_rng([seed, clip_index])``). They are written with
OpenCV's ``mp4v`` writer, to a hidden temporary file in the output folder that is decoded
back (frame count and size checked) before ``os.replace`` gives it its final name, so a
crash never leaves a half-written clip under a name the datasets would pick up.

numpy + OpenCV only: ``dcvc-bench data synth`` must not pay for importing torch.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dcvc_bench.errors import UserError

FPS = 25.0
FOURCC = "mp4v"
MIN_SIDE = 16

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``--size`` text like ``256x128`` into ``(width, height)``."""
    match = _SIZE_RE.match(str(text))
    if match is None:
        raise UserError(f"--size: expected WIDTHxHEIGHT such as 256x256, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def write_synthetic_clips(
    out_dir: str | os.PathLike[str],
    videos: int = 4,
    frames: int = 30,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> list[Path]:
    """Write ``videos`` clips ``synth_000.mp4, ...`` of ``frames`` frames of ``size``
    (width, height) into ``out_dir`` (created if needed); return their paths in order.
    Existing clips of the same name are replaced atomically."""
    width, height = _check_args(videos, frames, size, seed)
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f"cannot create output folder {folder}: {reason}; choose a writable folder") from exc
    paths = []
    for index in range(videos):
        rng = np.random.default_rng([seed, index])
        path = folder / f"synth_{index:03d}.mp4"
        _write_clip_atomically(path, clip_frames(frames, (width, height), rng), frames, (width, height))
        paths.append(path)
    return paths


def clip_frames(frames: int, size: tuple[int, int], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield ``frames`` RGB uint8 frames (H, W, 3) of one synthetic clip, one at a time
    (a long or large clip never sits in memory whole)."""
    width, height = size
    margin = max(8, round(0.15 * max(width, height)))
    canvas = _background(rng, height + 2 * margin, width + 2 * margin)
    pan_speed = rng.uniform(0.6, 2.0)  # pixels per frame, sub-pixel on purpose
    pan_angle = rng.uniform(0.0, 2.0 * math.pi)
    pan_velocity = (pan_speed * math.cos(pan_angle), pan_speed * math.sin(pan_angle))
    pan_start = rng.uniform(0.0, 2.0 * margin, size=2)
    objects = [_MovingObject(rng, width, height) for _ in range(int(rng.integers(2, 5)))]

    for t in range(frames):
        offset_x = _bounce(pan_start[0] + pan_velocity[0] * t, 2 * margin)
        offset_y = _bounce(pan_start[1] + pan_velocity[1] * t, 2 * margin)
        window = np.float32([[1.0, 0.0, -offset_x], [0.0, 1.0, -offset_y]])
        frame = cv2.warpAffine(canvas, window, (width, height), flags=cv2.INTER_LINEAR).astype(np.float32)
        for obj in objects:
            obj.paint(frame, t)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


class _MovingObject:
    """A textured sprite with an anti-aliased shape mask, moving with constant velocity
    (bouncing off the frame edges) and constant angular velocity."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        short = min(width, height)
        side = int(rng.integers(max(6, int(0.18 * short)), max(8, int(0.38 * short)) + 1))
        self.side = side
        self.texture = _texture(rng, side, side, octaves=(12, 4, 2))
        self.alpha = _shape_mask(rng, side)
        self.width, self.height = width, height
        self.start = rng.uniform([0.0, 0.0], [width, height])
        speed = rng.uniform(1.0, 4.0)
        direction = rng.uniform(0.0, 2.0 * math.pi)
        self.velocity = np.array([speed * math.cos(direction), speed * math.sin(direction)])
        self.angle0 = rng.uniform(0.0, 360.0)
        self.spin = rng.uniform(-4.0, 4.0)  # degrees per frame; near zero for some objects

    def paint(self, frame: np.ndarray, t: int) -> None:
        cx = _bounce(self.start[0] + self.velocity[0] * t, self.width)
        cy = _bounce(self.start[1] + self.velocity[1] * t, self.height)
        half = self.side / 2.0
        warp = cv2.getRotationMatrix2D((half, half), self.angle0 + self.spin * t, 1.0)
        warp[:, 2] += (cx - half, cy - half)
        size = (self.width, self.height)
        sprite = cv2.warpAffine(self.texture, warp, size, flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = cv2.warpAffine(self.alpha, warp, size, flags=cv2.INTER_LINEAR, borderValue=0)
        frame += alpha[..., None] * (sprite - frame)


def _bounce(position: float, extent: float) -> float:
    """Fold an unbounded coordinate into [0, extent] like a ball bouncing between walls."""
    period = 2.0 * extent
    folded = position % period
    return folded if folded <= extent else period - folded


def _texture(rng: np.random.Generator, height: int, width: int, octaves: tuple[int, ...]) -> np.ndarray:
    """Multi-scale colour noise in [0, 255] (float32): octaves of bicubically upsampled
    Gaussian noise with cells of ``octaves`` pixels (coarse ones weigh more, like natural
    images), mixed across channels so colours correlate, plus a random linear gradient.
    No per-pixel white noise: MP4 cannot keep it, and the decoded clip would lose it."""
    acc = np.zeros((height, width, 3), np.float32)
    for cell in octaves:
        grid = rng.standard_normal((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        layer = cv2.resize(grid, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
        acc += (cell**0.4) * layer[cell : cell + height, cell : cell + width]
    acc = acc.reshape(-1, 3) @ rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32)
    acc = acc.reshape(height, width, 3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    slope_x, slope_y = rng.uniform(-1.0, 1.0, (2, 3))
    gradient = slope_x * xs[..., None] / width + slope_y * ys[..., None] / height
    acc += gradient.astype(np.float32) * acc.std() * 2.0
    lo, hi = np.percentile(acc, [1.0, 99.0])
    return np.clip((acc - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The pan canvas: texture plus a few anti-aliased shapes with hard edges (uint8)."""
    short = min(width, height)
    octaves = sorted({max(8, round(short / 5)), max(4, round(short / 16)), 6, 3}, reverse=True)
    canvas = np.ascontiguousarray(_texture(rng, height, width, tuple(octaves)).astype(np.uint8))
    for _ in range(int(rng.integers(3, 7))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.circle(canvas, center, int(rng.integers(3, max(4, short // 6))), color, -1, cv2.LINE_AA)
        elif kind == 1:
            extent = rng.integers(4, max(5, short // 4), size=2)
            corner = (center[0] + int(extent[0]), center[1] + int(extent[1]))
            cv2.rectangle(canvas, center, corner, color, -1, cv2.LINE_AA)
        else:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(canvas, center, end, color, int(rng.integers(1, 4)), cv2.LINE_AA)
    return canvas


def _shape_mask(rng: np.random.Generator, side: int) -> np.ndarray:
    """Alpha in [0, 1] (float32, side x side): an ellipse, a rectangle or a star-ish polygon."""
    mask = np.zeros((side, side), np.uint8)
    half = side / 2.0
    kind = rng.integers(0, 3)
    if kind == 0:
        axes = (max(2, int(half * rng.uniform(0.6, 0.95))), max(2, int(half * rng.uniform(0.4, 0.95))))
        cv2.ellipse(mask, (int(half), int(half)), axes, 0.0, 0.0, 360.0, 255, -1, cv2.LINE_AA)
    elif kind == 1:
        inset = int(side * rng.uniform(0.05, 0.2))
        cv2.rectangle(mask, (inset, inset), (side - 1 - inset, side - 1 - inset), 255, -1, cv2.LINE_AA)
    else:
        corners = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0.0, 2.0 * math.pi, corners))
        radii = half * rng.uniform(0.45, 0.95, corners)
        points = np.stack([half + radii * np.cos(angles), half + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [points.round().astype(np.int32)], 255, cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


def _write_clip_atomically(
    path: Path, frames: Iterator[np.ndarray], count: int, size: tuple[int, int]
) -> None:
    """Encode into a hidden temp file beside ``path``, check it decodes back to ``count``
    frames of ``size``, fsync, then rename over ``path``."""
    # Hidden (list_videos ignores dot-files) and ending in .mp4: the suffix is what makes
    # VideoWriter pick the MP4 container. Not mkstemp: its 0600 mode would stick to the clip.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp.mp4")
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), FPS, size)
        if not writer.isOpened():
            raise UserError(
                f"cannot write {path}: OpenCV's VideoWriter (fourcc {FOURCC}) did not open; "
                "check the folder is writable and that OpenCV was built with FFmpeg "
                "(pip install opencv-python-headless)"
            )
        try:
            for rgb in frames:
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        decoded, decoded_size = _decoded_count_and_size(tmp)
        if decoded != count or decoded_size != size:
            raise UserError(
                f"cannot write {path}: it decodes back as {decoded} frames of {decoded_size} "
                f"instead of {count} of {size}; "
                "this OpenCV build's mp4v writer is broken, reinstall opencv-python-headless"
            )
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _decoded_count_and_size(path: Path) -> tuple[int, tuple[int, int] | None]:
    """Frames and (width, height) as actually decoded, not as the container claims."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        ok, first = capture.read()
        if not ok or first is None:
            return 0, None
        count = 1
        while capture.grab():
            count += 1
        return count, (first.shape[1], first.shape[0])
    finally:
        capture.release()


def _check_args(videos: int, frames: int, size: tuple[int, int], seed: int) -> tuple[int, int]:
    if not _is_int(videos) or videos < 1:
        raise UserError(f"--videos: must be a whole number >= 1, got {videos!r}")
    if not _is_int(frames) or frames < 2:
        raise UserError(
            f"--frames: must be a whole number >= 2 (a GOP needs an I-frame and a P-frame), got {frames!r}"
        )
    if not _is_int(seed) or seed < 0:
        raise UserError(f"--seed: must be a whole number >= 0, got {seed!r}")
    try:
        width, height = size
    except (TypeError, ValueError):
        raise UserError(f"--size: expected WIDTHxHEIGHT such as 256x256, got {size!r}") from None
    for name, value in (("width", width), ("height", height)):
        if not _is_int(value) or value < MIN_SIDE or value % 2:
            raise UserError(
                f"--size: {name} must be an even whole number >= {MIN_SIDE} "
                f"(MP4 stores chroma at half size), got {value!r}"
            )
    return int(width), int(height)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
