"""The .dcvc container: truncated, mutated and forged streams are clean one-line errors,
found before decoding, never a crash, a hang or a large allocation."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import textwrap
import zlib
from dataclasses import replace

import pytest

from dcvc_bench.codec.bitstream import (
    MAX_SIDE,
    Header,
    StreamError,
    pack_frame,
    pack_header,
    parse_stream,
)
from dcvc_bench.codec.gop import is_intra_frame
from dcvc_bench.codec.video import decode_video, encode_video
from dcvc_bench.errors import UserError


@pytest.fixture(scope="module")
def stream(random_codec, clip) -> bytes:
    return encode_video(random_codec, clip[:3], intra_period=2).stream


def _split(stream: bytes) -> tuple[Header, bytes]:
    header, _ = parse_stream(stream)
    return header, stream[len(pack_header(header)):]


def _reheader(stream: bytes, **changes) -> bytes:
    """The stream with header fields changed and a valid header checksum (a forgery)."""
    header, frames = _split(stream)
    data = pack_header(header)[:-4]
    forged = replace(header, **changes)
    start = struct.calcsize(">8sH32sB") + len(header.preset.encode())
    fields = struct.pack(">IIIiBBH", forged.width, forged.height, forged.frames, forged.intra_period,
                         forged.threads, int(forged.ema), len(forged.iframe_identity.encode()))
    data = data[:start] + fields + data[start + len(fields):]
    return data + struct.pack(">I", zlib.crc32(data)) + frames


def test_roundtrip_of_header_and_frames():
    header = Header(bytes(range(32)), "tiny", 96, 72, 3, 2, 2, True, "opencv-jpeg-q90")
    frames = [pack_frame("I", b"jpeg"), pack_frame("P", b"rans" * 3), pack_frame("I", b"x")]
    parsed, payloads = parse_stream(pack_header(header) + b"".join(frames))
    assert parsed == header
    assert [(p.kind, p.data) for p in payloads] == [("I", b"jpeg"), ("P", b"rans" * 3), ("I", b"x")]
    with pytest.raises(StreamError, match="not a rANS stream"):
        parse_stream(pack_header(header) + frames[0] + pack_frame("P", b"abcde") + frames[2])


def test_intra_rule():
    assert [is_intra_frame(t, 3) for t in range(7)] == [True, False, False, True, False, False, True]
    assert [is_intra_frame(t, -1) for t in range(3)] == [True, False, False]
    assert [is_intra_frame(t, None) for t in range(3)] == [True, False, False]


@pytest.mark.timeout(120)
def test_random_bit_flips_and_truncations_are_clean_errors(random_codec, stream):
    rng = random.Random(5)
    offsets = sorted(rng.sample(range(len(stream)), 150)) + list(range(0, 80, 3))
    for offset in offsets:
        mutated = bytearray(stream)
        mutated[offset] ^= 1 << rng.randrange(8)
        with pytest.raises(StreamError) as info:
            decode_video(random_codec, bytes(mutated))
        assert "\n" not in str(info.value)
    for length in sorted(rng.sample(range(len(stream)), 80)) + [0, 1, 8, 9]:
        with pytest.raises(StreamError, match="truncated|checksum|not a dcvc-bench"):
            decode_video(random_codec, stream[:length])
    with pytest.raises(StreamError, match="unexpected bytes after the last frame"):
        decode_video(random_codec, stream + b"\0")


def test_stream_level_errors_say_what_is_wrong(stream):
    header, frames = _split(stream)
    cases = {
        b"XXXXXXXX" + stream[8:]: "not a dcvc-bench stream",
        stream[:8] + b"\x00\x09" + stream[10:]: "format version 9 is not supported",
        _reheader(stream, frames=10**6): "header says 1000000 frames",
        _reheader(stream, width=MAX_SIDE + 1): "out of range",
        _reheader(stream, intra_period=0): "intra period 0",
        _reheader(stream, intra_period=1): "frame 1 is coded as P, the intra period makes it I",
        _reheader(stream, threads=0): "thread count 0 out of range",
        pack_header(header) + struct.pack(">II", 0xFFFFFFF0, 0) + frames[8:]:
            "frame 0's payload needs 4294967280 bytes",
    }
    for data, message in cases.items():
        with pytest.raises(StreamError, match=message):
            parse_stream(data)


def test_a_checksummed_but_undecodable_frame_is_named(random_codec, stream):
    header, _ = parse_stream(stream)
    payloads = [pack_frame("I", b"not a jpeg")] + [pack_frame(p.kind, p.data) for p in parse_stream(stream)[1][1:]]
    with pytest.raises(UserError, match=r"frame 0 \(I\) does not decode: ValueError"):
        decode_video(random_codec, pack_header(header) + b"".join(payloads), name="x.dcvc")


@pytest.mark.timeout(120)
def test_forged_sizes_fail_before_any_large_allocation(tmp_path, stream):
    """Decoded in a child process whose address space is capped at 768 MiB above what it
    uses once loaded: a multi-GB allocation would fail there with another error."""
    forged = {"size": _reheader(stream, width=MAX_SIDE, height=MAX_SIDE),
              "count": _reheader(stream, frames=4_000_000)}
    for name, data in forged.items():
        (tmp_path / f"{name}.dcvc").write_bytes(data)
    script = textwrap.dedent(f"""
        import resource, sys, torch
        from dcvc_bench.codec.video import Codec, decode_video
        from dcvc_bench.codec.bitstream import StreamError
        from dcvc_bench.curriculum.iframe_spec import OpenCVSpec
        from dcvc_bench.models.iframe import build_iframe_codec
        from dcvc_bench.models.video_net import DCVC
        torch.manual_seed(11)
        codec = Codec(DCVC("tiny"), build_iframe_codec(OpenCVSpec(codec="jpeg", quality=90)), threads=2)
        vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (768 << 20), resource.RLIM_INFINITY))
        for name in ("size", "count"):
            try:
                decode_video(codec, open({str(tmp_path)!r} + "/" + name + ".dcvc", "rb").read())
            except StreamError as exc:
                print(name, exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert "jpeg stream is 72×96, expected 8192×8192" in lines["size"]
    assert "header says 4000000 frames" in lines["count"]
