"""Tiny random diffusers latent pipelines, saved as ``save_pretrained`` writes them, for the tests of loading,
sampling, compressing, exporting and running latent restorers. Two kinds, unlike each other and unlike the
shipped latent teacher: an LDM super-resolution pipeline (VQ autoencoder, UNet on the low-resolution image) and
a KL-autoencoder restorer whose UNet is conditioned on the latent of the task's base image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgeir.diffusion.steps import noise_channels
from edgeir.load.save_pipeline import ldm_sr_class
from edgeir.tasks import Degraded

SCHEDULERS = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler"}


def _save_index(folder: Path, name: str, components: dict[str, str]) -> None:
    index = {"_class_name": name, "_diffusers_version": "0.42.1",
             **{k: ["diffusers", v] for k, v in components.items()}}
    (folder / "model_index.json").write_text(json.dumps(index))


def ldm_sr(folder: Path, seed: int = 0, scheduler: str = "ddim", **scheduler_config) -> Path:
    """``LDMSuperResolutionPipeline``: a VQ-f4 autoencoder with attention in its deepest encoder block, 3 latent
    channels (the pipeline makes its latents with ``unet.in_channels // 2``), a UNet with attention on the way
    up, a scaled-linear DDIM schedule like LDM's."""
    import diffusers

    torch.manual_seed(seed)
    vq = diffusers.VQModel(in_channels=3, out_channels=3, latent_channels=3, vq_embed_dim=3,
                           num_vq_embeddings=64, block_out_channels=(8, 16, 16), layers_per_block=1,
                           norm_num_groups=4, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D",
                                                                "AttnDownEncoderBlock2D"),
                           up_block_types=("UpDecoderBlock2D",) * 3)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=6, out_channels=3, block_out_channels=(8, 16),
                                 layers_per_block=1, norm_num_groups=4, attention_head_dim=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    config = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.0015,
              "beta_end": 0.0155, "clip_sample": False, **scheduler_config}
    sched = getattr(diffusers, SCHEDULERS[scheduler])(**config)
    pipe = ldm_sr_class()(vqvae=vq, unet=unet, scheduler=sched)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def kl_restorer(folder: Path, seed: int = 0, task: dict | None = None, condition: str = "latent",
                scheduler: str = "ddim", **scheduler_config) -> Path:
    """A latent restorer no diffusers pipeline class describes: an ``AutoencoderKL`` (f2, 4 latent channels,
    scaling and shift factors), a UNet whose first block has attention, concatenated with the latent of the
    task's base image (or the low-resolution image), v-prediction, trailing DDIM spacing; its task in the
    ``edgeir.json`` sidecar."""
    import diffusers

    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 12),
                                  layers_per_block=1, norm_num_groups=4, scaling_factor=0.5, shift_factor=0.1,
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2)
    cond_channels = 4 if condition == "latent" else 3
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=4 + cond_channels, out_channels=4,
                                 block_out_channels=(12, 24), layers_per_block=1, norm_num_groups=6,
                                 attention_head_dim=6, down_block_types=("AttnDownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "AttnUpBlock2D"))
    config = {"num_train_timesteps": 1000, "prediction_type": "v_prediction", "timestep_spacing": "trailing",
              "clip_sample": False, **scheduler_config}
    sched = getattr(diffusers, SCHEDULERS[scheduler])(**config)
    folder.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    sched.save_pretrained(folder / "scheduler")
    _save_index(folder, "LatentRestorationPipeline", {"vae": "AutoencoderKL", "unet": "UNet2DModel",
                                                      "scheduler": SCHEDULERS[scheduler]})
    sidecar = {"task": task or {"name": "deblur"}, "condition": condition, "sampler": {"steps": 4}}
    (folder / "edgeir.json").write_text(json.dumps(sidecar))
    return folder


def ldm_pipeline(folder: Path):
    """diffusers' own LDMSuperResolutionPipeline for ``folder``, quiet."""
    pipe = ldm_sr_class().from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference_loop(folder: Path, cond_image: torch.Tensor, latents: torch.Tensor, steps: int, eta: float = 0.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A KL latent restorer sampled with diffusers' own components: the base image encoded (its mode, scaled),
    the UNet on concat(latents, that), diffusers' scheduler stepping, the latents decoded."""
    import diffusers

    vae = diffusers.AutoencoderKL.from_pretrained(folder / "vae")
    unet = diffusers.UNet2DModel.from_pretrained(folder / "unet")
    sched_cls = getattr(diffusers, json.loads((folder / "model_index.json").read_text())["scheduler"][1])
    sched = sched_cls.from_pretrained(folder / "scheduler")
    sf, shift = vae.config.scaling_factor, vae.config.shift_factor
    with torch.no_grad():
        cond = (vae.encode(cond_image).latent_dist.mode() - shift) * sf
        sched.set_timesteps(steps)
        x = latents * sched.init_noise_sigma
        for t in sched.timesteps:
            pred = unet(torch.cat([x, cond], 1), t).sample
            kwargs = {"eta": eta} if sched_cls is diffusers.DDIMScheduler else {}
            x = sched.step(pred, t, x, generator=generator, **kwargs).prev_sample
        return (vae.decode(x / sf + shift).sample.clamp(-1, 1) + 1) / 2


def one_tile_frame(restorer) -> np.ndarray:
    """Input pixels whose output (sides multiples of the network's, within a 32 px tile) is one tile."""
    cfg = restorer.config
    h, w = 32 // cfg.task.scale, 24 // cfg.task.scale
    return np.random.default_rng(3).random((h, w, 3)).astype(np.float32)


def runtime_noise(restorer, image: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    """The noise the runtime draws for ``image``'s frame when sampling ``steps`` steps: latent-sized, the
    latent's channels."""
    _, lh, lw = restorer.sample_size(*restorer.condition(Degraded(image)).shape[:2])
    k = noise_channels(restorer.steps(steps), restorer.config.sample_channels)
    return np.random.default_rng(seed).standard_normal((1, k, lh, lw), dtype=np.float32)
