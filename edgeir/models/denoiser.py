"""The one denoiser interface: ``(x_t, t, condition) -> prediction`` plus a declared prediction type.

Every network (our UNet, a diffusers UNet2DModel, any torch module) is wrapped into this, so every sampler,
compression stage and exporter works with every network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgeir.diffusion.steps import Prediction


class Denoiser(nn.Module):
    def __init__(self, net: nn.Module, prediction: Prediction):
        super().__init__()
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction must be eps, v or x0, got {prediction!r}")
        self.net = net
        self.prediction: Prediction = prediction

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t, cond)


class CallAdapter(nn.Module):
    """Adapts a module with another calling convention, e.g. ``lambda m, x, t, c: m(torch.cat([x, c], 1), t)``."""

    def __init__(self, module: nn.Module, call: Callable[..., torch.Tensor]):
        super().__init__()
        self.module = module
        self.call = call

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.call(self.module, x_t, t, cond)
