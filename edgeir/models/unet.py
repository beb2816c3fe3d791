"""edgeir's conditional UNet, built from a config object.

Designed for edge GPUs, where memory traffic rather than FLOPs sets latency: the network pixel-unshuffles its
full-resolution inputs and works at 1/``unshuffle`` resolution, so no full-resolution feature map exists; global
self-attention only runs at the lowest resolution. Every width is read from the layers themselves (attention's
inner width from its own projection, a block's width from its convolutions), so structured pruning can change
any width and the config records the result in ``widths``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn


class UNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: int = 3  # x_t
    cond_channels: int = 3  # condition image (plus mask for inpainting), at output resolution
    out_channels: int = 3
    unshuffle: int = Field(4, ge=1)  # the network runs at H/unshuffle x W/unshuffle
    channels: tuple[int, ...] = (64, 96, 128)
    blocks_per_level: int = Field(1, ge=1)
    norm_groups: int = Field(8, ge=1)
    attention_heads: int = Field(4, ge=1)
    mid_attention: bool = True
    time_embed_dim: int = 128
    # Per-layer output widths that differ from the defaults implied by ``channels`` (set by pruning).
    widths: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "UNetConfig":
        for c in self.channels:
            if c % self.norm_groups:
                raise ValueError(f"every width must be a multiple of norm_groups={self.norm_groups}, got {c}")
        return self

    @property
    def multiple_of(self) -> int:
        """Input height and width must be multiples of this."""
        return self.unshuffle * 2 ** (len(self.channels) - 1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class _Builder:
    """Creates layers whose output width may be overridden by ``config.widths`` (pruned models)."""

    def __init__(self, cfg: UNetConfig):
        self.cfg = cfg

    def width(self, name: str, default: int) -> int:
        return self.cfg.widths.get(name, default)

    def norm(self, channels: int) -> nn.GroupNorm:
        return nn.GroupNorm(math.gcd(self.cfg.norm_groups, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, b: _Builder, name: str, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        hidden = b.width(f"{name}.conv1", c_out)
        self.norm1 = b.norm(c_in)
        self.conv1 = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * hidden)
        self.norm2 = b.norm(hidden)
        self.conv2 = nn.Conv2d(hidden, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class Attention(nn.Module):
    """Global multi-head self-attention. Separate q/k/v projections (no fused qkv chunk) keep the dependency
    graph plain for structured pruning; the inner width is whatever ``q`` projects to."""

    def __init__(self, b: _Builder, name: str, channels: int, heads: int):
        super().__init__()
        inner = b.width(f"{name}.q", channels)
        self.heads = heads
        self.norm = b.norm(channels)
        self.q = nn.Conv2d(channels, inner, 1)
        self.k = nn.Conv2d(channels, inner, 1)
        self.v = nn.Conv2d(channels, b.width(f"{name}.v", channels), 1)
        self.out = nn.Conv2d(self.v.out_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        heads = self.heads if q.shape[1] % self.heads == 0 and v.shape[1] % self.heads == 0 else 1
        q = q.reshape(B, heads, q.shape[1] // heads, H * W).transpose(2, 3)
        k = k.reshape(B, heads, k.shape[1] // heads, H * W)
        v = v.reshape(B, heads, v.shape[1] // heads, H * W).transpose(2, 3)
        attn = torch.softmax(q @ k * (q.shape[-1] ** -0.5), dim=-1)
        o = (attn @ v).transpose(2, 3).reshape(B, -1, H, W)
        return x + self.out(o)


class EdgeUNet(nn.Module):
    """``forward(x_t, t, cond) -> prediction``, all at output resolution; internally at 1/unshuffle."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        b = _Builder(cfg)
        s2 = cfg.unshuffle**2
        ch = cfg.channels
        emb_dim = cfg.time_embed_dim
        t_hidden = b.width("time_mlp.0", emb_dim)
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, t_hidden), nn.SiLU(), nn.Linear(t_hidden, emb_dim))
        self.conv_in = nn.Conv2d((cfg.in_channels + cfg.cond_channels) * s2, ch[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, c in enumerate(ch):
            c_prev = ch[max(i - 1, 0)]
            blocks = [ResBlock(b, f"down.{i}.{j}", c_prev if j == 0 else c, c, emb_dim)
                      for j in range(cfg.blocks_per_level)]
            self.down.append(nn.ModuleList(blocks))
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))

        self.mid1 = ResBlock(b, "mid1", ch[-1], ch[-1], emb_dim)
        self.mid_attn = Attention(b, "mid_attn", ch[-1], cfg.attention_heads) if cfg.mid_attention else None
        self.mid2 = ResBlock(b, "mid2", ch[-1], ch[-1], emb_dim)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c = ch[i]
            c_below = ch[-1] if i == len(ch) - 1 else ch[i + 1]
            blocks = [ResBlock(b, f"up.{i}.{j}", (c_below + c) if j == 0 else c, c, emb_dim)
                      for j in range(cfg.blocks_per_level)]
            self.up.append(nn.ModuleList(blocks))
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = b.norm(ch[0])
        self.conv_out = nn.Conv2d(ch[0], cfg.out_channels * s2, 3, padding=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        emb = self.time_mlp(timestep_embedding(t, cfg.time_embed_dim))
        h = F.pixel_unshuffle(torch.cat([x_t, cond], dim=1), cfg.unshuffle)
        h = self.conv_in(h)

        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)

        h = self.mid1(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, emb)

        for k, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
            if k < len(self.upsample):
                h = self.upsample[k](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(h, cfg.unshuffle)
