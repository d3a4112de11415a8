"""x265 / x264 baselines through the ffmpeg command line, on exactly the frames the
learned codec sees.

Colour path (one, named in every result as :data:`COLOUR_PATH`)
    The clip's decoded RGB frames (uint8, the same arrays the learned codec codes) go to
    ffmpeg on stdin as raw ``rgb24`` (lossless). ffmpeg converts them to **YUV 4:4:4,
    8-bit, BT.709 matrix, limited (TV) range** with swscale, x265/x264 code that, ffmpeg
    decodes the elementary stream and converts back to ``rgb24`` with the same matrix and
    range, and the result is scored in RGB by :mod:`dcvc_bench.eval.metrics` like the
    learned codec. Why 4:4:4 and not 4:2:0: the learned codec codes full-resolution RGB;
    4:2:0 would add a chroma down/up-sampling step whose filter and siting alone moved
    RGB PSNR by ~13 dB on our synthetic clips (sources decoded from MP4 by OpenCV already
    carry block-wise chroma), so the comparison would measure resampling filters, not
    codecs. 4:4:4 leaves only the 8-bit matrix rounding (at most 1 LSB); its cost is
    measured per clip without any coding (``colour_roundtrip_psnr``, typically ~52 dB) so
    a reader sees the ceiling. This is the RGB test setup of DCVC-DC / DCVC-FM for
    traditional codecs (YUV444 in, RGB scored); x265 codes it in the Main 4:4:4 profile,
    x264 in High 4:4:4 Predictive.

Encoder settings (low-delay P, like DCVC papers)
    ``-tune zerolatency`` (no look-ahead, no B-frames, one frame thread), ``bframes=0``,
    an I-frame every ``--intra-period`` frames (``keyint``; x265 also ``min-keyint``;
    ``scenecut=0`` so no extra I-frames; -1 = only the first frame), constant QP
    (``qp=``) or CRF (``crf=``). x264 runs with ``threads=1``: zerolatency's sliced
    threads would make the bitstream depend on the machine's core count.

Bits
    ffmpeg writes the raw Annex-B elementary stream (``-f hevc`` / ``-f h264``), so the
    file holds exactly the codec's bytes: parameter sets and slices, no container. The
    encoder's self-advertising SEI is removed: x265 with ``info=0``; x264 has no switch
    for it, so the ``filter_units=remove_types=6`` bitstream filter drops H.264 SEI NAL
    units (x264 writes only its version/options SEI with these settings). Bits per
    frame come from splitting the stream into access units (:func:`split_access_units`);
    their sum is checked to equal the file size.

YUV 4:2:0 mode (``eval --color yuv420``): :mod:`dcvc_bench.eval.baselines_yuv`.

Every command is an argv list (never a shell string), recorded with each RD point;
``shlex.join`` is only for display.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dcvc_bench.errors import UserError
from dcvc_bench.eval.annexb import AccessUnit, split_access_units

INSTALL_HINT = ("install it: apt-get install -y ffmpeg (Debian/Ubuntu), brew install ffmpeg (macOS), "
                "or pass --ffmpeg PATH")
PIX_FMT = "yuv444p"
COLOUR_PATH = ("rgb24 -> yuv444p 8-bit BT.709 limited range (ffmpeg swscale) -> encoder -> decoder -> "
               "yuv444p -> rgb24 BT.709 limited range; metrics in RGB")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
RATE_CONTROLS = ("qp", "crf")
DEFAULT_QPS = (22, 27, 32, 37)
#: Frames are fed at this rate; with constant QP/CRF it changes no bit (only stream timing).
FRAME_RATE = 25

# swscale conversions: explicit matrix and range both ways (never swscale's defaults).
_TO_YUV = "scale=out_color_matrix=bt709:out_range=tv:flags=accurate_rnd"
_TO_RGB = "scale=in_color_matrix=bt709:in_range=tv:flags=accurate_rnd"
_COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-color_range", "tv"]


@dataclass(frozen=True)
class BaselineCodec:
    name: str          # what users type: x265, x264
    encoder: str       # ffmpeg encoder
    muxer: str         # raw elementary-stream muxer/demuxer
    suffix: str


CODECS: dict[str, BaselineCodec] = {
    "x265": BaselineCodec("x265", "libx265", "hevc", ".hevc"),
    "x264": BaselineCodec("x264", "libx264", "h264", ".h264"),
}


@dataclass(frozen=True)
class BaselinePoint:
    """One RD point: a codec at one preset and one QP (or CRF)."""

    codec: str
    preset: str
    rate_control: str  # "qp" or "crf"
    value: int

    @property
    def label(self) -> str:
        return f"{self.codec} {self.rate_control}{self.value}"


@dataclass
class BaselineResult:
    decoded: np.ndarray        # T×H×W×3 uint8 RGB, as ffmpeg decodes the stream
    stream_bytes: int          # size of the elementary-stream file
    sha256: str
    units: list[AccessUnit]
    encode_argv: list[str]
    decode_argv: list[str]
    enc_seconds: float         # ffmpeg wall time, colour conversion and start-up included
    dec_seconds: float


# --------------------------------------------------------------------------- ffmpeg


def find_ffmpeg(ffmpeg: str | os.PathLike[str] | None = None) -> str:
    """The ffmpeg executable (``ffmpeg`` on PATH by default); one-line UserError if absent."""
    name = str(ffmpeg) if ffmpeg else "ffmpeg"
    found = shutil.which(name)
    if found is None:
        where = f"{name} is not an executable file" if os.sep in name else f"no {name} on PATH"
        raise UserError(f"baselines need ffmpeg with libx265/libx264 ({where}); {INSTALL_HINT}")
    return found


def check_encoders(ffmpeg: str, codecs: Sequence[str]) -> None:
    """Refuse early (one line) when this ffmpeg lacks an encoder we need."""
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
    except OSError as exc:
        raise UserError(f"cannot run {ffmpeg}: {exc.strerror or exc}; {INSTALL_HINT}") from None
    available = {line.split()[1] for line in out.splitlines() if len(line.split()) > 1}
    for name in codecs:
        encoder = CODECS[name].encoder
        if encoder not in available:
            raise UserError(f"{ffmpeg} has no {encoder} encoder (needed for the {name} baseline); "
                            "install an ffmpeg built with it: apt-get install -y ffmpeg")


def parse_points(codecs: str, preset: str, qps: str | None, crfs: str | None) -> list[BaselinePoint]:
    """``--baselines x265,x264 --preset medium --qp 22,27`` -> RD points (UserError on bad input)."""
    names = [c.strip().lower() for c in codecs.split(",") if c.strip()]
    if not names:
        raise UserError("--baselines: name at least one codec: x265, x264")
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise UserError(f"--baselines: unknown codec {unknown[0]!r}; use x265, x264 or both (x265,x264)")
    if preset not in PRESETS:
        raise UserError(f"--baseline-preset {preset!r}: use one of {', '.join(PRESETS)}")
    if qps is not None and crfs is not None:
        raise UserError("--qp and --crf are alternatives: give one of them")
    rc, text = ("crf", crfs) if crfs is not None else ("qp", qps)
    if text is None:
        values = list(DEFAULT_QPS)
    else:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--{rc} {text!r}: expected whole numbers separated by commas, e.g. 22,27,32,37") from None
        if not values:
            raise UserError(f"--{rc}: give at least one value, e.g. 22,27,32,37")
        bad = [v for v in values if not 0 <= v <= 51]
        if bad:
            raise UserError(f"--{rc} {bad[0]}: out of range 0..51")
    values = sorted(set(values))
    return [BaselinePoint(n, preset, rc, v) for n in dict.fromkeys(names) for v in values]


def _keyint_params(codec: str, intra_period: int) -> list[str]:
    if codec == "x265":
        if intra_period == -1:
            return ["keyint=-1", "scenecut=0"]
        return [f"keyint={intra_period}", f"min-keyint={intra_period}", "scenecut=0"]
    # x264 clamps min-keyint to keyint/2+1; with scenecut=0 it never matters, so it is left out.
    return ["keyint=infinite" if intra_period == -1 else f"keyint={intra_period}", "scenecut=0"]


def encode_argv(ffmpeg: str, point: BaselinePoint, width: int, height: int, frames: int,
                intra_period: int, output: str) -> list[str]:
    """ffmpeg argv: raw rgb24 frames on stdin -> yuv444p BT.709 -> raw elementary stream."""
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(FRAME_RATE),
            "-i", "pipe:0", "-frames:v", str(frames),
            "-vf", _TO_YUV, "-pix_fmt", PIX_FMT, *_COLOUR_TAGS, *_codec_args(point, intra_period),
            "-f", CODECS[point.codec].muxer, "-y", output]


def _codec_args(point: BaselinePoint, intra_period: int, extra: Sequence[str] = ()) -> list[str]:
    codec = CODECS[point.codec]
    params = [f"{point.rate_control}={point.value}", "bframes=0", *_keyint_params(point.codec, intra_period), *extra]
    if point.codec == "x265":
        params += ["info=0", "log-level=error"]
        return ["-c:v", codec.encoder, "-preset", point.preset, "-tune", "zerolatency", "-x265-params", ":".join(params)]
    params += ["threads=1"]
    return ["-c:v", codec.encoder, "-preset", point.preset, "-tune", "zerolatency", "-x264-params", ":".join(params),
            "-bsf:v", "filter_units=remove_types=6"]


def decode_argv(ffmpeg: str, codec: str, stream: str) -> list[str]:
    """ffmpeg argv: elementary stream -> raw rgb24 frames on stdout (BT.709, limited range)."""
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error",
            "-f", CODECS[codec].muxer, "-i", stream,
            "-vf", _TO_RGB, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]


def _run(argv: list[str], what: str, stdin: Any = None, cwd: Path | None = None) -> bytes:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, cwd=cwd, check=False)
    except OSError as exc:
        raise UserError(f"cannot run {argv[0]}: {exc.strerror or exc}; {INSTALL_HINT}") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.decode(errors="replace").split())[-400:] or f"exit code {proc.returncode}"
        raise RuntimeError(f"{what} failed: {detail} (command: {shlex.join(argv)})")
    return proc.stdout


def _as_stdin(frames: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(frames, dtype=np.uint8).reshape(-1))


def _check_frames(frames: np.ndarray) -> tuple[int, int, int]:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError("frames must be a T×H×W×3 uint8 RGB array")
    t, h, w, _ = frames.shape
    if t < 1 or h < 1 or w < 1:
        raise ValueError(f"empty clip {frames.shape}")
    return t, h, w


def _raw_to_frames(raw: bytes, shape: tuple[int, int, int], what: str) -> np.ndarray:
    t, h, w = shape
    frame_bytes = h * w * 3
    if len(raw) != t * frame_bytes:
        raise RuntimeError(f"{what}: ffmpeg returned {len(raw) / frame_bytes:g} frames of {w}x{h}, expected {t}")
    return np.frombuffer(raw, np.uint8).reshape(t, h, w, 3)


@dataclass
class CodedStream:
    """One encode and decode of a baseline point: the stream, the decoder's raw output and
    what it took. Shared by the RGB and the YUV 4:2:0 paths, which differ only in the
    argvs and in how the raw frames are fed and read back."""

    data: bytes
    raw: bytes
    units: list[AccessUnit]
    encode_argv: list[str]
    decode_argv: list[str]
    enc_seconds: float
    dec_seconds: float


def code_stream(ffmpeg: str, point: BaselinePoint, frames: int, stdin: Any,
                encode: Callable[[str], list[str]], decode: Callable[[str], list[str]],
                workdir: str | os.PathLike[str] | None = None) -> CodedStream:
    """Run ``encode(stream name)`` with ``stdin`` in a temporary folder, then
    ``decode(stream name)``, timing each; check that the stream splits into ``frames``
    access units that cover every byte."""
    codec = CODECS[point.codec]
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-baseline-", dir=workdir) as tmp:
        folder = Path(tmp)
        name = f"stream{codec.suffix}"
        enc = encode(name)
        start = time.perf_counter()
        _run(enc, f"{point.label} encode", stdin=stdin, cwd=folder)
        enc_seconds = time.perf_counter() - start
        data = (folder / name).read_bytes()
        dec = decode(name)
        start = time.perf_counter()
        raw = _run(dec, f"{point.label} decode", cwd=folder)
        dec_seconds = time.perf_counter() - start
    units = split_access_units(data, codec.muxer)
    if sum(u.size for u in units) != len(data) or len(units) != frames:
        raise RuntimeError(f"{point.label}: the stream splits into {len(units)} frames of "
                           f"{sum(u.size for u in units)} bytes, expected {frames} frames of {len(data)} bytes")
    return CodedStream(data, raw, units, enc, dec, enc_seconds, dec_seconds)


def run_baseline(ffmpeg: str, point: BaselinePoint, frames: np.ndarray, intra_period: int,
                 workdir: str | os.PathLike[str] | None = None) -> BaselineResult:
    """Encode ``frames`` (T×H×W×3 uint8 RGB) with one baseline point, decode it back and
    measure the stream. ``intra_period``: an I-frame every N frames, -1 only the first."""
    t, h, w = _check_frames(frames)
    coded = code_stream(ffmpeg, point, t, _as_stdin(frames),
                        lambda name: encode_argv(ffmpeg, point, w, h, t, intra_period, name),
                        lambda name: decode_argv(ffmpeg, point.codec, name), workdir)
    decoded = _raw_to_frames(coded.raw, (t, h, w), f"{point.label} decode")
    return BaselineResult(decoded=decoded, stream_bytes=len(coded.data),
                          sha256=hashlib.sha256(coded.data).hexdigest(), units=coded.units,
                          encode_argv=coded.encode_argv, decode_argv=coded.decode_argv,
                          enc_seconds=coded.enc_seconds, dec_seconds=coded.dec_seconds)


def colour_roundtrip(ffmpeg: str, frames: np.ndarray) -> np.ndarray:
    """The frames through the baselines' colour conversion alone (RGB -> YUV 4:4:4 ->
    RGB, no coding): the best any baseline can score on this clip."""
    t, h, w = _check_frames(frames)
    to_yuv = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
              "-s", f"{w}x{h}", "-i", "pipe:0", "-vf", _TO_YUV, "-pix_fmt", PIX_FMT, "-f", "rawvideo", "pipe:1"]
    yuv = _run(to_yuv, "colour conversion to YUV", stdin=_as_stdin(frames))
    to_rgb = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", PIX_FMT,
              "-s", f"{w}x{h}", "-i", "pipe:0", "-vf", _TO_RGB, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    raw = _run(to_rgb, "colour conversion to RGB", stdin=yuv)
    return _raw_to_frames(raw, (t, h, w), "colour round trip")


def ffmpeg_psnr(ffmpeg: str, reference: np.ndarray, distorted: np.ndarray) -> dict[str, Any]:
    """ffmpeg's own ``psnr`` filter on two RGB clips (compared as planar GBR, lossless).

    Returns ``per_frame`` (its ``psnr_avg`` of each frame: PSNR of the MSE over the three
    planes, the same definition as our per-frame RGB PSNR) and ``average`` (its summary
    figure: PSNR of the MSE averaged over frames, which is *not* the DCVC convention of
    averaging per-frame PSNR). Used to pin our metric to ffmpeg's.
    """
    t, h, w = _check_frames(reference)
    if distorted.shape != reference.shape:
        raise ValueError(f"clips differ in shape: {reference.shape} vs {distorted.shape}")
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-psnr-") as tmp:
        folder = Path(tmp)
        np.ascontiguousarray(reference).tofile(folder / "ref.rgb")
        np.ascontiguousarray(distorted).tofile(folder / "dist.rgb")
        raw_in = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
        argv = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "info", *raw_in, "-i", "ref.rgb", *raw_in,
                "-i", "dist.rgb", "-lavfi",
                "[0:v]format=gbrp[a];[1:v]format=gbrp[b];[b][a]psnr,metadata=mode=print:file=meta.txt",
                "-f", "null", "-"]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=folder, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg psnr failed: {proc.stderr.strip()[-300:]}")
        per_frame = [float(line.split("=", 1)[1]) for line in (folder / "meta.txt").read_text().splitlines()
                     if line.startswith("lavfi.psnr.psnr_avg=")]
    summary = [line for line in proc.stderr.splitlines() if "PSNR" in line and "average:" in line]
    if len(per_frame) != t or not summary:
        raise RuntimeError(f"ffmpeg psnr reported {len(per_frame)} frames of {t} and no summary line")
    average = float(summary[-1].split("average:")[1].split()[0])
    return {"per_frame": per_frame, "average": average}


def describe_settings(intra_period: int, colour: str = "rgb") -> dict[str, Any]:
    """What every baseline result carries about how it was made."""
    structure = ("all intra (keyint=1)" if intra_period == 1 else
                 "low-delay P (bframes=0, -tune zerolatency, scenecut=0, "
                 + ("one I-frame)" if intra_period == -1 else f"an I-frame every {intra_period} frames)"))
    if colour == "yuv420":
        from dcvc_bench.eval.baselines_yuv import YUV_COLOUR_PATH, YUV_INTERNAL_BIT_DEPTH, YUV_PIX_FMT, YUV_REFS

        return {"colour_path": YUV_COLOUR_PATH, "pix_fmt": YUV_PIX_FMT, "internal_bit_depth": YUV_INTERNAL_BIT_DEPTH,
                "refs": YUV_REFS, "intra_period": intra_period, "structure": structure.replace("bframes=0", f"bframes=0, ref={YUV_REFS}"),
                "bits": "8 x size of the raw Annex-B elementary stream (no container); "
                        "x265 info SEI off (info=0), x264 SEI NAL units removed (filter_units=remove_types=6)"}
    return {"colour_path": COLOUR_PATH, "pix_fmt": PIX_FMT, "matrix": "bt709", "range": "limited",
            "intra_period": intra_period, "structure": structure,
            "bits": "8 x size of the raw Annex-B elementary stream (no container); "
                    "x265 info SEI off (info=0), x264 SEI NAL units removed (filter_units=remove_types=6)"}


def shell_display(argv: Sequence[str]) -> str:
    """The command as one copyable line (display only; commands run as argv lists)."""
    return shlex.join(list(argv))
