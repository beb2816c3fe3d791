"""What one denoiser evaluation costs: parameters and multiply-accumulates (MACs).

MACs come from torch's own FLOP counter, which sees every matmul (attention's q@k and attn@v included), not
only convolutions and linear layers; MACs = FLOPs / 2. Latency is measured, never derived from MACs (edge GPUs
are bound by memory traffic): see ``edgeir.export`` and ``edgeir.runtime`` for onnxruntime timings.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeir.models.codec import Decoder, Encoder
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel, build_network
from edgeir.models.tiny_decoder import TinyDecoder

# The autoencoder's modules each way runs through (a VQ decoder snaps to its codebook first).
_PARTS = {"encoder": ("encoder", "quant_conv"), "decoder": ("quantize", "post_quant_conv", "decoder")}


def torch_network(restorer: RestorerModel) -> torch.nn.Module:
    """The network to count: an ONNX (INT8) network has the parameters and MACs of the architecture it was
    exported from, whatever its number format."""
    net = restorer.denoiser.net
    return build_network(restorer.config) if isinstance(net, OnnxNet) else net


def params(restorer: RestorerModel) -> int:
    return sum(p.numel() for p in torch_network(restorer).parameters())


@torch.no_grad()
def macs(restorer: RestorerModel, height: int, width: int, batch: int = 1) -> int:
    """MACs of one denoiser evaluation at output size ``height`` x ``width`` (a latent restorer's at its
    latent's size; its autoencoder's are ``codec_macs``)."""
    net = torch_network(restorer)
    p = next(net.parameters())
    x, t, cond = (v.to(p.device) for v in restorer.network_inputs(height, width, batch))
    with FlopCounterMode(display=False) as counter:
        net(x, t, cond)
    return counter.get_total_flops() // 2


def codec_part(restorer: RestorerModel, part: str) -> torch.nn.Module:
    """The torch module of a latent restorer's ``encoder`` or ``decoder``: an ONNX (INT8) part counts as the
    module it was exported from."""
    codec = restorer.codec
    module = getattr(codec, part)
    if not isinstance(module, OnnxNet):
        return module
    if part == "decoder" and codec.spec.decoder is not None:
        return TinyDecoder(codec.spec.decoder.config)
    return (Decoder if part == "decoder" else Encoder)(codec.spec, codec.autoencoder)


def codec_params(module: torch.nn.Module, part: str) -> int:
    if isinstance(module, (Encoder, Decoder)):
        ae = module.autoencoder
        return sum(p.numel() for name in _PARTS[part] if (sub := getattr(ae, name, None)) is not None
                   for p in sub.parameters())
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def codec_costs(restorer: RestorerModel, height: int, width: int) -> dict[str, int]:
    """Parameters and MACs of each autoencoder part one restoration at output size ``height`` x ``width``
    runs (``decoder_params``, ``decoder_macs``, and the encoder's where the UNet takes a latent); none for a
    pixel-space restorer."""
    latent = restorer.config.latent
    if latent is None:
        return {}
    f = latent.factor
    costs = {}
    inputs = {"encoder": (1, 3, height, width), "decoder": (1, latent.channels, height // f, width // f)}
    for part in ("encoder", "decoder") if latent.condition == "latent" else ("decoder",):
        module = codec_part(restorer, part)
        with FlopCounterMode(display=False) as counter:
            module(torch.zeros(inputs[part], device=next(module.parameters()).device))
        costs.update({f"{part}_params": codec_params(module, part), f"{part}_macs": counter.get_total_flops() // 2})
    return costs
