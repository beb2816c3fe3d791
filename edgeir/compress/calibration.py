"""Calibration data for post-training quantization, taken from the sampler that will run in deployment.

A diffusion denoiser's activation ranges depend on the timestep: at t near the end of the schedule x_t is
almost pure noise, near 0 it is almost the clean residual. Ranges calibrated on random timesteps therefore fit
none of the ones a few-step student actually visits. Here the student's own sampler is run on calibration
crops and every denoiser call is recorded, so the calibration set holds exactly the (x_t, t, condition)
triples deployment will see, the same number for each visited timestep. A latent restorer's decoder is
calibrated on the latents that sampler ends with, and its encoder on the images it encodes, for the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgeir.errors import ImageError
from edgeir.models.restorer import RestorerModel

# A UNet's (x_t, t, condition), an encoder's (image,) or a decoder's (latent,), batch 1 each
Sample = tuple[torch.Tensor, ...]


def calibration_conditions(restorer: RestorerModel, images: Sequence[np.ndarray], count: int, crop: int,
                           seed: int = 0) -> torch.Tensor:
    """``count`` conditions (count, C, s, s) of random S x S crops of ``images``, degraded by the task; S is
    ``crop`` or the smallest image side, rounded down to the network's size multiple (s: S, or a low-resolution
    condition's side)."""
    task = restorer.task
    multiple = max(restorer.config.multiple_of, task.scale)
    size = min(crop, *(min(img.shape[:2]) for img in images)) // multiple * multiple
    if size < multiple:
        raise ImageError(f"calibration images must be at least {multiple}x{multiple} pixels")
    rng = np.random.default_rng(seed)
    conds = []
    for i in range(count):
        img = images[i % len(images)]
        y, x = (int(rng.integers(0, s - size + 1)) for s in img.shape[:2])
        gt = img[y : y + size, x : x + size]
        conds.append(restorer.condition(task.degrade(gt, rng)))
    return torch.from_numpy(np.stack(conds)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def record_inputs(restorer: RestorerModel, conds: torch.Tensor, seed: int = 0, parts: Sequence[str] = ("unet",)
                  ) -> dict[str, list[Sample]]:
    """Run the restorer's default sampler on ``conds`` and return, per part (``unet``, and a latent restorer's
    ``encoder`` and ``decoder``), every input it gave that part: image by image, each in sampler order, so
    every whole number of images holds each visited timestep equally often."""
    modules = {"unet": restorer.denoiser}
    if restorer.codec is not None:
        modules.update(encoder=restorer.codec.encoder, decoder=restorer.codec.decoder)
    calls: dict[str, list[tuple[torch.Tensor, ...]]] = {part: [] for part in parts}

    def recorder(part: str):
        return lambda _module, args: calls[part].append(tuple(a.detach().cpu() for a in args))

    device = next(restorer.parameters()).device
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((conds.shape[0], *restorer.sample_size(*conds.shape[-2:])), generator=g)
    handles = [modules[part].register_forward_pre_hook(recorder(part)) for part in parts]
    try:
        restorer.restore_tensor(conds.to(device), noise.to(device), generator=g)
    finally:
        for handle in handles:
            handle.remove()
    # calls[part][k] is the part's k-th call for the whole batch; split it into per-image samples.
    return {part: [tuple(a[i : i + 1] for a in args) for i in range(conds.shape[0]) for args in calls[part]]
            for part in parts}


def calibration_sets(restorer: RestorerModel, images: Sequence[np.ndarray], size: int, crop: int, seed: int = 0,
                     parts: Sequence[str] = ("unet",)) -> dict[str, list[Sample]]:
    """Per part, its inputs from about ``size`` UNet calls (rounded down to whole sampler runs, at least one)
    of the restorer's sampler, balanced across the timesteps it visits (the encoder and decoder run once a
    run)."""
    steps = len(restorer.steps())
    conds = calibration_conditions(restorer, images, max(1, size // steps), crop, seed)
    return record_inputs(restorer, conds, seed, parts)


def calibration_set(restorer: RestorerModel, images: Sequence[np.ndarray], size: int, crop: int, seed: int = 0
                    ) -> list[Sample]:
    """The UNet's ``calibration_sets``."""
    return calibration_sets(restorer, images, size, crop, seed)["unet"]
