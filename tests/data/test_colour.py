"""dcvc_bench.data.colour pinned against ffmpeg's scale filter (explicit matrix and range)."""

from __future__ import annotations

import numpy as np
import pytest

from dcvc_bench.data import colour
from dcvc_bench.data.sources import open_source
from yuv_helpers import ffmpeg_rgb, make_yuv

W, H = 96, 64  # the shared synthetic clips' size


@pytest.fixture(scope="module")
def yuv_files(synthetic_clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("yuv")
    source = synthetic_clips / "synth_000.mp4"
    return {bits: make_yuv(source, folder / f"X_{W}x{H}_30fps_420_{bits}bit_YUV.yuv", bits, frames=4)
            for bits in (8, 10)}


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("matrix,full_range", [("bt709", True), ("bt709", False), ("bt601", True),
                                               ("bt601", False)])
def test_yuv_to_rgb_equals_ffmpeg_scale_within_one_8bit_level(yuv_files, bits, matrix, full_range):
    path = yuv_files[bits]
    ours = open_source(path, matrix=matrix, full_range=full_range)
    reference = ffmpeg_rgb(path, W, H, bits, matrix=matrix, full_range=full_range)
    assert ours.num_frames == len(reference) == 4
    diff = max(np.abs(ours.read_rgb(i).astype(np.float64) - reference[i]).max() for i in range(4)) * 255
    print(f"{matrix} {'full' if full_range else 'limited'} {bits}-bit: max |ours - ffmpeg| = {diff:.3f} 8-bit levels")
    assert diff <= 1.0
    if full_range:  # tighter: ffmpeg's own output rounding; a chroma centre of 127.5 (not 128) would be 0.8 off
        assert diff <= 0.6
    # and it is the colour conversion that is pinned: the other matrix is far off
    other = "bt601" if matrix == "bt709" else "bt709"
    wrong = open_source(path, matrix=other, full_range=full_range)
    assert max(np.abs(wrong.read_rgb(i) - reference[i]).max() for i in range(4)) * 255 > 3


def test_ten_bit_is_scaled_exactly_not_shifted():
    peak, mid = 1023, 512
    y = np.array([[0, peak], [peak, 0]], np.uint16)
    flat = np.full((1, 1), mid, np.uint16)
    rgb = colour.yuv_to_rgb(y, flat, flat, bit_depth=10)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [1, 1, 1]
    limited = colour.yuv_to_rgb(np.array([[64, 940], [64, 940]], np.uint16), flat, flat, bit_depth=10,
                                full_range=False)
    assert np.allclose(limited[0, 0], 0) and np.allclose(limited[0, 1], 1)


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("matrix", colour.MATRICES)
@pytest.mark.parametrize("full_range", [True, False])
def test_rgb_to_yuv420_inverts_yuv_to_rgb(bits, matrix, full_range):
    rng = np.random.default_rng(bits)
    rgb = rng.random((16, 24, 3))
    rgb = np.repeat(np.repeat(rgb[::2, ::2], 2, 0), 2, 1)  # chroma-flat per 2x2 block: 4:2:0 loses nothing
    back = colour.yuv_to_rgb(*colour.rgb_to_yuv420(rgb, bit_depth=bits, matrix=matrix, full_range=full_range),
                             bit_depth=bits, matrix=matrix, full_range=full_range)
    step = 1 / ((1 << bits) - 1) * (1 if full_range else 255 / 219)
    assert np.abs(back - rgb).max() <= 2.5 * step


def test_rgb_to_yuv420_averages_chroma_over_2x2_and_rounds():
    rgb = np.zeros((2, 2, 3))
    rgb[0, 0] = [1, 0, 0]  # one red pixel of four
    y, u, v = colour.rgb_to_yuv420(rgb)
    kr, kb = 0.2126, 0.0722
    assert y.dtype == np.uint8 and y.tolist() == [[round(255 * kr), 0], [0, 0]]
    cr_red = (1 - kr) / (2 * (1 - kr))  # = 0.5
    cb_red = -kr / (2 * (1 - kb))
    assert v.tolist() == [[round(255 * cr_red / 4 + 128)]]
    assert u.tolist() == [[round(255 * cb_red / 4 + 128)]]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown colour matrix 'bt2020'"):
        colour.rgb_to_yuv420(np.zeros((2, 2, 3)), matrix="bt2020")
    with pytest.raises(ValueError, match="even-sized"):
        colour.rgb_to_yuv420(np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="4:2:0"):
        colour.yuv_to_rgb(np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)))
