"""I-frame codecs: the first frame of every GOP, behind one interface.

Training, estimation eval and real coding all go through :class:`IFrameCodec`:

- ``estimate(x)`` gives the reconstruction and the bits a frame *would* cost. It is what
  the training loop and estimation eval use (fast, batched).
- ``encode(x)`` / ``decode(data, size)`` produce and read real bytes; real-coding eval
  counts ``8 * len(bytes)``.

Every codec is frozen: P-frame training never trains it, so ``estimate`` runs in eval
mode under ``torch.no_grad`` with autocast off (bits in fp16 would be wrong).

Codecs here:

- :class:`OpenCVCodec` — JPEG/WebP through ``cv2.imencode``. Its estimate *is* a real
  encode/decode, so estimated and real bits agree exactly. The offline default: no
  weights needed.
- :class:`CompressAICodec` — a CompressAI zoo architecture with zoo weights (from the
  torch hub cache only, never downloaded here), a local checkpoint, or random weights.

A VQ codec (``vqgan``/``rvq``, not in this version) fits the same interface: ``estimate``
returns uniform-prior bits (``n_indices * log2(codebook_size)``) and the decoded image,
``encode`` returns the packed indices, so callers need no change when it arrives.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import os
import pickle
import re
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dcvc_bench.errors import UserError

log = logging.getLogger(__name__)

I_FRAME_TYPES = ("opencv", "compressai")
PLANNED_I_FRAME_TYPES = ("vqgan", "rvq")  # accepted by the CLI's vocabulary, not built yet
RANDOM_WEIGHTS_WARNING = "I-frame codec has random weights; numbers are not meaningful"


@dataclass
class IFrameResult:
    """``x_hat``: B×3×H×W in [0, 1]; ``bits``: (B,) float, the cost of each sample."""

    x_hat: Tensor
    bits: Tensor


class IFrameCodec(abc.ABC):
    """A frozen image codec for the first frame of each GOP."""

    name: str

    @abc.abstractmethod
    def identity(self) -> str:
        """Stable string naming codec, settings and weights; stored in bitstream headers
        so a decoder can refuse a stream made with another I-frame codec."""

    @abc.abstractmethod
    def estimate(self, x: Tensor) -> IFrameResult:
        """B×3×H×W in [0, 1] -> reconstruction (clamped to [0, 1]) and bits per sample."""

    @abc.abstractmethod
    def encode(self, x: Tensor) -> bytes:
        """1×3×H×W in [0, 1] -> the real bitstream of that frame."""

    @abc.abstractmethod
    def decode(self, data: bytes, size: tuple[int, int]) -> Tensor:
        """Bytes from :meth:`encode` and the frame's (H, W) -> 1×3×H×W in [0, 1], on
        the CPU (the caller moves it). Raises ValueError on malformed data."""

    def check(self, data: bytes, size: tuple[int, int]) -> None:
        """Cheap checks of untrusted bytes as a frame of (H, W) ``size``, without decoding
        (a stream is checked whole before its first frame is decoded): raises ValueError.
        By default nothing; :meth:`decode` checks what it reads either way."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------- helpers


def _check_batch(x: Tensor, *, single: bool) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a B×3×H×W tensor, got {shape}")
    if single and x.shape[0] != 1:
        raise ValueError(f"encode takes one frame (1×3×H×W), got batch size {x.shape[0]}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"empty frame: {tuple(x.shape)}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return h, w


def hash_state_dict(state: dict[str, Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes: equal iff the weights are equal."""
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- OpenCV

_OPENCV_FORMATS = {
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
}


# ---- strict reading of untrusted JPEG/WebP payloads (the decode path of `dcvc-bench decode`)
#
# A frame payload is untrusted: its CRC detects damage, not forgery. Before OpenCV decodes
# it, its container structure is walked end to end (no bytes after it, one frame header,
# the size it declares) without decoding anything; while OpenCV decodes it, any message
# libjpeg prints ("Corrupt JPEG data: ...", which OpenCV only prints and then returns an
# image) makes the decode an error. Pillow is no way around this: it silences libjpeg's
# warnings too (in a test it raised on 1 of 200 bit-flipped JPEGs; libjpeg warned on 54).

_JPEG_SOF_HUFFMAN = {0xC0, 0xC1, 0xC2}   # baseline, extended, progressive: what libjpeg-turbo decodes
_JPEG_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SEGMENTS = {0xC4, 0xDB, 0xDD, 0xFE} | set(range(0xE0, 0xF0))  # DHT, DQT, DRI, COM, APPn
_JPEG_NEXT_MARKER = re.compile(rb"\xff(?!\x00)")  # in entropy-coded data, 0xFF 0x00 is a stuffed byte


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(H, W) of a JPEG whose marker structure is whole: SOI, segments whose lengths fit,
    one 8-bit 3-component Huffman frame header, scans whose entropy-coded data holds only
    restart markers (in order), and EOI as the last two bytes. ValueError otherwise."""
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream (no start-of-image marker)")
    size: tuple[int, int] | None = None
    scans, i = 0, 2
    while True:
        if i + 2 > n:
            raise ValueError("truncated JPEG stream (no end-of-image marker)")
        if data[i] != 0xFF:
            raise ValueError(f"malformed JPEG: expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        i += 2
        if marker == 0xD9:
            if size is None or not scans:
                raise ValueError("malformed JPEG: image ends before a frame header and a scan")
            if i != n:
                raise ValueError(f"malformed JPEG: {n - i} bytes after its end-of-image marker")
            return size
        if marker in _JPEG_SOF_OTHER:
            raise ValueError(f"unsupported JPEG coding process (frame marker 0x{marker:02x})")
        if marker not in _JPEG_SEGMENTS and marker not in _JPEG_SOF_HUFFMAN and marker != 0xDA:
            raise ValueError(f"malformed JPEG: unexpected marker 0x{marker:02x}")
        if i + 2 > n:
            raise ValueError("truncated JPEG stream")
        (seg_len,) = struct.unpack(">H", data[i:i + 2])
        if seg_len < 2 or i + seg_len > n:
            raise ValueError(f"malformed JPEG: segment 0x{marker:02x} of {seg_len} bytes does not fit")
        body, i = data[i + 2:i + seg_len], i + seg_len
        if marker in _JPEG_SOF_HUFFMAN:
            if size is not None:
                raise ValueError("malformed JPEG: a second frame header")
            if len(body) < 6:
                raise ValueError("malformed JPEG: short frame header")
            precision, h, w, components = struct.unpack(">BHHB", body[:6])
            if len(body) != 6 + 3 * components or precision != 8 or components != 3 or not (h and w):
                raise ValueError(f"unsupported JPEG frame header ({precision}-bit, {components} components, "
                                 f"{w}x{h}); the OpenCV codec writes 8-bit 3-component frames")
            size = (h, w)
        elif marker == 0xDA:  # start of scan: entropy-coded data up to the next marker other than RSTn
            if size is None:
                raise ValueError("malformed JPEG: a scan before the frame header")
            scans += 1
            restart = 0
            while True:
                found = _JPEG_NEXT_MARKER.search(data, i)
                if found is None or found.start() + 1 >= n:
                    raise ValueError("truncated JPEG stream (scan data has no end)")
                code = data[found.start() + 1]
                if 0xD0 <= code <= 0xD7:
                    if code != 0xD0 + restart:
                        raise ValueError(f"corrupted JPEG: restart marker RST{code - 0xD0} where RST{restart} belongs")
                    restart = (restart + 1) % 8
                    i = found.start() + 2
                    continue
                i = found.start()
                break


def _webp_size(data: bytes) -> tuple[int, int]:
    """(H, W) from a WebP's first chunk, after checking that its RIFF chunks fill the file
    exactly; ValueError otherwise."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP stream")
    (riff_len,) = struct.unpack("<I", data[4:8])
    if riff_len + 8 != len(data):
        raise ValueError(f"truncated or padded WebP: header says {riff_len + 8} bytes, got {len(data)}")
    i = 12
    while i < len(data):
        if i + 8 > len(data):
            raise ValueError("malformed WebP: truncated chunk header")
        fourcc, (chunk_len,) = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])
        i += 8 + chunk_len + (chunk_len & 1)
        if i > len(data):
            raise ValueError(f"malformed WebP: chunk {fourcc!r} of {chunk_len} bytes does not fit")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a" or data[20] & 1:
            raise ValueError("malformed WebP: not a VP8 key frame")
        w, h = struct.unpack("<HH", data[26:30])
        return h & 0x3FFF, w & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("malformed WebP: bad VP8L signature")
        (bits,) = struct.unpack("<I", data[21:25])
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return h, w
    raise ValueError(f"malformed WebP: unknown chunk {chunk!r}")


@contextlib.contextmanager
def _native_messages() -> Iterator[list[str]]:
    """Collect what native code prints on stderr (file descriptor 2) meanwhile: libjpeg
    reports corrupt data there and carries on. Yields a list filled on exit."""
    messages: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield messages
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                messages.extend(line.strip() for line in sink.read().decode("utf-8", "replace").splitlines()
                                if line.strip())
    finally:
        os.close(saved)


class OpenCVCodec(IFrameCodec):
    """JPEG or WebP via OpenCV. ``estimate`` really encodes and decodes every sample, so
    its bits are the real size (8·len(bytes)) and its x_hat the real reconstruction.

    The frame is quantised to 8-bit RGB before coding (stored BGR, OpenCV's order).
    """

    def __init__(self, fmt: str = "jpeg", quality: int = 90):
        if fmt not in _OPENCV_FORMATS:
            raise UserError(f"OpenCV I-frame format {fmt!r} unknown; use one of {', '.join(_OPENCV_FORMATS)}")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise UserError(f"OpenCV I-frame quality must be an integer in 1..100, got {quality!r}")
        self.fmt = fmt
        self.quality = quality
        self.name = f"opencv-{fmt}-q{quality}"

    def identity(self) -> str:
        # The bytes are a standard JPEG/WebP file: format and quality define the stream;
        # any conforming decoder reads it, so the library version is not part of it.
        return self.name

    def _encode_one(self, img: Tensor) -> bytes:
        """3×H×W float -> file bytes."""
        rgb = (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        bgr = np.ascontiguousarray(rgb.permute(1, 2, 0).cpu().numpy()[:, :, ::-1])
        ext, flag = _OPENCV_FORMATS[self.fmt]
        ok, buf = cv2.imencode(ext, bgr, [int(flag), self.quality])
        if not ok:
            raise RuntimeError(f"cv2.imencode({ext}) failed for a {bgr.shape} frame")
        return buf.tobytes()

    def check(self, data: bytes, size: tuple[int, int]) -> None:
        h, w = _check_size(size)
        header_size = _jpeg_size(data) if self.fmt == "jpeg" else _webp_size(data)
        if header_size != (h, w):
            raise ValueError(f"{self.fmt} stream is {header_size[0]}×{header_size[1]}, expected {h}×{w}")

    def _decode_one(self, data: bytes, size: tuple[int, int], strict: bool = False) -> Tensor:
        """File bytes -> 3×H×W float. The container is checked (:meth:`check`) before
        decoding, so a malformed stream never makes OpenCV allocate an arbitrary image;
        ``strict`` (untrusted bytes) also makes anything libjpeg reports an error."""
        h, w = size
        self.check(data, size)
        with (_native_messages() if strict else contextlib.nullcontext([])) as messages:
            bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if messages:
            raise ValueError(f"corrupt {self.fmt} data ({self.fmt} decoder: {messages[0][:200]})")
        if bgr is None or bgr.shape != (h, w, 3):
            raise ValueError(f"cannot decode {self.fmt} stream of {len(data)} bytes")
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)
        return rgb.float() / 255.0

    @torch.no_grad()
    def estimate(self, x: Tensor) -> IFrameResult:
        _check_batch(x, single=False)
        size = (x.shape[2], x.shape[3])
        x_hats, bits = [], []
        for img in x:
            data = self._encode_one(img)
            x_hats.append(self._decode_one(data, size))
            bits.append(8.0 * len(data))
        x_hat = torch.stack(x_hats).to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
        return IFrameResult(x_hat=x_hat, bits=torch.tensor(bits, dtype=torch.float32, device=x.device))

    @torch.no_grad()
    def encode(self, x: Tensor) -> bytes:
        _check_batch(x, single=True)
        return self._encode_one(x[0])

    @torch.no_grad()
    def decode(self, data: bytes, size: tuple[int, int]) -> Tensor:
        return self._decode_one(bytes(data), _check_size(size), strict=True).unsqueeze(0)


# --------------------------------------------------------------------------- CompressAI

PAD_MULTIPLE = 64  # every CompressAI zoo model downsamples by 64 at most (hyperprior)
_STREAM_VERSION = 1
_HEADER = struct.Struct(">BHHB")  # version, latent h, latent w, number of string groups
_U32 = struct.Struct(">I")


def _compressai_tables():
    """(valid qualities per model, pretrained-weight URLs) from the installed zoo."""
    from compressai.zoo import image as zoo_image
    from compressai.zoo import image_models

    # Left out: the "-vbr" models take a rate parameter in forward/compress (not a
    # fixed-quality codec), and "bmshj2018-factorized-relu", which the compressai 1.2.x zoo
    # builds as the GDN model (so the name would lie) and has no weights for.
    qualities = {
        name: sorted(zoo_image.cfgs[name])
        for name in image_models
        if not name.endswith("-vbr") and name != "bmshj2018-factorized-relu" and name in zoo_image.cfgs
    }
    return qualities, zoo_image.model_urls


def compressai_model_names() -> list[str]:
    """Names accepted by :class:`CompressAICodec` (``--i_frame_model_name``)."""
    return sorted(_compressai_tables()[0])


def zoo_weight_file(model_name: str, quality: int, metric: str = "mse") -> Path:
    """Where the CompressAI zoo keeps (and torch hub caches) this model's weights:
    ``torch.hub.get_dir()/checkpoints/<file name of the zoo URL>``."""
    _, urls = _compressai_tables()
    try:
        url = urls[model_name][metric][quality]
    except KeyError:
        raise UserError(
            f"the CompressAI zoo has no pretrained {model_name} quality {quality} ({metric}) weights; "
            "pass a local state dict with --i_frame_checkpoint instead"
        ) from None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _load_state_dict_file(path: Path, what: str) -> dict[str, Tensor]:
    """Load a state dict as data only (``weights_only=True``); accept it plain or nested
    under ``state_dict`` / ``model_state_dict``. Anything else is a UserError."""
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{what} {path} cannot be loaded as plain weights (weights_only=True refuses pickled code "
            f"and unknown objects): {first}"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise UserError(
            f"{what} {path} is not a state dict (a mapping of names to tensors, "
            "plain or under 'state_dict'/'model_state_dict')"
        )
    return obj


class CompressAICodec(IFrameCodec):
    """A CompressAI image model (default cheng2020-anchor, quality 6, MSE-optimised).

    Weights, in order of precedence: ``checkpoint`` (a local state dict), ``pretrained``
    (zoo weights from the torch hub cache; never downloaded here), else random weights
    with a warning. Frames are padded (replicate) to a multiple of 64 and cropped back;
    the padded area is coded, so the bits are the real cost of the frame.

    ``estimate`` uses the forward pass in eval mode (rounding, no noise) and counts
    -log2 of all latent likelihoods. For hyperprior/factorized models its x_hat is the
    real decoded frame; for the autoregressive ones (mbt2018, cheng2020-*) the forward
    pass rounds ``y`` without the context-model means, so the real decode differs
    slightly — real-coding eval uses :meth:`encode`/:meth:`decode`.
    """

    def __init__(
        self,
        model_name: str = "cheng2020-anchor",
        quality: int = 6,
        pretrained: bool = False,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
    ):
        from compressai.zoo import image_models
        from compressai.zoo import load_state_dict as zoo_rename_keys

        qualities, _ = _compressai_tables()
        if model_name not in qualities:
            raise UserError(
                f"unknown CompressAI I-frame model {model_name!r}; valid names: {', '.join(sorted(qualities))}"
            )
        valid_q = qualities[model_name]
        if isinstance(quality, bool) or not isinstance(quality, int) or quality not in valid_q:
            raise UserError(
                f"--i_frame_quality {quality!r} out of range for {model_name}: use {valid_q[0]}..{valid_q[-1]}"
            )
        self.model_name = model_name
        self.quality = quality
        self.name = f"compressai-{model_name}-q{quality}"
        self.device = torch.device(device)

        model = image_models[model_name](quality=quality, pretrained=False)
        if checkpoint is not None:
            path = Path(checkpoint).expanduser()
            state = _load_state_dict_file(path, "I-frame checkpoint")
            self._load_weights(model, zoo_rename_keys(state), path)
            self.weights = f"checkpoint:{path}"
            if pretrained:
                log.info("I-frame codec: --i_frame_checkpoint %s given, zoo weights not used", path)
        elif pretrained:
            path = zoo_weight_file(model_name, quality)
            if not path.is_file():
                raise UserError(
                    f"pretrained CompressAI weights for {model_name} quality {quality} are not on this machine "
                    f"and are never downloaded here: place the file {path.name} in {path.parent} "
                    "(or pass --i_frame_checkpoint PATH)"
                )
            state = _load_state_dict_file(path, "CompressAI zoo weights")
            self._load_weights(model, zoo_rename_keys(state), path)
            self.weights = f"zoo:{path.name}"
        else:
            log.warning("%s (%s)", RANDOM_WEIGHTS_WARNING, self.name)
            self.weights = "random"

        model = model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        model.update(force=True)  # entropy-coder tables, once; encode/decode rely on them
        self.model = model
        # Hash after update(): the identity then covers exactly what the coder uses.
        self._identity = f"{self.name}:sha256:{hash_state_dict(model.state_dict())}"
        # Models with a hyperprior send [y, z] strings and the z shape (1/64 of the
        # padded frame); the factorized ones send [y] and the y shape (1/16).
        self._has_hyperprior = hasattr(model, "h_a")
        self._n_groups = 2 if self._has_hyperprior else 1
        self._shape_down = 64 if self._has_hyperprior else 16

    @staticmethod
    def _load_weights(model: torch.nn.Module, state: dict[str, Tensor], path: Path) -> None:
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(first[:3])[:400]
            raise UserError(f"{path} does not fit {type(model).__name__} at this quality: {detail}") from None

    def identity(self) -> str:
        return self._identity

    # --- padding

    @staticmethod
    def _pad(x: Tensor) -> Tensor:
        h, w = x.shape[2], x.shape[3]
        ph, pw = (PAD_MULTIPLE - h % PAD_MULTIPLE) % PAD_MULTIPLE, (PAD_MULTIPLE - w % PAD_MULTIPLE) % PAD_MULTIPLE
        if ph == 0 and pw == 0:
            return x
        return F.pad(x, (0, pw, 0, ph), mode="replicate")

    def _padded_latent_shape(self, h: int, w: int) -> tuple[int, int]:
        hp = h + (PAD_MULTIPLE - h % PAD_MULTIPLE) % PAD_MULTIPLE
        wp = w + (PAD_MULTIPLE - w % PAD_MULTIPLE) % PAD_MULTIPLE
        return hp // self._shape_down, wp // self._shape_down

    def _prepare(self, x: Tensor) -> Tensor:
        return self._pad(x.detach().to(self.device, torch.float32).clamp(0, 1))

    # --- estimation

    @torch.no_grad()
    def estimate(self, x: Tensor) -> IFrameResult:
        _check_batch(x, single=False)
        h, w = x.shape[2], x.shape[3]
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.model(self._prepare(x))
        bits = sum(
            -torch.log2(lik.float()).flatten(1).sum(dim=1) for lik in out["likelihoods"].values()
        )
        x_hat = out["x_hat"][:, :, :h, :w].clamp(0, 1)
        return IFrameResult(x_hat=x_hat.to(x.device), bits=bits.to(x.device, torch.float32))

    # --- real coding
    #
    # Stream layout (big endian):
    #   u8 version | u16 latent_h | u16 latent_w | u8 n_groups
    #   u32 length × n_groups | u32 crc32(payload) | payload (the strings, concatenated)
    # The CRC keeps corrupted data away from the rANS decoder.

    @torch.no_grad()
    def encode(self, x: Tensor) -> bytes:
        _check_batch(x, single=True)
        h, w = x.shape[2], x.shape[3]
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.model.compress(self._prepare(x))
        strings = [group[0] for group in out["strings"]]
        shape = tuple(int(s) for s in out["shape"])
        if len(strings) != self._n_groups or shape != self._padded_latent_shape(h, w):
            raise RuntimeError(f"{self.name}: unexpected compress() output {len(strings)} groups, shape {shape}")
        if max(shape) > 0xFFFF:
            raise ValueError(f"frame {h}×{w} is too large for the I-frame stream format")
        payload = b"".join(strings)
        header = _HEADER.pack(_STREAM_VERSION, shape[0], shape[1], len(strings))
        lengths = b"".join(_U32.pack(len(s)) for s in strings)
        return header + lengths + _U32.pack(zlib.crc32(payload)) + payload

    def _parse(self, data: bytes, size: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]:
        """Validate the stream against the expected frame size before touching any length."""
        if len(data) < _HEADER.size:
            raise ValueError(f"I-frame stream too short ({len(data)} bytes)")
        version, lat_h, lat_w, n_groups = _HEADER.unpack_from(data, 0)
        if version != _STREAM_VERSION:
            raise ValueError(f"unknown I-frame stream version {version}")
        expected = self._padded_latent_shape(*size)
        if (lat_h, lat_w) != expected:
            raise ValueError(f"I-frame stream latent {lat_h}×{lat_w} does not match a {size[0]}×{size[1]} frame")
        if n_groups != self._n_groups:
            raise ValueError(f"I-frame stream has {n_groups} string groups, {self.name} uses {self._n_groups}")
        offset = _HEADER.size
        if len(data) < offset + _U32.size * (n_groups + 1):
            raise ValueError("I-frame stream truncated in its header")
        lengths = [_U32.unpack_from(data, offset + _U32.size * i)[0] for i in range(n_groups)]
        offset += _U32.size * n_groups
        (crc,) = _U32.unpack_from(data, offset)
        offset += _U32.size
        if sum(lengths) != len(data) - offset:
            raise ValueError(
                f"I-frame stream length mismatch: header says {sum(lengths)} payload bytes, got {len(data) - offset}"
            )
        payload = data[offset:]
        if zlib.crc32(payload) != crc:
            raise ValueError("I-frame stream checksum mismatch (corrupted data)")
        strings, pos = [], 0
        for n in lengths:
            strings.append(payload[pos : pos + n])
            pos += n
        return strings, expected

    @torch.no_grad()
    def decode(self, data: bytes, size: tuple[int, int]) -> Tensor:
        h, w = _check_size(size)
        strings, shape = self._parse(bytes(data), (h, w))
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.model.decompress([[s] for s in strings], torch.Size(shape))
        return out["x_hat"][:, :, :h, :w].clamp(0, 1).cpu()


# --------------------------------------------------------------------------- factory


def build_iframe_codec(
    i_frame_type: str,
    *,
    model_name: str = "cheng2020-anchor",
    quality: int = 6,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    opencv_format: str = "jpeg",
    opencv_quality: int = 90,
    device: str | torch.device = "cpu",
) -> IFrameCodec:
    """The I-frame codec for ``--i_frame_type``.

    ``model_name``/``quality``/``pretrained``/``checkpoint``/``device`` apply to
    ``compressai`` (quality = zoo quality index, e.g. 1..6 for cheng2020). The OpenCV
    codec takes its own ``opencv_format`` and ``opencv_quality`` (1..100) because a zoo
    index and a JPEG quality are different scales.
    """
    if i_frame_type == "opencv":
        return OpenCVCodec(fmt=opencv_format, quality=opencv_quality)
    if i_frame_type == "compressai":
        return CompressAICodec(
            model_name=model_name, quality=quality, pretrained=pretrained, checkpoint=checkpoint, device=device
        )
    if i_frame_type in PLANNED_I_FRAME_TYPES:
        raise UserError(f"--i_frame_type {i_frame_type}: not available in this version; use opencv or compressai")
    raise UserError(f"unknown --i_frame_type {i_frame_type!r}; use one of {', '.join(I_FRAME_TYPES)}")


__all__ = [
    "I_FRAME_TYPES",
    "PLANNED_I_FRAME_TYPES",
    "RANDOM_WEIGHTS_WARNING",
    "CompressAICodec",
    "IFrameCodec",
    "IFrameResult",
    "OpenCVCodec",
    "build_iframe_codec",
    "compressai_model_names",
    "zoo_weight_file",
]
