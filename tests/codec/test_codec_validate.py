"""A decoder that cannot be made to allocate: streams forged with valid CRCs (built with the
project's own writer) are refused with one line before anything is decoded — a frame size
larger than the limit or than the payload can hold, every fixed-value header field,
identities, trailing bytes, P payloads that are not their own re-encoding, corrupt JPEGs."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from dcvc_bench.codec.ar import rans_min_bytes
from dcvc_bench.codec.bitstream import FLAG_EMA, Header, StreamError, pack_frame, pack_header, parse_stream
from dcvc_bench.codec.pframe import latent_shapes
from dcvc_bench.codec.validate import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIZE
from dcvc_bench.codec.video import decode_video, encode_video

CLI = "import sys; from dcvc_bench.cli import main; sys.argv[0] = 'dcvc-bench'; main()"
#: Runs argv as its only child and reports that child's wall time, exit code, stderr and
#: peak RSS (RUSAGE_CHILDREN of a fresh process: no other child can raise the figure).
MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    start = time.perf_counter()
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    print(json.dumps({"seconds": time.perf_counter() - start, "rc": done.returncode, "stderr": done.stderr,
                      "stdout": done.stdout, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
""")


def _measure_decode(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-c", CLI, "decode", *args],
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout)


def _forge(header: Header, frames: list[tuple[str, bytes]], *, flags: int | None = None,
           threads: int | None = None, preset: str | None = None) -> bytes:
    """A stream through the project's writer (valid CRCs everywhere); ``flags``,
    ``threads`` and ``preset`` override raw header fields the writer refuses to write."""
    if preset is not None:
        header = replace(header, preset="x" * len(preset))
    data = pack_header(header)
    start = struct.calcsize(">8sH32sB")
    if preset is not None:
        data = data[:start] + preset.encode() + data[start + len(preset):]
    start += len(header.preset.encode())
    fields = list(struct.unpack_from(">IIIiBBH", data, start))
    fields[4] = fields[4] if threads is None else threads
    fields[5] = fields[5] if flags is None else flags
    body = data[:start] + struct.pack(">IIIiBBH", *fields) + data[start + struct.calcsize(">IIIiBBH"):-4]
    return body + struct.pack(">I", zlib.crc32(body)) + b"".join(pack_frame(kind, p) for kind, p in frames)


def _jpeg(width: int, height: int) -> bytes:
    """A real JPEG of that size (smooth content, as the OpenCV codec writes it)."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (width + height)], -1)
    ok, buf = cv2.imencode(".jpg", img.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def genuine(codec, clip):
    """The trained codec's stream of 3 frames of 96×72 (I, P, P), parsed."""
    stream = encode_video(codec, clip[:3], intra_period=-1).stream
    header, payloads = parse_stream(stream)
    return stream, header, [(p.kind, p.data) for p in payloads]


@pytest.fixture(scope="module")
def small_p(codec) -> bytes:
    """The P payload of a 16×16 frame."""
    torch.manual_seed(3)
    _, payloads = parse_stream(encode_video(codec, (torch.rand(2, 3, 16, 16) * 255).to(torch.uint8), -1).stream)
    return payloads[1].data


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, genuine, small_p):
    """The attack: a header claiming 4096×4096, a real 4096² JPEG as frame 0 and a 16×16
    frame's P payload, all with valid CRCs, for the codec of ``checkpoint``."""
    _, header, _ = genuine
    side = 4096
    data = _forge(replace(header, width=side, height=side, frames=2), [("I", _jpeg(side, side)), ("P", small_p)])
    path = tmp_path_factory.mktemp("crafted") / "crafted.dcvc"
    path.write_bytes(data)
    return path


def _refused(codec, data: bytes, match: str, **kwargs) -> str:
    with pytest.raises(StreamError, match=match) as info:
        decode_video(codec, data, name="t.dcvc", **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith("t.dcvc: ")
    return message


# --------------------------------------------------------------------------- the allocation attack


@pytest.mark.slow
def test_crafted_large_frame_is_refused_fast_with_little_memory(crafted, checkpoint, tmp_path):
    """Over the default --max-size: refused before torch is imported."""
    assert 4096 * 4096 > DEFAULT_MAX_PIXELS
    result = _measure_decode(str(crafted), str(tmp_path / "out"), "--checkpoint", str(checkpoint))
    print(f"crafted 4096x4096, default limit: refused in {result['seconds']:.2f} s, peak RSS {result['peak_mb']:.0f} MB")
    assert result["rc"] == 2, result
    assert result["stderr"].count("\n") == 1 and "--max-size" in result["stderr"]
    assert "4096x4096" in result["stderr"] and "{}x{}".format(*DEFAULT_MAX_SIZE) in result["stderr"]
    assert result["seconds"] < 5 and result["peak_mb"] < 300, result  # measured: about 0.6 s, 66 MB
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_crafted_stream_within_a_raised_limit_is_refused_before_allocating(crafted, checkpoint, stream_of,
                                                                           tmp_path):
    """Limit raised to the format's maximum: the P payload cannot hold a 4096² frame's
    latents, so it is refused once the model is loaded, before decoding anything: the
    process peaks no higher than decoding a genuine 96×72 stream."""
    crafted_run = _measure_decode(str(crafted), str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                                  "--max-size", "8192x8192")
    baseline = _measure_decode(str(stream_of), str(tmp_path / "frames"), "--checkpoint", str(checkpoint))
    print(f"crafted 4096x4096, --max-size 8192x8192: refused in {crafted_run['seconds']:.2f} s, peak RSS "
          f"{crafted_run['peak_mb']:.0f} MB; genuine 96x72 decode: {baseline['peak_mb']:.0f} MB")
    assert baseline["rc"] == 0, baseline
    assert crafted_run["rc"] == 2 and crafted_run["stderr"].count("\n") == 1, crafted_run
    assert re.search(r"frame 1 \(P\) does not decode: its \d+ bytes cannot hold the latents of a 4096x4096 frame",
                     crafted_run["stderr"]), crafted_run
    assert crafted_run["peak_mb"] < baseline["peak_mb"] + 100, (crafted_run, baseline)
    assert not (tmp_path / "out").exists()


def test_the_payload_check_takes_no_time_once_loaded(codec, crafted):
    start = time.perf_counter()
    _refused(codec, crafted.read_bytes(), r"frame 1 \(P\) does not decode: its \d+ bytes cannot hold the latents "
                                          r"of a 4096x4096 frame \(they take at least \d+ bytes", max_pixels=None)
    assert time.perf_counter() - start < 5  # measured: about 10 ms


@pytest.fixture(scope="module")
def stream_of(tmp_path_factory, genuine):
    path = tmp_path_factory.mktemp("genuine") / "genuine.dcvc"
    path.write_bytes(genuine[0])
    return path


def test_payload_bound_is_sound_and_binding(codec, random_codec, small_p):
    """Real payloads are never shorter than the bound (a valid stream is never refused);
    the bound at the claimed size is far above a small frame's payload."""
    torch.manual_seed(5)
    for model in (codec, random_codec):
        for height, width in [(16, 16), (72, 96), (130, 200), (64, 64)]:
            clip = (torch.rand(3, 3, height, width) * 255).to(torch.uint8)
            _, payloads = parse_stream(encode_video(model, clip, -1).stream)
            least = rans_min_bytes(model.pframe.min_payload_bits((height, width)))
            for payload in payloads[1:]:
                assert len(payload.data) >= least, (height, width, len(payload.data), least)
    assert rans_min_bytes(codec.pframe.min_payload_bits((2048, 2048))) > 100 * len(small_p)


def test_a_small_frames_payload_in_a_larger_stream_and_the_reverse_are_refused(codec, genuine, small_p):
    _, header, frames = genuine
    _refused(codec, _forge(header, [frames[0], ("P", small_p), frames[2]]),
             r"frame 1 \(P\) does not decode: its \d+ bytes cannot hold the latents of a 96x72 frame")
    tiny = replace(header, width=16, height=16, frames=2)
    _refused(codec, _forge(tiny, [("I", _jpeg(16, 16)), frames[1]]),
             r"frame 1 \(P\) does not decode: (\d+ bytes follow the end of its rANS stream|its bytes are not|"
             r"it decodes to out-of-range symbols)")


def test_latent_shapes_are_the_encoders(codec):
    """The one function the checks and the decoder use gives the shapes the encoder makes."""
    net = codec.net
    for height, width in [(72, 96), (16, 16), (130, 200)]:
        x = torch.rand(1, 3, height, width)
        encoding = codec.pframe.encode(x, x)
        shapes = latent_shapes((height, width))
        assert tuple(encoding.latents["y"][0].shape[2:]) == shapes["y"]
        assert tuple(encoding.latents["mv_y"][0].shape[2:]) == shapes["mv_y"]
        assert tuple(net.priorEncoder(encoding.latents["y"][0]).shape[2:]) == shapes["z"]
        assert tuple(net.mvpriorEncoder(encoding.latents["mv_y"][0]).shape[2:]) == shapes["mv_z"]


# --------------------------------------------------------------------------- every checked field


def test_each_tampered_field_is_refused_with_one_line(codec, genuine):
    stream, header, frames = genuine
    assert decode_video(codec, stream).frames.shape[0] == 3  # the genuine stream decodes
    (kind_i, jpeg), (_, p1), p2 = frames
    cases = {
        "flag bit": (_forge(header, frames, flags=0x02), r"header flags 0x02 have unknown bits set"),
        "EMA flag": (_forge(header, frames, flags=FLAG_EMA), r"made with the EMA weights, the codec uses the plain"),
        "threads 0": (_forge(header, frames, threads=0), r"thread count 0 out of range"),
        "threads 200": (_forge(header, frames, threads=200), r"thread count 200 out of range"),
        "unknown preset": (_forge(replace(header, preset="huge"), frames), r"model preset 'huge'; known presets"),
        "other preset": (_forge(replace(header, preset="dcvc"), frames), r"preset 'dcvc', the checkpoint's is 'tiny'"),
        "bad preset": (_forge(header, frames, preset="Tiny!"), r"'Tiny!' is not a preset name"),
        "I-frame identity": (_forge(replace(header, iframe_identity="opencv-jpeg-q80"), frames),
                             r"I-frame codec 'opencv-jpeg-q80', the checkpoint's is 'opencv-jpeg-q90'"),
        "model identity": (_forge(replace(header, model_identity=bytes(32)), frames), r"stream was made by model 0+"),
        "bytes after a P payload": (_forge(header, [frames[0], ("P", p1 + bytes(4)), p2]),
                                    r"frame 1 \(P\) does not decode: 4 bytes follow the end of its rANS stream"),
        "bytes after the JPEG": (_forge(header, [(kind_i, jpeg + b"\0\0"), (_, p1), p2]),
                                 r"frame 0 \(I\) does not decode: malformed JPEG: 2 bytes after its end-of-image"),
        "truncated JPEG": (_forge(header, [(kind_i, jpeg[:-200]), (_, p1), p2]),
                           r"frame 0 \(I\) does not decode: truncated JPEG stream"),
        "bytes after the stream": (stream + b"\0", r"unexpected bytes after the last frame"),
        "P not starting with a rANS state": (_forge(header, [frames[0], ("P", bytes(8) + p1[8:]), p2]),
                                             r"frame 1 does not start with a rANS state"),
    }
    for case, (data, match) in cases.items():
        with pytest.raises(StreamError, match=match) as info:
            decode_video(codec, data, name="t.dcvc")
        assert "\n" not in str(info.value), case


@pytest.fixture(scope="module")
def genuine_16(codec, clip):
    """The trained codec's stream of the clip's top-left 16×16 (I, P, P), parsed: its P
    payloads are a third of the 96×72 ones' length, and each decode a fraction of the cost."""
    stream = encode_video(codec, clip[:3, :, :16, :16].contiguous(), intra_period=-1).stream
    header, payloads = parse_stream(stream)
    return stream, header, [(p.kind, p.data) for p in payloads]


def test_every_altered_p_payload_byte_is_refused(codec, genuine_16):
    """Before: a bit flip in a P payload with its CRC fixed decoded to a wrong picture. Now a
    payload must be the exact re-encoding of the latents it decodes to."""
    stream, header, frames = genuine_16
    assert decode_video(codec, stream).frames.shape[0] == 3  # the genuine stream decodes
    payload = frames[1][1]
    assert len(payload) > 20
    # every offset of the payload, the low bit at even ones and bit 5 at odd ones
    for offset in range(len(payload)):
        altered = bytearray(payload)
        altered[offset] ^= 1 << (0 if offset % 2 == 0 else 5)
        _refused(codec, _forge(header, [frames[0], ("P", bytes(altered)), frames[2]]),
                 r"frame 1 (does not start with a rANS state|\(P\) does not decode)")


def test_bit_flipped_jpegs_are_refused_whenever_libjpeg_finds_them_corrupt(codec, genuine):
    """Which flips libjpeg detects is decided by another process that decodes them with
    OpenCV and reads libjpeg's stderr; each of those must be refused (before: exit 0)."""
    _, header, frames = genuine
    jpeg = frames[0][1]
    scan = jpeg.index(b"\xff\xda") + 2 + int.from_bytes(jpeg[jpeg.index(b"\xff\xda") + 2:][:2], "big")
    rng = np.random.default_rng(9)
    variants = []
    for offset in rng.choice(np.arange(scan, len(jpeg) - 2), size=60, replace=False):
        altered = bytearray(jpeg)
        altered[int(offset)] ^= 1 << int(rng.integers(8))
        variants.append(bytes(altered))
    oracle = textwrap.dedent("""
        import os, sys, cv2, numpy as np
        for line in sys.stdin:
            os.write(2, b"=== variant\\n")
            cv2.imdecode(np.frombuffer(bytes.fromhex(line.strip()), np.uint8), cv2.IMREAD_COLOR)
    """)
    out = subprocess.run([sys.executable, "-c", oracle], input="\n".join(v.hex() for v in variants),
                         capture_output=True, text=True, timeout=120, check=True)
    reports = out.stderr.split("=== variant\n")[1:]
    assert len(reports) == len(variants)
    flagged = [v for v, report in zip(variants, reports) if report.strip()]
    assert len(flagged) >= 5, "no flip that libjpeg reports: the test would prove nothing"
    for variant in flagged:
        _refused(codec, _forge(header, [("I", variant), *frames[1:]]),
                 r"frame 0 \(I\) does not decode: (corrupt jpeg data \(jpeg decoder: .*(Corrupt JPEG data|JPEG)|"
                 r"malformed JPEG|truncated JPEG|corrupted JPEG)")


# --------------------------------------------------------------------------- the limit and the CLI


def test_max_size_can_be_lowered_and_is_named(genuine, checkpoint, stream_of, tmp_path, codec):
    stream = genuine[0]
    message = _refused(codec, stream, r"its 96x72 frames \(6,912 pixels\) exceed the decoder's limit of 4,096 pixels "
                                      r"\(max_pixels=4096\)", max_pixels=4096)
    assert "raise the limit" in message
    assert decode_video(codec, stream, max_pixels=96 * 72).frames.shape[0] == 3

    from typer.testing import CliRunner

    from dcvc_bench.cli import app

    runner = CliRunner()
    for size, expected in [("64x64", "limit of 4,096 pixels (--max-size 64x64)"),
                           ("big", "--max-size: expected WIDTHxHEIGHT"),
                           ("9000x10", "--max-size: expected WIDTHxHEIGHT with sides 1..8192")]:
        result = runner.invoke(app, ["decode", str(stream_of), str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                                     "--max-size", size])
        assert result.exit_code == 2 and expected in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "out").exists()
    help_text = runner.invoke(app, ["decode", "--help"]).output
    assert "{}x{}".format(*DEFAULT_MAX_SIZE) in help_text


def test_a_stream_failing_midway_writes_nothing(codec, genuine, checkpoint, tmp_path):
    """Frames go to disk one at a time, into a temporary folder that only replaces the
    destination's frames once all decoded."""
    from dcvc_bench.codec.files import decode_file

    _, header, frames = genuine
    bad = tmp_path / "bad.dcvc"
    bad.write_bytes(_forge(header, [frames[0], frames[1], ("P", frames[2][1] + bytes(4))]))
    for dst in (tmp_path / "frames", tmp_path / "view.mp4"):
        with pytest.raises(StreamError, match=r"frame 2 \(P\) does not decode: 4 bytes follow"):
            decode_file(bad, dst, checkpoint, echo=print)
        assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dcvc"]


def test_stream_checks_run_without_torch():
    """`decode` refuses a bad stream before it pays for torch (import time and memory)."""
    for module in ("dcvc_bench.codec.files", "dcvc_bench.codec.validate", "dcvc_bench.codec.bitstream"):
        code = f"import sys, {module}; print('torch' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip() == "False", module
