"""A small decoder that stands in for a latent restorer's autoencoder decoder (in the spirit of TAESD): plain
3x3 convolutions, ReLUs and nearest-neighbour upsampling, no normalisation and no attention. At output
resolution an autoencoder's decoder often costs more than a few-step UNet, and on an edge GPU its GroupNorms
and attention are memory traffic; these blocks fuse into their convolutions. It is meant to be trained to
reproduce the original decoder's images from the same latents; a model folder carries one as
``decoder.safetensors`` (``edgeir.load.checkpoint``)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn


class TinyDecoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latent_channels: int = Field(3, ge=1, le=64)
    factor: int = Field(4, ge=2, le=64)  # upsampled by 2 this many log2 times
    # Widths from the latent's resolution up to the image's: one per level, log2(factor) + 1 of them.
    channels: tuple[int, ...] = (64, 48, 32)
    blocks: int = Field(1, ge=0, le=8)  # residual blocks per level

    @model_validator(mode="after")
    def _check(self) -> TinyDecoderConfig:
        levels = self.factor.bit_length() - 1
        if self.factor != 1 << levels:
            raise ValueError(f"factor must be a power of two, got {self.factor}")
        if len(self.channels) != levels + 1:
            raise ValueError(f"channels needs {levels + 1} widths for factor {self.factor}, got {len(self.channels)}")
        if not all(1 <= c <= 1024 for c in self.channels):
            raise ValueError("channels must lie in [1, 1024]")
        return self


class Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv(x))


class TinyDecoder(nn.Module):
    """``(B, latent_channels, h, w)`` scaled latents -> ``(B, 3, h * factor, w * factor)`` image in about
    [-1, 1], like the decoder it replaces."""

    def __init__(self, config: TinyDecoderConfig):
        super().__init__()
        self.config = config
        c = config.channels
        layers: list[nn.Module] = [nn.Conv2d(config.latent_channels, c[0], 3, padding=1), nn.ReLU()]
        for i, width in enumerate(c):
            layers += [Block(width) for _ in range(config.blocks)]
            if i + 1 < len(c):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, c[i + 1], 3, padding=1),
                           nn.ReLU()]
        layers.append(nn.Conv2d(c[-1], 3, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)
