"""What one denoiser evaluation costs: parameters and multiply-accumulates (MACs).

MACs come from torch's own FLOP counter, which sees every matmul (attention's q@k and attn@v included), not
only convolutions and linear layers; MACs = FLOPs / 2. Latency is measured, never derived from MACs (edge GPUs
are bound by memory traffic): see ``edgeir.export`` and ``edgeir.runtime`` for onnxruntime timings.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel, build_network


def torch_network(restorer: RestorerModel) -> torch.nn.Module:
    """The network to count: an ONNX (INT8) network has the parameters and MACs of the architecture it was
    exported from, whatever its number format."""
    net = restorer.denoiser.net
    return build_network(restorer.config) if isinstance(net, OnnxNet) else net


def params(restorer: RestorerModel) -> int:
    return sum(p.numel() for p in torch_network(restorer).parameters())


@torch.no_grad()
def macs(restorer: RestorerModel, height: int, width: int, batch: int = 1) -> int:
    """MACs of one denoiser evaluation at output size ``height`` x ``width``."""
    net = torch_network(restorer)
    p = next(net.parameters())
    cfg = restorer.config
    x = torch.zeros(batch, 3, height, width, device=p.device)
    cond = torch.zeros(batch, cfg.task.cond_channels, height, width, device=p.device)
    t = torch.zeros(batch, device=p.device)
    with FlopCounterMode(display=False) as counter:
        net(x, t, cond)
    return counter.get_total_flops() // 2
