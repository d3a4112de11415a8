"""The JSON architecture of a VQGAN / RVQ-VQGAN I-frame codec (the seed's ``--vqgan_config``).

One file fully describes the network and its quantiser; the checkpoint stores the same
dict (with every default filled in), so a checkpoint can be checked against the file it is
used with. Keys (taming-transformers' names where it has one)::

    {
      "family": "rvq",              # "vqgan" (one codebook) or "rvq" (residual codebooks)
      "resolution": 256,            # training resolution; attn_resolutions refer to it
      "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2,
      "attn_resolutions": [16],     # self-attention where resolution / 2**level is listed
      "z_channels": 256, "embed_dim": 256,
      "codebook_size": 1024,        # K, a power of two (2..32768)
      "num_quantizers": 8,          # N residual codebooks (required for rvq; 1 for vqgan)
      "dropout": 0.0, "norm_groups": 32,   # optional
      "quantizer": {                # optional, vector-quantize-pytorch options
        "decay": 0.99, "commitment_weight": 0.25, "kmeans_init": true, "kmeans_iters": 10,
        "threshold_ema_dead_code": 2, "rotation_trick": false,
        "quantize_dropout": true, "quantize_dropout_cutoff_index": 0    # rvq only
      }
    }

Downsampling is f = 2**(len(ch_mult) - 1): [1, 2, 2, 4] gives f=8 (32×32 indices for a
256×256 frame), [1, 1, 2, 2, 4] f=16 (16×16). Every problem is one :class:`UserError` line
naming the file and the key. Torch-free.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dcvc_bench.errors import UserError

FAMILIES = ("vqgan", "rvq")
#: Configs shipped with the package: taming's f=16 and f=8 VQGANs, the seed's 8-layer
#: RVQ-VQGAN (f=16), and tiny ones for CPU tests and smoke runs.
CONFIG_DIR = Path(__file__).with_name("vq_configs")
#: rANS tables use 16-bit precision: every index of a codebook needs at least one count.
MAX_CODEBOOK_SIZE = 1 << 15
#: The payload stores the depth in 7 bits.
MAX_QUANTIZERS = 64
MAX_DOWNSAMPLING_LEVELS = 7  # f <= 128

_REQUIRED = ("family", "resolution", "ch", "ch_mult", "num_res_blocks", "attn_resolutions",
             "z_channels", "embed_dim", "codebook_size")
_OPTIONAL = {"num_quantizers": 1, "dropout": 0.0, "norm_groups": 32}
_QUANTIZER_COMMON = {"decay": 0.99, "commitment_weight": 0.25, "kmeans_init": True, "kmeans_iters": 10,
                     "threshold_ema_dead_code": 2, "rotation_trick": False}
_QUANTIZER_RVQ = {"quantize_dropout": True, "quantize_dropout_cutoff_index": 0}


@dataclass(frozen=True)
class QuantizerOptions:
    """vector-quantize-pytorch settings: EMA codebook updates (``decay``), k-means
    initialisation, dead-code expiry, and for RVQ the quantiser dropout that trains every
    prefix of layers as a codec of its own. Gradients reach the encoder straight through
    the quantiser (taming's choice) unless ``rotation_trick`` (the library's default,
    which on brief CPU runs kept the encoder at the mean-colour plateau)."""

    decay: float = 0.99
    commitment_weight: float = 0.25
    kmeans_init: bool = True
    kmeans_iters: int = 10
    threshold_ema_dead_code: int = 2
    rotation_trick: bool = False
    quantize_dropout: bool = True
    quantize_dropout_cutoff_index: int = 0


@dataclass(frozen=True)
class VQConfig:
    family: str
    resolution: int
    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    z_channels: int
    embed_dim: int
    codebook_size: int
    num_quantizers: int = 1
    dropout: float = 0.0
    norm_groups: int = 32
    quantizer: QuantizerOptions = field(default_factory=QuantizerOptions)

    @property
    def downsampling(self) -> int:
        """f: the side of the pixel block one index stands for."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def residual(self) -> bool:
        """Residual codebooks (``ResidualVQ``) rather than one (``VectorQuantize``)."""
        return self.family == "rvq"

    @property
    def bits_per_index(self) -> float:
        return math.log2(self.codebook_size)

    def to_dict(self) -> dict[str, Any]:
        """Every key, defaults filled in: what a checkpoint stores and is compared by."""
        d = asdict(self)
        d["ch_mult"] = list(self.ch_mult)
        d["attn_resolutions"] = list(self.attn_resolutions)
        if self.family != "rvq":
            for key in _QUANTIZER_RVQ:
                d["quantizer"].pop(key)
        return d

    def to_json(self) -> str:
        """Canonical text (sorted keys): equal configs give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, path: str | Path, what: str = "VQ config") -> VQConfig:
        """Read and validate a config file; ``what`` names it in errors (e.g. the flag)."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{what} {path} does not exist; pass the JSON file of the codec's architecture") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{what} {path} cannot be read: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{what} {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg})") from None
        return cls.from_dict(data, where=f"{what} {path}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "VQ config") -> VQConfig:
        """Validate ``data``; the first problem is one line naming ``where`` and the key."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object with keys {', '.join(_REQUIRED)}")
        family = data.get("family")
        if family not in FAMILIES:
            if "family" not in data:
                raise UserError(f"{where}: missing key 'family' (one of {', '.join(FAMILIES)})")
            raise UserError(f"{where}: 'family' must be one of {', '.join(FAMILIES)}, got {family!r}")
        known = set(_REQUIRED) | set(_OPTIONAL) | {"quantizer"}
        _refuse_unknown(data, known, where, "")
        required = _REQUIRED + (("num_quantizers",) if family == "rvq" else ())
        for key in required:
            if key not in data:
                raise UserError(f"{where}: missing key {key!r}")
        quantizer = data.get("quantizer", {})
        if not isinstance(quantizer, dict):
            raise UserError(f"{where}: 'quantizer' must be an object of quantizer options")
        q_known = dict(_QUANTIZER_COMMON, **(_QUANTIZER_RVQ if family == "rvq" else {}))
        _refuse_unknown(quantizer, set(q_known), where, "quantizer.",
                        hint=" (quantize_dropout* apply to family 'rvq' only)" if family == "vqgan" else "")

        c = _Checker(where)
        ch_mult = c.int_list(data, "ch_mult", minimum=1, nonempty=True)
        if len(ch_mult) > MAX_DOWNSAMPLING_LEVELS + 1:
            raise UserError(f"{where}: 'ch_mult' has {len(ch_mult)} levels; at most {MAX_DOWNSAMPLING_LEVELS + 1} "
                            f"(f = 2**(levels-1) <= {2 ** MAX_DOWNSAMPLING_LEVELS})")
        num_quantizers = c.integer(data, "num_quantizers", 1, MAX_QUANTIZERS, default=1)
        if family == "vqgan" and num_quantizers != 1:
            raise UserError(f"{where}: family 'vqgan' has one codebook ('num_quantizers' 1, got {num_quantizers}); "
                            "use family 'rvq' for residual codebooks")
        q = QuantizerOptions(
            decay=c.number(quantizer, "decay", 0.0, 1.0, _QUANTIZER_COMMON["decay"], prefix="quantizer."),
            commitment_weight=c.number(quantizer, "commitment_weight", 0.0, math.inf,
                                       _QUANTIZER_COMMON["commitment_weight"], prefix="quantizer."),
            kmeans_init=c.flag(quantizer, "kmeans_init", _QUANTIZER_COMMON["kmeans_init"], prefix="quantizer."),
            kmeans_iters=c.integer(quantizer, "kmeans_iters", 1, 1000, _QUANTIZER_COMMON["kmeans_iters"],
                               prefix="quantizer."),
            threshold_ema_dead_code=c.integer(quantizer, "threshold_ema_dead_code", 0, 1 << 30,
                                          _QUANTIZER_COMMON["threshold_ema_dead_code"], prefix="quantizer."),
            rotation_trick=c.flag(quantizer, "rotation_trick", _QUANTIZER_COMMON["rotation_trick"],
                                  prefix="quantizer."),
            quantize_dropout=c.flag(quantizer, "quantize_dropout", _QUANTIZER_RVQ["quantize_dropout"],
                                    prefix="quantizer."),
            quantize_dropout_cutoff_index=c.integer(quantizer, "quantize_dropout_cutoff_index", 0,
                                                max(num_quantizers - 1, 0), 0, prefix="quantizer."),
        )
        if family == "vqgan":
            q = QuantizerOptions(**{**asdict(q), **_QUANTIZER_RVQ, "quantize_dropout": False})
        config = cls(
            family=family,
            resolution=c.integer(data, "resolution", 1, 1 << 16),
            ch=c.integer(data, "ch", 1, 1 << 14),
            ch_mult=tuple(ch_mult),
            num_res_blocks=c.integer(data, "num_res_blocks", 1, 64),
            attn_resolutions=tuple(c.int_list(data, "attn_resolutions", minimum=1)),
            z_channels=c.integer(data, "z_channels", 1, 1 << 14),
            embed_dim=c.integer(data, "embed_dim", 1, 1 << 14),
            codebook_size=c.integer(data, "codebook_size", 2, MAX_CODEBOOK_SIZE),
            num_quantizers=num_quantizers,
            dropout=c.number(data, "dropout", 0.0, 1.0, 0.0),
            norm_groups=c.integer(data, "norm_groups", 1, 1 << 14, default=32),
            quantizer=q,
        )
        k = config.codebook_size
        if k & (k - 1):
            raise UserError(f"{where}: 'codebook_size' must be a power of two (a frame whose indices rANS cannot "
                            f"shrink is stored at log2 K bits each), got {k}; use {1 << (k.bit_length() - 1)} "
                            f"or {1 << k.bit_length()}")
        widths = [config.ch] + [config.ch * m for m in config.ch_mult]
        bad = [w for w in widths if w % config.norm_groups]
        if bad:
            raise UserError(f"{where}: GroupNorm with 'norm_groups' {config.norm_groups} needs every width "
                            f"(ch × ch_mult: {sorted(set(widths))}) divisible by it; {bad[0]} is not")
        return config


def _refuse_unknown(data: dict, known: set[str], where: str, prefix: str, hint: str = "") -> None:
    for key in data:
        if key not in known:
            raise UserError(f"{where}: unknown key '{prefix}{key}'{hint}; known keys: {', '.join(sorted(known))}")


class _Checker:
    """Typed reads with one-line errors naming the key."""

    def __init__(self, where: str):
        self.where = where

    def _fail(self, key: str, expected: str, value: Any) -> UserError:
        return UserError(f"{self.where}: {key!r} must be {expected}, got {json.dumps(value)}")

    def integer(self, d: dict, key: str, lo: int, hi: int, default: int | None = None, prefix: str = "") -> int:
        value = d.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self._fail(prefix + key, f"an integer in {lo}..{hi}", value)
        return value

    def number(self, d: dict, key: str, lo: float, hi: float, default: float, prefix: str = "") -> float:
        value = d.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self._fail(prefix + key, f"a number in {lo}..{hi}", value)
        return float(value)

    def flag(self, d: dict, key: str, default: bool, prefix: str = "") -> bool:
        value = d.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(prefix + key, "true or false", value)
        return value

    def int_list(self, d: dict, key: str, minimum: int, nonempty: bool = False) -> list[int]:
        value = d.get(key)
        if (not isinstance(value, list) or (nonempty and not value)
                or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value)):
            what = "a non-empty list" if nonempty else "a list"
            raise self._fail(key, f"{what} of integers >= {minimum}", value)
        return value


__all__ = ["CONFIG_DIR", "FAMILIES", "MAX_CODEBOOK_SIZE", "MAX_QUANTIZERS", "QuantizerOptions", "VQConfig"]
