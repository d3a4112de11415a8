"""CompressAI I-frame codec: a CompressAI zoo architecture with zoo weights (from the
torch hub cache only, never downloaded here), a local checkpoint, or random weights."""

from __future__ import annotations

import logging
import os
import pickle
import struct
import zlib
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor

from dcvc_bench.curriculum.iframe_spec import CompressAISpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.base import (
    RANDOM_WEIGHTS_WARNING,
    IFrameCodec,
    IFrameResult,
    check_batch,
    check_size,
    hash_state_dict,
)
from dcvc_bench.models.iframe.vq_checkpoint import vq_checkpoint_family

log = logging.getLogger(__name__)

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
    family = vq_checkpoint_family(obj)
    if family is not None:
        raise UserError(
            f"{what} {path} is a VQ checkpoint ({family}), not CompressAI weights; use --i_frame_type {family} "
            f"--vqgan_config <its JSON config> --vqgan_checkpoint {path} (curriculum: [i_frame] type = \"{family}\")"
        )
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

    def __init__(self, spec: CompressAISpec, device: str | torch.device = "cpu"):
        from compressai.zoo import image_models
        from compressai.zoo import load_state_dict as zoo_rename_keys

        if not isinstance(spec, CompressAISpec):
            raise TypeError(f"CompressAICodec takes a CompressAISpec, got {type(spec).__name__}")
        model_name, quality, pretrained, checkpoint = spec.model_name, spec.quality, spec.pretrained, spec.checkpoint
        qualities, _ = _compressai_tables()
        if model_name not in qualities:
            raise UserError(
                f"unknown CompressAI I-frame model {model_name!r}; valid names: {', '.join(sorted(qualities))}"
            )
        valid_q = qualities[model_name]
        if quality not in valid_q:
            raise UserError(
                f"I-frame quality {quality!r} out of range for {model_name}: use {valid_q[0]}..{valid_q[-1]}"
            )
        self.spec = spec
        self.model_name = model_name
        self.quality = quality
        self.name = spec.label
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
        # name = model and quality (the spec fields that shape the stream) + the weights'
        # hash; where the weights came from (pretrained/checkpoint) is covered by the hash.
        return self._identity

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    # --- training

    def trainable(self) -> torch.nn.Module:
        """The zoo model itself (its ``aux_loss()`` trains the entropy bottleneck)."""
        return self.model

    def training_forward(self, x: Tensor) -> dict[str, Tensor]:
        """The zoo model's forward pass (noisy quantisation in train mode), autocast off:
        ``x_hat`` (cropped back, not clamped), ``bits`` = -log2 of every latent likelihood
        per sample, ``aux_loss`` = the entropy bottleneck's quantile loss."""
        check_batch(x, single=False)
        h, w = x.shape[2], x.shape[3]
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.model(self._pad(x.to(self.device, torch.float32)))
            bits = sum(-torch.log2(lik).flatten(1).sum(dim=1) for lik in out["likelihoods"].values())
            aux = self.model.aux_loss()
        return {"x_hat": out["x_hat"][:, :, :h, :w], "bits": bits, "aux_loss": aux}

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
        check_batch(x, single=False)
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
        check_batch(x, single=True)
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
        h, w = check_size(size)
        strings, shape = self._parse(bytes(data), (h, w))
        with torch.autocast(device_type=self.device.type, enabled=False):
            out = self.model.decompress([[s] for s in strings], torch.Size(shape))
        return out["x_hat"][:, :, :h, :w].clamp(0, 1).cpu()


def build(spec: CompressAISpec, device: str = "cpu") -> CompressAICodec:
    """The registry's builder."""
    return CompressAICodec(spec, device=device)
