"""Training a latent restorer's autoencoder, the first of its two phases (the UNet on its latents is the second,
``edgeir.train.teacher``): a diffusers ``VQModel`` or ``AutoencoderKL`` of the preset's config learns to
reconstruct random crops of the training photographs. The loss is L1 plus MSE on the image in [-1, 1], with
a VQ model's codebook and commitment terms or a KL model's (lightly weighted) divergence; no adversarial or
perceptual term, which would need weights the project cannot ship or download. Resumable like every training
here (``edgeir.train.loop``); the result is the weights' moving average, frozen into a ``LatentCodec``."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeir.models.codec import LatentCodec, build_codec
from edgeir.models.config import AutoencoderSpec
from edgeir.progress import progress_bar
from edgeir.train.data import random_crop
from edgeir.train.loop import Schedule, fit

KL_WEIGHT = 1e-6  # LDM's: enough to keep the latent's scale in check, too little to blur it


def reconstruction_loss(autoencoder: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """The autoencoder's training loss on images ``x`` in [-1, 1]."""
    if kind == "vq":
        out = autoencoder(x)
        rec, extra = out.sample, out.commit_loss.mean()
    else:
        posterior = autoencoder.encode(x).latent_dist
        rec = autoencoder.decode(posterior.sample()).sample
        extra = KL_WEIGHT * posterior.kl().mean() / x[0].numel()
    return (rec - x).abs().mean() + ((rec - x) ** 2).mean() + extra


def train_autoencoder(spec: AutoencoderSpec, images: list[np.ndarray], state, iters: int, batch: int, patch: int,
                      lr: float, device: str, seed: int = 0, max_minutes: float | None = None,
                      save_every: int = 1000, log_every: int = 200) -> tuple[LatentCodec, int]:
    """The trained codec (on the CPU) and the iterations it trained for; ``state``: its checkpoint file."""
    torch.manual_seed(seed)
    autoencoder = build_codec(spec).autoencoder.to(device).train().requires_grad_(True)
    images = [im for im in images if min(im.shape[:2]) >= patch]

    def loss(it: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, 5, it])
        crops = np.stack([random_crop(images, patch, rng) for _ in range(batch)])
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).to(device) * 2 - 1
        return reconstruction_loss(autoencoder, spec.type, x)

    schedule = Schedule(iters, lr, warmup=min(500, max(1, iters // 10)), ema=0.999, save_every=save_every,
                        max_minutes=max_minutes)
    fitted = fit(autoencoder, loss, schedule, state, progress_bar, f"train {spec.type} autoencoder", log_every)
    return LatentCodec(spec, fitted.ema.cpu().eval()), fitted.iterations
