"""VQGAN and RVQ-VQGAN networks (taming-transformers' architecture), quantised by
vector-quantize-pytorch.

- Encoder: conv_in, then per level ``num_res_blocks`` ResNet blocks (GroupNorm, swish,
  3×3 convs) with self-attention where the level's resolution is in
  ``attn_resolutions``, a stride-2 downsampling between levels; a middle of ResNet,
  attention, ResNet at the lowest resolution; GroupNorm, swish, conv_out to
  ``z_channels``. The decoder mirrors it (``num_res_blocks + 1`` blocks per level,
  nearest-neighbour upsampling). 1×1 convs map ``z_channels`` <-> ``embed_dim``.
- Quantiser: ``VectorQuantize`` (one codebook) or ``ResidualVQ`` with
  ``quantize_dropout`` (residual codebooks): EMA codebooks, k-means init, dead-code expiry.

Frames are in [0, 1] outside and [-1, 1] inside (taming's convention). A frame of any size
is replicate-padded to a multiple of f and cropped back, so the index grid of an H×W
frame is ceil(H/f)×ceil(W/f).

Indices are ``B×L×h×w`` int64 (L = layers used). :meth:`VQGAN.decode_indices` is the one
path from indices to pixels, used by estimation and by the real decoder alike, so both
give the same pixels bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcvc_bench.models.iframe.vq_config import VQConfig


def pad_to_multiple(x: Tensor, f: int) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % f, -w % f
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def grid_size(height: int, width: int, f: int) -> tuple[int, int]:
    """The index grid of a height×width frame: ceil(H/f) × ceil(W/f)."""
    return -(-height // f), -(-width // f)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=1e-6)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions of a feature map."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(c)) v
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric pad: exact halving of even sides


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module], resample: nn.Module | None):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self.resample = resample if resample is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for i, block in enumerate(self.block):
            x = block(x)
            if self.attn:
                x = self.attn[i](x)
        return self.resample(x)


class _Middle(nn.Module):
    def __init__(self, channels: int, groups: int, dropout: float):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups, dropout)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, groups, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        g, mult = cfg.norm_groups, (1,) + tuple(cfg.ch_mult)
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        levels, res = [], cfg.resolution
        for i in range(len(cfg.ch_mult)):
            c_in, c_out = cfg.ch * mult[i], cfg.ch * mult[i + 1]
            blocks = [ResnetBlock(c_in if j == 0 else c_out, c_out, g, cfg.dropout) for j in range(cfg.num_res_blocks)]
            attns = [AttnBlock(c_out, g) for _ in blocks] if res in cfg.attn_resolutions else []
            last = i == len(cfg.ch_mult) - 1
            levels.append(_Level(blocks, attns, None if last else Downsample(c_out)))
            res //= 1 if last else 2
        self.down = nn.ModuleList(levels)
        c = cfg.ch * cfg.ch_mult[-1]
        self.mid = _Middle(c, g, cfg.dropout)
        self.norm_out = nn.GroupNorm(g, c, eps=1e-6)
        self.conv_out = nn.Conv2d(c, cfg.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        g = cfg.norm_groups
        c = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        self.mid = _Middle(c, g, cfg.dropout)
        levels, res = [], cfg.resolution // cfg.downsampling
        for i in reversed(range(len(cfg.ch_mult))):
            c_out = cfg.ch * cfg.ch_mult[i]
            blocks = [ResnetBlock(c if j == 0 else c_out, c_out, g, cfg.dropout) for j in range(cfg.num_res_blocks + 1)]
            attns = [AttnBlock(c_out, g) for _ in blocks] if res in cfg.attn_resolutions else []
            levels.append(_Level(blocks, attns, Upsample(c_out) if i > 0 else None))
            c, res = c_out, res * (2 if i > 0 else 1)
        self.up = nn.ModuleList(levels)
        self.norm_out = nn.GroupNorm(g, c, eps=1e-6)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in self.up:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _make_quantizer(cfg: VQConfig) -> nn.Module:
    from vector_quantize_pytorch import ResidualVQ, VectorQuantize

    q = cfg.quantizer
    common = dict(dim=cfg.embed_dim, codebook_size=cfg.codebook_size, decay=q.decay,
                  commitment_weight=q.commitment_weight, kmeans_init=q.kmeans_init,
                  kmeans_iters=q.kmeans_iters, threshold_ema_dead_code=q.threshold_ema_dead_code,
                  rotation_trick=q.rotation_trick)
    # Codebook EMA and k-means sync across processes under torch.distributed (the library's default).
    if not cfg.residual:
        return VectorQuantize(**common)
    return ResidualVQ(num_quantizers=cfg.num_quantizers, quantize_dropout=q.quantize_dropout,
                      quantize_dropout_cutoff_index=q.quantize_dropout_cutoff_index, **common)


class VQGAN(nn.Module):
    """Encoder, quantiser and decoder. ``depth`` is N, the number of trained codebooks."""

    def __init__(self, cfg: VQConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantize = _make_quantizer(cfg)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = Decoder(cfg)

    @property
    def depth(self) -> int:
        return self.cfg.num_quantizers

    def codebooks(self) -> list[Tensor]:
        """The N codebooks, each K×embed_dim."""
        if not self.cfg.residual:
            return [self.quantize.codebook]
        return [layer.codebook for layer in self.quantize.layers]

    def codebooks_initialised(self) -> bool:
        """False until k-means has run (on the first training batch)."""
        vqs = list(self.quantize.layers) if self.cfg.residual else [self.quantize]
        return all(bool(vq._codebook.initted) for vq in vqs)

    # --- the three halves

    def encode_latent(self, x: Tensor) -> Tensor:
        """B×3×H×W in [0, 1] -> B×embed_dim×h×w continuous latent (padded grid)."""
        f = self.cfg.downsampling
        return self.quant_conv(self.encoder(pad_to_multiple(x * 2.0 - 1.0, f)))

    def decode_latent(self, z: Tensor, size: tuple[int, int]) -> Tensor:
        """Quantised latent -> B×3×H×W (cropped to ``size``; [0, 1] up to the decoder's
        overshoot, which training must see unclamped)."""
        y = self.decoder(self.post_quant_conv(z))[:, :, : size[0], : size[1]]
        return (y + 1.0) * 0.5

    @torch.no_grad()
    def encode_indices(self, x: Tensor, layers: int) -> Tensor:
        """B×3×H×W -> B×layers×h×w indices (eval mode: nearest codes, no codebook update).
        Residual quantisation is sequential, so the first L indices of a depth-N pass are
        the indices of a depth-L codec."""
        if self.training:
            raise RuntimeError("encode_indices needs eval mode (train mode updates the codebooks)")
        z = self.encode_latent(x)
        b, _, h, w = z.shape
        seq = z.flatten(2).transpose(1, 2)  # B×(h·w)×d
        _, idx, _ = self.quantize(seq)
        if idx.dim() == 2:  # one codebook: B×n
            idx = idx.unsqueeze(-1)
        return idx[..., :layers].transpose(1, 2).reshape(b, layers, h, w).long()

    def dequantize(self, indices: Tensor) -> Tensor:
        """B×L×h×w indices -> B×embed_dim×h×w: the sum of the first L layers' codes."""
        b, n_layers, h, w = indices.shape
        z = None
        for book, idx in zip(self.codebooks()[:n_layers], indices.unbind(1)):
            code = F.embedding(idx, book)  # B×h×w×d
            z = code if z is None else z + code
        return z.permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def decode_indices(self, indices: Tensor, size: tuple[int, int]) -> Tensor:
        """Indices -> B×3×H×W in [0, 1] (clamped): the reconstruction of a coded frame."""
        return self.decode_latent(self.dequantize(indices), size).clamp(0.0, 1.0)

    # --- training

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Training pass (call in train mode): straight-through / rotation-trick gradients,
        EMA codebook updates; for RVQ a random depth per call (quantize_dropout).
        Returns ``x_hat``, ``codebook_loss`` (commitment, summed over layers), ``indices``
        (B×N×h×w, -1 where a layer was dropped) and ``depth`` (layers used)."""
        z = self.encode_latent(x)
        b, d, h, w = z.shape
        seq = z.flatten(2).transpose(1, 2)
        zq, idx, loss = self.quantize(seq)
        if idx.dim() == 2:
            idx = idx.unsqueeze(-1)
        idx = idx.transpose(1, 2).reshape(b, idx.shape[-1], h, w)
        depth = int((idx[0, :, 0, 0] >= 0).sum()) if idx.numel() else 0
        x_hat = self.decode_latent(zq.transpose(1, 2).reshape(b, d, h, w), (x.shape[2], x.shape[3]))
        return {"x_hat": x_hat, "codebook_loss": loss.sum(), "indices": idx, "depth": depth}


__all__ = ["VQGAN", "grid_size", "pad_to_multiple"]
