"""One reader for every kind of clip, chosen by what the path is (:func:`open_source`).

- **video files** (``.mp4`` and the other containers of :data:`dcvc_bench.clips.VIDEO_SUFFIXES`):
  decoded with OpenCV by :mod:`dcvc_bench.data.mp4` (sequential from frame 0; the frame
  count is measured by decoding, lazily, once per file). 8-bit RGB as OpenCV converts it.
- **raw ``.yuv`` 4:2:0**, 8 or 10 bit (16-bit little-endian samples above 8 bits, as
  ffmpeg's ``yuv420p10le`` writes them): width, height, frame rate and bit depth come from
  the file name (:func:`dcvc_bench.clips.yuv_name_info`) unless given; an explicit value
  wins. Frames are read by seeking to ``index × frame_bytes`` (``np.fromfile`` with an
  offset): exact, no decoder. RGB is :func:`dcvc_bench.data.colour.yuv_to_rgb` with the
  source's ``matrix`` / ``full_range`` (BT.709 full range by default).
- **folders of PNG/JPEG frames** (``%05d.png``, ``im1.png``..., natural order, no gaps:
  :func:`dcvc_bench.clips.list_frames`), e.g. a Vimeo-90k septuplet. 8-bit images, or
  16-bit PNGs (``bit_depth`` 16); grey images are replicated to RGB, alpha is dropped.

Every source has ``.kind .path .name .width .height .fps`` (None when nothing says it)
``.bit_depth .num_frames`` and
``.read_rgb(i)`` -> float32 H×W×3 in [0, 1];
``.read_yuv(i)`` -> ``(y, u, v)`` integer 4:2:0 planes (RGB sources convert with
:func:`~dcvc_bench.data.colour.rgb_to_yuv420`, 8 bit, the source's matrix and range);
``.read_rgb8(start, count)`` -> uint8 ``count × H × W × 3``, what the datasets use
(raises :class:`~dcvc_bench.data.mp4.ShortClipError` when a video ends early).
Bad input (no size in a ``.yuv`` name and none given, a file that is not a whole number
of frames, a missing frame in a folder, an unreadable image) is a
:class:`~dcvc_bench.errors.UserError` naming the file.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from dcvc_bench.clips import clip_kind, image_size, list_frames, yuv_name_info
from dcvc_bench.data import colour, mp4
from dcvc_bench.errors import UserError

__all__ = ["FrameFolderSource", "FrameSource", "VideoSource", "YuvSource", "open_source", "source_name"]


def open_source(path: str | os.PathLike[str], *, width: Optional[int] = None, height: Optional[int] = None,
                bit_depth: Optional[int] = None, fps: Optional[float] = None, matrix: str = "bt709",
                full_range: bool = True) -> "FrameSource":
    """The reader for ``path`` (the kinds above). ``width``/``height``/``bit_depth``/``fps``
    override what a ``.yuv`` name says (and are required when it says nothing);
    ``matrix``/``full_range`` are the YUV<->RGB convention (:mod:`dcvc_bench.data.colour`)."""
    path = Path(path)
    kind = clip_kind(path)
    if kind == "yuv":
        return YuvSource(path, width=width, height=height, bit_depth=bit_depth, fps=fps, matrix=matrix,
                         full_range=full_range)
    if kind == "video":
        return VideoSource(path, fps=fps, matrix=matrix, full_range=full_range)
    if kind == "frames":
        return FrameFolderSource(path, fps=fps, matrix=matrix, full_range=full_range)
    if not path.exists():
        raise UserError(f"cannot read {path}: no such file or folder")
    raise UserError(f"cannot read {path}: not a clip (a video file such as .mp4, a raw .yuv 4:2:0 file, "
                    "or a folder of .png/.jpg frames)")


def source_name(path: str | os.PathLike[str]) -> str:
    """A clip's name: the file's stem, a frame folder's name, and ``<seq>_<sub>`` for a
    septuplet of a Vimeo-90k ``sequences/<seq>/<sub>`` tree."""
    path = Path(path)
    if path.is_dir():
        if path.parent.parent.name == "sequences":
            return f"{path.parent.name}_{path.name}"
        return path.name
    return path.stem


class FrameSource:
    """What every source offers (module docstring)."""

    kind = ""
    path: Path
    width: int
    height: int
    fps: Optional[float]
    bit_depth: int

    def __init__(self, path: Path, matrix: str, full_range: bool):
        if matrix not in colour.MATRICES:
            raise UserError(f"unknown colour matrix {matrix!r}; choose one of {', '.join(colour.MATRICES)}")
        self.path = path
        self.name = source_name(path)
        self.matrix = matrix
        self.full_range = full_range

    @property
    def num_frames(self) -> int:
        raise NotImplementedError

    def frames_up_to(self, limit: int) -> int:
        """``min(limit, num_frames)``, without counting more frames than that where counting costs."""
        return min(limit, self.num_frames)

    def read_rgb(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def read_yuv(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = self.read_rgb(index)
        if rgb.shape[0] % 2 or rgb.shape[1] % 2:
            raise UserError(f"cannot convert {self.path} to 4:2:0: its frames are {rgb.shape[1]}x{rgb.shape[0]}, "
                            "not an even size; pad or crop it first")
        return colour.rgb_to_yuv420(rgb, bit_depth=8, matrix=self.matrix, full_range=self.full_range)

    def read_rgb8(self, start: int, count: int) -> np.ndarray:
        self._check_range(start, count)
        out = np.empty((count, self.height, self.width, 3), np.uint8)
        for i in range(count):
            out[i] = _to_uint8(self.read_rgb(start + i))
        return out

    def read_first_rgb8(self, count: int) -> np.ndarray:
        """The first ``min(count, frames in the clip)`` frames, uint8 ``T × H × W × 3``
        (a video that ends early gives what decodes)."""
        try:
            return self.read_rgb8(0, self.frames_up_to(count))
        except mp4.ShortClipError as exc:
            return exc.frames

    def _check_range(self, start: int, count: int) -> None:
        if start < 0 or count < 1 or start + count > self.num_frames:
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} asked for, it has {self.num_frames}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} {self.width}x{self.height} {self.bit_depth}-bit>"


class YuvSource(FrameSource):
    kind = "yuv"

    def __init__(self, path: Path, *, width: Optional[int] = None, height: Optional[int] = None,
                 bit_depth: Optional[int] = None, fps: Optional[float] = None, matrix: str = "bt709",
                 full_range: bool = True):
        super().__init__(path, matrix, full_range)
        named = yuv_name_info(path)
        if named.get("chroma") and width is None:
            raise UserError(f"cannot read {path}: its name says {named['chroma']}, only 4:2:0 .yuv files are read; "
                            "convert it to yuv420p with ffmpeg")
        width = width if width is not None else named.get("width")
        height = height if height is not None else named.get("height")
        if width is None or height is None:
            raise UserError(f"cannot read {path}: its frame size is not in the name; rename or symlink it to a "
                            "name that says it, like NAME_1920x1080_30fps_420_8bit.yuv (`data convert` also "
                            "takes --size WxH)")
        self.width, self.height = int(width), int(height)
        self.bit_depth = int(bit_depth if bit_depth is not None else named.get("bit_depth", 8))
        self.fps = float(fps) if fps is not None else named.get("fps")
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise UserError(f"cannot read {path}: {self.width}x{self.height} is not a 4:2:0 frame size "
                            "(width and height must be even)")
        if not 8 <= self.bit_depth <= 16:
            raise UserError(f"cannot read {path}: bit depth {self.bit_depth} is not one of 8..16")
        self._dtype = np.dtype(np.uint8) if self.bit_depth == 8 else np.dtype("<u2")
        self._luma = self.width * self.height
        self._samples = self._luma * 3 // 2
        self.frame_bytes = self._samples * self._dtype.itemsize
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        if size == 0 or size % self.frame_bytes:
            raise UserError(
                f"cannot read {path}: its {size} bytes are not a whole number of {self.width}x{self.height} "
                f"4:2:0 {self.bit_depth}-bit frames ({self.frame_bytes} bytes each); check the size and bit "
                "depth in its name (or the ones given)")
        self._frames = size // self.frame_bytes

    @property
    def num_frames(self) -> int:
        return self._frames

    def read_yuv(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_range(index, 1)
        try:
            flat = np.fromfile(self.path, dtype=self._dtype, count=self._samples, offset=index * self.frame_bytes)
        except OSError as exc:
            raise UserError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if flat.size != self._samples:
            raise UserError(f"cannot read frame {index} of {self.path}: the file is shorter than when it was "
                            "opened; it changed on disk")
        quarter = self._luma // 4
        y = flat[:self._luma].reshape(self.height, self.width)
        u = flat[self._luma:self._luma + quarter].reshape(self.height // 2, self.width // 2)
        v = flat[self._luma + quarter:].reshape(self.height // 2, self.width // 2)
        return y, u, v

    def read_rgb(self, index: int) -> np.ndarray:
        y, u, v = self.read_yuv(index)
        return colour.yuv_to_rgb(y, u, v, bit_depth=self.bit_depth, matrix=self.matrix, full_range=self.full_range)


class VideoSource(FrameSource):
    kind = "video"

    def __init__(self, path: Path, *, fps: Optional[float] = None, matrix: str = "bt709", full_range: bool = True):
        super().__init__(path, matrix, full_range)
        first = mp4.read_frames(path, 0, 1)[0]  # UserError naming the file if it does not decode
        self.height, self.width = first.shape[:2]
        self.bit_depth = 8
        self.fps = float(fps) if fps is not None else mp4.clip_fps(path)
        self._limited: dict[int, int] = {}

    @cached_property
    def _info(self) -> mp4.VideoInfo:
        return mp4.probe_cached(self.path)

    @property
    def num_frames(self) -> int:
        return self._info.frames

    def frames_up_to(self, limit: int) -> int:
        if "_info" in self.__dict__:
            return min(limit, self._info.frames)
        if limit not in self._limited:
            self._limited[limit] = mp4.count_frames(self.path, limit)
        return self._limited[limit]

    def read_rgb(self, index: int) -> np.ndarray:
        return self.read_rgb8(index, 1)[0].astype(np.float32) / 255.0

    def read_rgb8(self, start: int, count: int) -> np.ndarray:
        if start < 0 or count < 1:
            raise IndexError(f"{self.path}: frames {start}..{start + count - 1} asked for")
        return mp4.read_frames(self.path, start, count)


class FrameFolderSource(FrameSource):
    kind = "frames"

    def __init__(self, path: Path, *, fps: Optional[float] = None, matrix: str = "bt709", full_range: bool = True):
        super().__init__(path, matrix, full_range)
        self.frames = list_frames(path)
        # From the first frame's header where it says it (no decoding: a Vimeo-90k tree
        # has 91701 septuplets to open), else by decoding it.
        size, depth = image_size(self.frames[0]), _png_bit_depth(self.frames[0])
        if size is None or depth is None:
            first = self._image(0)
            size, depth = (first.shape[1], first.shape[0]), 16 if first.dtype == np.uint16 else 8
        self.width, self.height = size
        self.bit_depth = depth
        self.fps = float(fps) if fps is not None else None

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def read_rgb(self, index: int) -> np.ndarray:
        self._check_range(index, 1)
        image = self._image(index)
        if image.shape[:2] != (self.height, self.width):
            raise UserError(f"cannot use {self.frames[index]}: it is {image.shape[1]}x{image.shape[0]}, the other "
                            f"frames of {self.path} are {self.width}x{self.height}; make all frames one size")
        peak = 65535.0 if image.dtype == np.uint16 else 255.0
        return image.astype(np.float32) / np.float32(peak)

    def read_rgb8(self, start: int, count: int) -> np.ndarray:
        if self.bit_depth != 8:
            return super().read_rgb8(start, count)
        self._check_range(start, count)
        out = np.empty((count, self.height, self.width, 3), np.uint8)
        for i in range(count):
            image = self._image(start + i)
            if image.shape != out.shape[1:] or image.dtype != np.uint8:
                out[i] = _to_uint8(self.read_rgb(start + i))
            else:
                out[i] = image
        return out

    def _image(self, index: int) -> np.ndarray:
        """Frame ``index`` as H×W×3 RGB, uint8 or uint16 as stored."""
        frame = self.frames[index]
        image = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise UserError(f"cannot read {frame}: not a readable PNG/JPEG image (frame {index + 1} of "
                            f"{self.path}); replace or remove it")
        if image.dtype not in (np.uint8, np.uint16):
            raise UserError(f"cannot use {frame}: {image.dtype} samples; frames must be 8- or 16-bit images")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return image


def _png_bit_depth(path: Path) -> Optional[int]:
    """8 or 16 for a PNG (its IHDR's bit depth: below 8 reads as 8), 8 for a JPEG, None otherwise."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(25)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 25:
        return 16 if head[24] == 16 else 8
    return 8 if head[:2] == b"\xff\xd8" else None


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
