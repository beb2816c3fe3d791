"""A restorer: denoiser + schedule + task + default sampler (+ a latent restorer's autoencoder), i.e. everything
needed to go from a degraded image to a restored one in torch.

Three tensors pass through it, each in its own space: the *condition* (``condition()``: the task's at output
resolution, or a latent restorer's low-resolution image), the network's own condition (``unet_condition()``:
the same, or its latent), and the *sample* the network denoises (the residual or image at output resolution,
or a latent), which ``to_image`` turns into pixels."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import Sampling, Step, ddim_steps, to_image, to_x0
from edgeir.models import layer_sizes
from edgeir.models.codec import LatentCodec, build_codec
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
    def __init__(self, config: RestorerConfig, net: nn.Module | None = None, codec: LatentCodec | None = None):
        super().__init__()
        self.config = config
        self.denoiser = Denoiser(net if net is not None else build_network(config), config.prediction)
        if config.autoencoder is not None:
            self.codec = codec if codec is not None else build_codec(config.autoencoder)
        else:
            self.codec = None
        self.alphas_cumprod = config.schedule.alphas_cumprod()

    @property
    def task(self):
        return self.config.task

    def digest(self) -> str:
        """Names this exact model (config and weights), for cache and checkpoint names."""
        h = hashlib.sha256(self.config.model_dump_json().encode())
        codec = self.codec.state_dict().items() if self.codec is not None else []
        for k, v in [*self.denoiser.net.state_dict().items(), *codec]:
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def steps(self, steps: int | None = None, eta: float | None = None,
              timesteps: list[int] | None = None) -> list[Step]:
        """A distilled student's own timesteps, or ``steps`` (default: the sampler's) as the schedule spaces
        them; ``eta`` default: the sampler's (1 for DDPM)."""
        s = self.config.sampler
        eta = (1.0 if s.kind == "ddpm" else s.eta) if eta is None else eta
        if timesteps is None and steps is None and s.timesteps is not None:
            timesteps = list(s.timesteps)
        if timesteps is not None:
            return ddim_steps(self.alphas_cumprod, timesteps, eta)
        return self.config.schedule.steps(steps or s.steps, eta)

    def sampling(self, steps: int | None = None) -> Sampling:
        """Its sampler as the exported graphs bake it in."""
        c = self.config
        return Sampling(self.steps(steps), c.prediction, c.sampler.temperature, c.residual_scale, c.target,
                        c.schedule.clip)

    # ---- the three spaces -------------------------------------------------------------------------------

    def condition(self, degraded: Degraded) -> np.ndarray:
        """HxWxC float32 in [-1, 1]: what ``sample``, ``restore_tensor`` and training batches take."""
        return self.config.condition(degraded)

    @property
    def cond_scale(self) -> int:
        """Output pixels per condition pixel along a side."""
        latent = self.config.latent
        return latent.factor if latent and latent.condition == "lowres" else 1

    @property
    def sample_scale(self) -> int:
        """Output pixels per sample pixel along a side."""
        return self.config.latent.factor if self.config.latent else 1

    def sample_size(self, height: int, width: int) -> tuple[int, int, int]:
        """(channels, height, width) of the sample for a condition of ``height`` x ``width``: the shape of the
        noise to start from."""
        cs, ss = self.cond_scale, self.sample_scale
        return self.config.sample_channels, -(-height * cs // ss), -(-width * cs // ss)

    def unet_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """The network's own condition: ``cond``, or a latent condition's encoding of its base image."""
        latent = self.config.latent
        if latent is None or latent.condition == "lowres":
            return cond
        with torch.no_grad():
            return self.codec.encode(cond[:, :3])

    def training_batch(self, target: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of ``edgeir.train.data.make_pair``'s (clean target, condition) in the network's own spaces,
        on the device it came on: a latent restorer's clean sample is its target image's latent."""
        if self.codec is None:
            return target, cond
        device = next(self.codec.parameters()).device
        with torch.no_grad():
            x0 = self.codec.encode(target.to(device))
            c = self.unet_condition(cond.to(device))
        return x0.to(target.device), c.to(cond.device)

    def network_inputs(self, height: int, width: int, batch: int = 1, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random ``(x_t, t, condition)`` for one network evaluation at output size ``height`` x ``width``, in
        the network's own spaces, on its device: what its MACs are counted, its latency timed and its
        dependency graph traced on."""
        cfg = self.config
        h, w = height // self.sample_scale, width // self.sample_scale
        x = torch.randn(batch, cfg.sample_channels, h, w, generator=generator)
        cond = torch.randn(batch, cfg.unet_cond_channels, h, w, generator=generator)
        device = next(self.parameters()).device
        return x.to(device), torch.linspace(900.0, 20.0, batch, device=device), cond.to(device)

    def x0(self, x_t: torch.Tensor, step: Step, cond: torch.Tensor) -> torch.Tensor:
        t = torch.full((x_t.shape[0],), float(step.t), device=x_t.device)
        pred = self.denoiser(x_t, t, cond)
        return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, self.config.prediction)

    def sample(self, cond: torch.Tensor, noise: torch.Tensor, steps: list[Step] | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The sample (model space) from initial standard-normal ``noise`` of ``sample_size``; inputs already
        padded."""
        steps = steps if steps is not None else self.steps()
        x = noise * self.config.sampler.temperature
        c = self.unet_condition(cond)

        def fresh(like: torch.Tensor) -> torch.Tensor:
            return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

        return sample(lambda x_t, st: self.x0(x_t, st, c), x, steps, fresh, self.config.schedule.clip)

    def to_image(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1] from the sample and the condition's base image (a latent: decoded)."""
        if self.codec is not None:
            return to_image(self.codec.decode(x), None, 1.0, "image")
        return to_image(x, cond[:, :3], self.config.residual_scale, self.config.target)

    def restore_tensor(self, cond: torch.Tensor, noise: torch.Tensor, steps: list[Step] | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, h, w) condition in [-1, 1] and noise of ``sample_size(h, w)`` -> (B, 3, H, W) image in
        [0, 1] at output resolution; any h, w (reflect-padded to the network's multiple and cropped back)."""
        h, w = cond.shape[-2:]
        m = self.config.multiple_of // self.cond_scale
        ph, pw = -h % m, -w % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            cond = F.pad(cond, (0, pw, 0, ph), mode=mode)
            _, sh, sw = self.sample_size(*cond.shape[-2:])
            noise = F.pad(noise, (0, sw - noise.shape[-1], 0, sh - noise.shape[-2]), mode=mode)
        out = self.to_image(self.sample(cond, noise, steps, generator), cond)
        return out[..., : h * self.cond_scale, : w * self.cond_scale]

    @torch.no_grad()
    def restore(self, degraded: Degraded, seed: int = 0, schedule: list[Step] | None = None) -> np.ndarray:
        """numpy convenience: degraded image -> restored HxWx3 float32 in [0, 1]."""
        cond_np = self.condition(degraded)
        device = next(self.parameters()).device
        cond = torch.from_numpy(cond_np).permute(2, 0, 1)[None].to(device)
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn((1, *self.sample_size(*cond.shape[-2:])), generator=g).to(device)
        out = self.restore_tensor(cond, noise, schedule, g)
        return self.task.compose(out[0].permute(1, 2, 0).cpu().numpy(), degraded)
