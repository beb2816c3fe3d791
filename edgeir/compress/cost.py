"""What one denoiser evaluation costs: parameters and multiply-accumulates (MACs).

MACs come from torch's own FLOP counter, which sees every matmul (attention's q@k and attn@v included), not
only convolutions and linear layers; MACs = FLOPs / 2. Latency is measured, never derived from MACs (edge GPUs
are bound by memory traffic): see ``edgeir.export`` and ``edgeir.runtime`` for onnxruntime timings.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeir.models.restorer import Restorer


def params(restorer: Restorer) -> int:
    return sum(p.numel() for p in restorer.denoiser.parameters())


@torch.no_grad()
def macs(restorer: Restorer, height: int, width: int, batch: int = 1) -> int:
    """MACs of one denoiser evaluation at output size ``height`` x ``width``."""
    p = next(restorer.denoiser.parameters())
    cfg = restorer.config
    x = torch.zeros(batch, 3, height, width, device=p.device)
    cond = torch.zeros(batch, cfg.task.cond_channels, height, width, device=p.device)
    t = torch.zeros(batch, device=p.device)
    with FlopCounterMode(display=False) as counter:
        restorer.denoiser(x, t, cond)
    return counter.get_total_flops() // 2
