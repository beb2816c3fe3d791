"""edgeir's conditional UNet, built from a config object.

Designed for edge GPUs, where memory traffic rather than FLOPs sets latency: the network pixel-unshuffles its
full-resolution inputs and works at 1/``unshuffle`` resolution, so no full-resolution feature map exists; global
self-attention only runs at the lowest resolution. Every width is read from the layers themselves (attention's
inner width from its own projection, a block's width from its convolutions), so structured pruning can change
any width and the config records the result in ``widths``.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

# Bounds that keep a hostile or mistyped config.json from building a network that cannot exist (an empty or
# negative width) before anything is allocated; the total size is bounded where a network is loaded.
MAX_WIDTH = 8192
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Channels = Annotated[int, Field(ge=1, le=64)]


class UNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: Channels = 3  # x_t
    cond_channels: Channels = 3  # condition image (plus mask for inpainting), at output resolution
    out_channels: Channels = 3
    unshuffle: int = Field(4, ge=1, le=16)  # the network runs at H/unshuffle x W/unshuffle
    channels: tuple[Width, ...] = Field((64, 96, 128), min_length=1, max_length=8)
    blocks_per_level: int = Field(1, ge=1, le=16)
    norm_groups: Width = 8
    attention_heads: Width = 4
    mid_attention: bool = True
    # even: the sinusoidal embedding has a cosine and a sine per frequency
    time_embed_dim: int = Field(128, ge=2, le=MAX_WIDTH, multiple_of=2)
    # Named widths (see ``width_layers``) that differ from what ``channels`` implies; set by pruning.
    widths: dict[str, Width] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> UNetConfig:
        for c in self.channels:
            if c % self.norm_groups:
                raise ValueError(f"every width must be a multiple of norm_groups={self.norm_groups}, got {c}")
        known = self.width_layers()
        for name in self.widths:
            if name not in known:
                raise ValueError(f"widths: unknown width {name!r} (known: {', '.join(known)})")
        full = self.full_widths()
        for i in range(1, len(self.channels)):  # an identity skip adds its input to its output
            if self.channels[i - 1] == self.channels[i] and full[f"down.{i}"] != full[f"downsample.{i - 1}"]:
                raise ValueError(f"widths: down.{i} and downsample.{i - 1} are joined by an identity skip and "
                                 "must be equal")
        return self

    def width_layers(self) -> dict[str, tuple[str, int]]:
        """Every independently prunable width: name -> (the layer whose output channels it is, default).
        ``down.{i}``/``up.{k}`` are the residual streams of ``self.down[i]``/``self.up[k]`` (the deepest down
        stream also runs through the middle blocks); the rest are single layers' outputs."""
        ch, emb = self.channels, self.time_embed_dim
        out: dict[str, tuple[str, int]] = {"time_mlp.0": ("time_mlp.0", emb), "time_mlp.2": ("time_mlp.2", emb)}
        for i, c in enumerate(ch):
            out[f"down.{i}"] = (f"down.{i}.0.conv2", c)
            for j in range(self.blocks_per_level):
                out[f"down.{i}.{j}.conv1"] = (f"down.{i}.{j}.conv1", c)
            if i < len(ch) - 1:
                out[f"downsample.{i}"] = (f"downsample.{i}", c)
        out["mid1.conv1"] = ("mid1.conv1", ch[-1])
        if self.mid_attention:
            out["mid_attn.q"] = ("mid_attn.q", ch[-1])  # k always matches q
            out["mid_attn.v"] = ("mid_attn.v", ch[-1])
        out["mid2.conv1"] = ("mid2.conv1", ch[-1])
        for k, i in enumerate(reversed(range(len(ch)))):
            out[f"up.{k}"] = (f"up.{k}.0.conv2", ch[i])
            for j in range(self.blocks_per_level):
                out[f"up.{k}.{j}.conv1"] = (f"up.{k}.{j}.conv1", ch[i])
            if i > 0:
                out[f"upsample.{k}"] = (f"upsample.{k}", ch[i])
        return out

    def full_widths(self) -> dict[str, int]:
        """Every named width, overrides applied."""
        return {name: self.widths.get(name, default) for name, (_, default) in self.width_layers().items()}

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
        self.widths = cfg.full_widths()

    def width(self, name: str) -> int:
        return self.widths[name]

    def norm(self, channels: int) -> nn.GroupNorm:
        return nn.GroupNorm(math.gcd(self.cfg.norm_groups, channels), channels)


class ResBlock(nn.Module):
    """``project``: a 1x1 skip convolution (the block changes width in the unpruned design) or an identity."""

    def __init__(self, b: _Builder, name: str, c_in: int, c_out: int, emb_dim: int, project: bool):
        super().__init__()
        hidden = b.width(f"{name}.conv1")
        self.norm1 = b.norm(c_in)
        self.conv1 = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * hidden)
        self.norm2 = b.norm(hidden)
        self.conv2 = nn.Conv2d(hidden, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if project else nn.Identity()

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
        inner = b.width(f"{name}.q")
        self.heads = heads
        self.norm = b.norm(channels)
        self.q = nn.Conv2d(channels, inner, 1)
        self.k = nn.Conv2d(channels, inner, 1)
        self.v = nn.Conv2d(channels, b.width(f"{name}.v"), 1)
        self.out = nn.Conv2d(self.v.out_channels, channels, 1)

    @property
    def active_heads(self) -> int:
        """The heads in use: widths that ``heads`` does not divide run as one head."""
        return self.heads if self.q.out_channels % self.heads == 0 and self.v.out_channels % self.heads == 0 else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        heads = self.active_heads
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
        w = b.width
        s2 = cfg.unshuffle**2
        ch = cfg.channels
        emb_dim = w("time_mlp.2")
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_embed_dim, w("time_mlp.0")), nn.SiLU(),
                                      nn.Linear(w("time_mlp.0"), emb_dim))
        self.conv_in = nn.Conv2d((cfg.in_channels + cfg.cond_channels) * s2, w("down.0"), 3, padding=1)

        # Skip convolutions exist where the unpruned design changes width, so pruning never adds or drops one.
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_in, skips = w("down.0"), []
        for i, c in enumerate(ch):
            stream = w(f"down.{i}")
            blocks = []
            for j in range(cfg.blocks_per_level):
                project = j == 0 and ch[max(i - 1, 0)] != c
                blocks.append(ResBlock(b, f"down.{i}.{j}", c_in, stream, emb_dim, project))
                c_in = stream
            self.down.append(nn.ModuleList(blocks))
            skips.append(stream)
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(stream, w(f"downsample.{i}"), 3, stride=2, padding=1))
                c_in = w(f"downsample.{i}")

        mid = w(f"down.{len(ch) - 1}")
        self.mid1 = ResBlock(b, "mid1", mid, mid, emb_dim, project=False)
        self.mid_attn = Attention(b, "mid_attn", mid, cfg.attention_heads) if cfg.mid_attention else None
        self.mid2 = ResBlock(b, "mid2", mid, mid, emb_dim, project=False)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        h = mid
        for k, i in enumerate(reversed(range(len(ch)))):
            stream = w(f"up.{k}")
            blocks = []
            for j in range(cfg.blocks_per_level):
                blocks.append(ResBlock(b, f"up.{k}.{j}", h + skips[i] if j == 0 else stream, stream, emb_dim,
                                       project=j == 0))
                h = stream
            self.up.append(nn.ModuleList(blocks))
            if i > 0:
                self.upsample.append(nn.Conv2d(stream, w(f"upsample.{k}"), 3, padding=1))
                h = w(f"upsample.{k}")
        self.norm_out = b.norm(h)
        self.conv_out = nn.Conv2d(h, cfg.out_channels * s2, 3, padding=1)

    def widths(self) -> dict[str, int]:
        """The ``UNetConfig.widths`` that describe this network's layers as they are now (e.g. after pruning)."""
        defaults = self.config.width_layers()
        now = {name: self.get_submodule(layer).weight.shape[0] for name, (layer, _) in defaults.items()}
        return {name: c for name, c in now.items() if c != defaults[name][1]}

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
