"""Sequence coding API: the decoder reproduces the encoder, bits are counted exactly, real
bits agree with the estimate, the decoded frame is the reference, and failures are named."""

from __future__ import annotations

import pytest
import torch

from dcvc_bench.codec.bitstream import FRAME_OVERHEAD, StreamError, parse_stream
from dcvc_bench.codec.video import CodingError, decode_video, encode_video, load_codec
from dcvc_bench.errors import UserError



#: Per P-frame: the rANS stream ends with its 64-bit state and is whole 32-bit words, so
#: up to 96 bits come on top of the symbols' information content.
RANS_FIXED_BITS = 96


@pytest.fixture(scope="module")
def encoded(codec, clip):
    return encode_video(codec, clip, intra_period=3, name="clip")


def test_decoder_reproduces_the_encoder_exactly(codec, clip, encoded):
    assert encoded.decoded.shape == clip.shape and encoded.decoded.dtype == torch.uint8
    decoded = decode_video(codec, encoded.stream)
    assert torch.equal(decoded.frames, encoded.decoded)
    assert len(decoded.dec_seconds) == clip.shape[0]


def test_every_byte_is_counted_and_frame_types_follow_the_intra_period(encoded, clip):
    assert [f.kind for f in encoded.frames] == ["I", "P", "P", "I", "P"]
    assert encoded.header_bits + sum(f.bits for f in encoded.frames) == 8 * len(encoded.stream)
    header, payloads = parse_stream(encoded.stream)
    assert (header.width, header.height) == (clip.shape[-1], clip.shape[-2]) == (96, 72)
    assert header.frames == clip.shape[0]
    assert header.intra_period == 3 and header.preset == "tiny" and not header.ema
    for stats, payload in zip(encoded.frames, payloads):
        assert stats.payload_bits == 8 * len(payload.data)
        assert stats.bits - stats.payload_bits == 8 * FRAME_OVERHEAD


def test_real_bits_agree_with_the_estimate(encoded):
    for f in encoded.frames:
        if f.kind == "I":  # the OpenCV codec's estimate is a real encode: equal bytes
            assert f.payload_bits == f.est_bits
        else:  # the symbols cost what the model estimates, plus the rANS coders' fixed costs
            assert abs(f.payload_bits - f.est_bits) <= RANS_FIXED_BITS + 0.03 * f.est_bits, f


def test_decoded_quality_is_what_the_model_gives(encoded, clip):
    from dcvc_bench.eval.metrics import psnr

    quality = psnr(encoded.decoded.float() / 255, clip.float() / 255)
    assert quality.shape == (clip.shape[0],) and bool((quality > 10).all())


def test_the_decoded_frame_is_the_reference(codec, clip, encoded):
    """Coding frame 1 alone against the decoded frame 0 gives the stream's frame 1."""
    pair = encode_video(codec, clip[:2], intra_period=-1)
    assert torch.equal(pair.decoded, encoded.decoded[:2])
    assert pair.stream.endswith(parse_stream(encoded.stream)[1][1].data)


def test_ema_weights_are_recorded_and_used_by_the_decoder(checkpoint, clip):
    ema_codec = load_codec(checkpoint, ema=True)
    result = encode_video(ema_codec, clip[:2], intra_period=-1)
    assert parse_stream(result.stream)[0].ema
    decoded = decode_video(None, result.stream, checkpoint)  # loads the EMA weights itself
    assert torch.equal(decoded.frames, result.decoded)


def test_foreign_model_stream_is_refused(random_codec, codec, clip):
    stream = encode_video(random_codec, clip[:2], intra_period=-1).stream
    with pytest.raises(StreamError, match=r"stream was made by model [0-9a-f]{16}, checkpoint is [0-9a-f]{16}"):
        decode_video(codec, stream)


def test_bad_input_and_failures_are_named(codec, clip, monkeypatch):
    with pytest.raises(UserError, match="intra-period"):
        encode_video(codec, clip, intra_period=0)
    with pytest.raises(ValueError, match="uint8"):
        encode_video(codec, clip.float(), intra_period=-1)

    def broken(*_):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(codec.pframe, "encode", broken)
    with pytest.raises(CodingError, match=r"clip7: encoding frame 1 \(P\) failed: RuntimeError: out of memory"):
        encode_video(codec, clip[:3], intra_period=-1, name="clip7")
