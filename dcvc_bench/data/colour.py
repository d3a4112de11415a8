"""YUV <-> RGB: the one place that owns the matrices, the ranges and the 4:2:0 resampling.

Convention (the DCVC / JPEG-AI test conditions): **BT.709, full range** unless told
otherwise; ``matrix="bt601"`` and ``full_range=False`` (limited, "TV" range) are options.

Matrices
    ``Y = Kr·R + (1 − Kr − Kb)·G + Kb·B``, ``Cb = (B − Y) / (2(1 − Kb))``,
    ``Cr = (R − Y) / (2(1 − Kr))`` with (Kr, Kb) = (0.2126, 0.0722) for BT.709 and
    (0.299, 0.114) for BT.601 (ITU-T H.273's definitions, as ffmpeg's swscale uses them).

Quantisation, ``n`` = ``bit_depth`` bits (H.273, exact at every bit depth)
    full range:    ``Y = (2^n − 1)·E_Y``,                 ``C = (2^n − 1)·E_C + 2^(n−1)``
    limited range: ``Y = (219·E_Y + 16)·2^(n−8)``,        ``C = (224·E_C + 128)·2^(n−8)``
    so a 10-bit full-range sample is divided by 1023 (not by 4 then 255), and a 10-bit
    limited one has black at 64 and white at 940. Chroma is centred on ``2^(n−1)`` (128 at
    8 bits), as ffmpeg and H.273 do.

4:2:0 resampling
    :func:`yuv_to_rgb` upsamples chroma by **replication** (nearest: each chroma sample
    covers its 2×2 luma block), as DCVC's reference reader does; :func:`rgb_to_yuv420`
    downsamples by **2×2 averaging** (the mean of the four co-sited-block values, before
    rounding). Odd frame sizes are not 4:2:0 and are refused.

Values: RGB is float32 in [0, 1]; YUV planes are integers (uint8 up to 8 bits, uint16
above) after rounding to nearest and clipping to the legal code range
(``[0, 2^n − 1]``). Numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MATRICES", "rgb_to_yuv420", "upsample_chroma", "yuv_to_rgb"]

MATRICES = ("bt709", "bt601")
_K = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, *, bit_depth: int = 8, matrix: str = "bt709",
               full_range: bool = True) -> np.ndarray:
    """4:2:0 planes (``y`` H×W, ``u``/``v`` H/2×W/2 integers) to float32 H×W×3 RGB in [0, 1]."""
    y = np.asarray(y)
    height, width = y.shape
    u, v = np.asarray(u), np.asarray(v)
    if u.shape != (height // 2, width // 2) or v.shape != u.shape or height % 2 or width % 2:
        raise ValueError(f"yuv_to_rgb: 4:2:0 needs an even-sized Y plane and chroma planes of half its size, "
                         f"got Y {y.shape}, U {u.shape}, V {v.shape}")
    ey, ecb, ecr = _dequantise(y, upsample_chroma(u), upsample_chroma(v), bit_depth, full_range)
    kr, kb = _matrix(matrix)
    kg = 1.0 - kr - kb
    r = ey + 2.0 * (1.0 - kr) * ecr
    b = ey + 2.0 * (1.0 - kb) * ecb
    g = (ey - kr * r - kb * b) / kg
    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(rgb, 0.0, 1.0, out=rgb).astype(np.float32, copy=False)


def rgb_to_yuv420(rgb: np.ndarray, *, bit_depth: int = 8, matrix: str = "bt709",
                  full_range: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float H×W×3 RGB in [0, 1] to 4:2:0 integer planes ``(y, u, v)`` (uint8 / uint16)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
        raise ValueError(f"rgb_to_yuv420: needs an even-sized H×W×3 array, got {rgb.shape}")
    kr, kb = _matrix(matrix)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    ey = kr * r + (1.0 - kr - kb) * g + kb * b
    ecb = (b - ey) / (2.0 * (1.0 - kb))
    ecr = (r - ey) / (2.0 * (1.0 - kr))
    ecb, ecr = _average_2x2(ecb), _average_2x2(ecr)
    return _quantise(ey, ecb, ecr, bit_depth, full_range)


def upsample_chroma(plane: np.ndarray) -> np.ndarray:
    """A chroma plane at twice its size by replication (the 4:2:0 -> 4:4:4 rule above)."""
    return np.repeat(np.repeat(np.asarray(plane), 2, axis=0), 2, axis=1)


# ---------------------------------------------------------------------------- helpers


def _matrix(matrix: str) -> tuple[float, float]:
    try:
        return _K[matrix]
    except KeyError:
        raise ValueError(f"unknown colour matrix {matrix!r}; choose one of {', '.join(MATRICES)}") from None


def _check_depth(bit_depth: int) -> None:
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)) or not 8 <= bit_depth <= 16:
        raise ValueError(f"bit depth must be a whole number from 8 to 16, got {bit_depth!r}")


def _scales(bit_depth: int, full_range: bool) -> tuple[float, float, float, float]:
    """(luma scale, luma offset, chroma scale, chroma offset) of code value = scale·E + offset."""
    _check_depth(bit_depth)
    if full_range:
        peak = float((1 << bit_depth) - 1)
        return peak, 0.0, peak, float(1 << (bit_depth - 1))
    step = float(1 << (bit_depth - 8))
    return 219.0 * step, 16.0 * step, 224.0 * step, 128.0 * step


def _dequantise(y: np.ndarray, u: np.ndarray, v: np.ndarray, bit_depth: int,
                full_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, yo, cs, co = _scales(bit_depth, full_range)
    return ((y.astype(np.float64) - yo) / ys, (u.astype(np.float64) - co) / cs, (v.astype(np.float64) - co) / cs)


def _quantise(ey: np.ndarray, ecb: np.ndarray, ecr: np.ndarray, bit_depth: int,
              full_range: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ys, yo, cs, co = _scales(bit_depth, full_range)
    top = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth <= 8 else np.uint16

    def code(values: np.ndarray, scale: float, offset: float) -> np.ndarray:
        return np.clip(np.rint(values * scale + offset), 0, top).astype(dtype)

    return code(ey, ys, yo), code(ecb, cs, co), code(ecr, cs, co)


def _average_2x2(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
