"""A restorer: denoiser + schedule + task + default sampler, i.e. everything needed to go from a degraded
image to a restored one in torch."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeir.diffusion.sample import sample
from edgeir.diffusion.schedules import alphas_cumprod
from edgeir.diffusion.steps import Sampling, Step, ddim_steps, to_image, to_x0
from edgeir.models import layer_sizes
from edgeir.models.config import DiffusersUNetSpec, EdgeUNetSpec, ExternalNetSpec, RestorerConfig
from edgeir.models.denoiser import Denoiser
from edgeir.models.external import build_external
from edgeir.models.unet import EdgeUNet
from edgeir.tasks import Degraded


def build_network(config: RestorerConfig) -> nn.Module:
    """A freshly initialised torch network of ``config``'s architecture (for an ONNX network: its source's)."""
    spec = config.torch_network
    if isinstance(spec, EdgeUNetSpec):
        return EdgeUNet(spec.config)
    if isinstance(spec, ExternalNetSpec):
        return build_external(spec)
    assert isinstance(spec, DiffusersUNetSpec)
    from edgeir.models.diffusers_unet import DiffusersUNet

    net = DiffusersUNet.from_config(spec.config)
    layer_sizes.apply(net.unet, spec.resized)
    return net


class RestorerModel(nn.Module):
    def __init__(self, config: RestorerConfig, net: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.denoiser = Denoiser(net if net is not None else build_network(config), config.prediction)
        self.alphas_cumprod = alphas_cumprod(config.schedule.kind, config.schedule.num_train_timesteps)

    @property
    def task(self):
        return self.config.task

    def digest(self) -> str:
        """Names this exact model (config and weights), for cache and checkpoint names."""
        h = hashlib.sha256(self.config.model_dump_json().encode())
        for k, v in self.denoiser.net.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def steps(self, steps: int | None = None, eta: float | None = None,
              timesteps: list[int] | None = None) -> list[Step]:
        s = self.config.sampler
        ts = timesteps if timesteps is not None else self.config.timesteps(steps)
        eta = (1.0 if s.kind == "ddpm" else s.eta) if eta is None else eta
        return ddim_steps(self.alphas_cumprod, ts, eta)

    def sampling(self, steps: int | None = None) -> Sampling:
        """Its sampler as the exported graphs bake it in."""
        c = self.config
        return Sampling(self.steps(steps), c.prediction, c.sampler.temperature, c.residual_scale, c.target)

    def x0(self, x_t: torch.Tensor, step: Step, cond: torch.Tensor) -> torch.Tensor:
        t = torch.full((x_t.shape[0],), float(step.t), device=x_t.device)
        pred = self.denoiser(x_t, t, cond)
        return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, self.config.prediction)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, steps: list[Step] | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The residual (model space) from initial standard-normal ``noise``; inputs already padded."""
        steps = steps if steps is not None else self.steps()
        x = noise * self.config.sampler.temperature

        def fresh(like: torch.Tensor) -> torch.Tensor:
            return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

        return sample(lambda x_t, st: self.x0(x_t, st, cond), x, steps, fresh)

    def to_image(self, residual: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1] from the sampled residual and the condition's base image."""
        return to_image(residual, cond[:, :3], self.config.residual_scale, self.config.target)

    def restore_tensor(self, cond: torch.Tensor, noise: torch.Tensor, steps: list[Step] | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) condition in [-1, 1] -> (B, 3, H, W) image in [0, 1]; any H, W (reflect-padded to the
        network's multiple and cropped back)."""
        h, w = cond.shape[-2:]
        m = self.config.multiple_of
        ph, pw = -h % m, -w % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            cond = F.pad(cond, (0, pw, 0, ph), mode=mode)
            noise = F.pad(noise, (0, pw, 0, ph), mode=mode)
        out = self.to_image(self.sample(cond, noise, steps, generator), cond)
        return out[..., :h, :w]

    @torch.no_grad()
    def restore(self, degraded: Degraded, seed: int = 0, schedule: list[Step] | None = None) -> np.ndarray:
        """numpy convenience: degraded image -> restored HxWx3 float32 in [0, 1]."""
        cond_np = self.task.condition(degraded)
        device = next(self.parameters()).device
        cond = torch.from_numpy(cond_np).permute(2, 0, 1)[None].to(device)
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, 3) + cond.shape[-2:], generator=g).to(device)
        out = self.restore_tensor(cond, noise, schedule, g)
        return self.task.compose(out[0].permute(1, 2, 0).cpu().numpy(), degraded)
