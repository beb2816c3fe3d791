"""A latent restorer's way in and out of its latent space: ``encode`` (image in [-1, 1] -> the latent the UNet
samples) and ``decode`` (that latent -> image in [-1, 1]), around diffusers' ``VQModel`` or ``AutoencoderKL``.

The encoder and the decoder are separate modules with one tensor in and one out, because each is exported,
quantized and replaced on its own: the decoder by a distilled ``TinyDecoder``, either of them by an (INT8)
ONNX graph. Their weights stay frozen: a latent restorer's training moves its UNet (and a distilled decoder's
own stage its decoder), never the autoencoder under it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeir.models.config import AutoencoderSpec
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.tiny_decoder import TinyDecoder

ENCODER_IO = ("image", "latent")  # the encoder graph's input and output names
DECODER_IO = ("latent", "image")


def autoencoder_class(kind: str):
    try:
        from diffusers import AutoencoderKL, VQModel
    except ImportError:
        raise ImportError("diffusers is not installed (pip install 'edgeir[diffusers]')") from None
    return VQModel if kind == "vq" else AutoencoderKL


class Encoder(nn.Module):
    """Image in [-1, 1] -> ``(z - shift) * scale``, ``z`` the encoder's latent (a KL encoder's mean: its
    deterministic mode, what conditioning on an image needs)."""

    def __init__(self, spec: AutoencoderSpec, autoencoder: nn.Module):
        super().__init__()
        self.spec, self.autoencoder = spec, autoencoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.autoencoder.encode(image)
        z = out.latents if self.spec.type == "vq" else out.latent_dist.mode()
        return (z - self.spec.shift_factor) * self.spec.scaling_factor


class Decoder(nn.Module):
    """The sampled latent -> image in [-1, 1], as the pipeline decodes it (a VQ decoder quantizes first)."""

    def __init__(self, spec: AutoencoderSpec, autoencoder: nn.Module):
        super().__init__()
        self.spec, self.autoencoder = spec, autoencoder

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(latent / self.spec.scaling_factor + self.spec.shift_factor).sample


class LatentCodec(nn.Module):
    def __init__(self, spec: AutoencoderSpec, autoencoder: nn.Module, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None):
        super().__init__()
        self.spec = spec
        self.autoencoder = autoencoder.eval()
        self.encoder = encoder if encoder is not None else Encoder(spec, self.autoencoder)
        self.decoder = decoder if decoder is not None else Decoder(spec, self.autoencoder)
        self.requires_grad_(False)

    @property
    def space(self):
        return self.spec.space

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)

    def train(self, mode: bool = True) -> LatentCodec:
        """The autoencoder stays in eval mode: its weights are not what is being trained."""
        super().train(mode)
        self.autoencoder.eval()
        return self


def build_codec(spec: AutoencoderSpec, folder: Path | None = None) -> LatentCodec:
    """``spec``'s codec, freshly initialised (its weights are loaded by ``edgeir.load``); ONNX parts from the
    graphs ``spec.graphs`` names in ``folder``."""
    autoencoder = autoencoder_class(spec.type).from_config(spec.config)
    decoder = TinyDecoder(spec.decoder.config) if spec.decoder else None
    encoder = None
    if spec.graphs:
        if folder is None:
            raise ValueError("an autoencoder with ONNX graphs is built from its folder")
        if "encoder" in spec.graphs:
            encoder = OnnxNet(folder / spec.graphs["encoder"], inputs=ENCODER_IO[:1])
        if "decoder" in spec.graphs:
            decoder = OnnxNet(folder / spec.graphs["decoder"], inputs=DECODER_IO[:1])
    return LatentCodec(spec, autoencoder, encoder, decoder)
