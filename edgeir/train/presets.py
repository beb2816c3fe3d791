"""The shipped teachers' designs. The pixel-space ones are each a 2.7M-parameter UNet working at reduced
resolution that predicts the scaled residual over the task's base image (x0 prediction, cosine schedule).
``sr4x-latent`` is a latent one in the form published restorers take (LDM super-resolution): a 1M-parameter
VQ-f4 autoencoder with 3 latent channels and a 3.5M-parameter diffusers UNet on ``concat(latent,
low-resolution image)`` predicting the noise, with LDM's scaled-linear DDIM schedule; it is saved as a
diffusers ``LDMSuperResolutionPipeline``."""

from __future__ import annotations

from edgeir.diffusion.scheduler import DiffusersSchedule
from edgeir.models.config import (
    AutoencoderSpec,
    DiffusersUNetSpec,
    EdgeUNetSpec,
    RestorerConfig,
    SamplerConfig,
)
from edgeir.models.unet import UNetConfig
from edgeir.tasks import DeblurTask, InpaintTask, SRTask

PRESETS: dict[str, RestorerConfig] = {
    "sr4x": RestorerConfig(
        task=SRTask(scale=4),
        network=EdgeUNetSpec(config=UNetConfig(cond_channels=3, unshuffle=4, channels=(64, 96, 128))),
        residual_scale=5.0,
        sampler=SamplerConfig(steps=50),
    ),
    # sr4x for inputs that went through what real pictures go through (edgeir.tasks.degradations: blur, noise,
    # JPEG, twice): the same network, fine-tuned from sr4x with --init, sampled as the shipped sr4x is.
    "sr4x-real": RestorerConfig(
        task=SRTask(scale=4, degradation="real"),
        network=EdgeUNetSpec(config=UNetConfig(cond_channels=3, unshuffle=4, channels=(64, 96, 128))),
        residual_scale=5.0,
        sampler=SamplerConfig(steps=50, temperature=0.7),
    ),
    "deblur": RestorerConfig(
        task=DeblurTask(),
        network=EdgeUNetSpec(config=UNetConfig(cond_channels=3, unshuffle=4, channels=(64, 96, 128))),
        residual_scale=5.0,
        sampler=SamplerConfig(steps=50),
    ),
    "inpaint": RestorerConfig(
        task=InpaintTask(fill="biharmonic"),
        network=EdgeUNetSpec(config=UNetConfig(cond_channels=4, unshuffle=4, channels=(64, 96, 128))),
        residual_scale=2.0,
        sampler=SamplerConfig(steps=50),
    ),
    "sr4x-latent": RestorerConfig(
        task=SRTask(scale=4),
        autoencoder=AutoencoderSpec(type="vq", condition="lowres", config={
            "in_channels": 3, "out_channels": 3, "latent_channels": 3, "vq_embed_dim": 3, "num_vq_embeddings": 1024,
            "block_out_channels": [32, 64, 64], "layers_per_block": 1, "norm_num_groups": 16,
            "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3}),
        network=DiffusersUNetSpec(config={
            "sample_size": 64, "in_channels": 6, "out_channels": 3, "block_out_channels": [48, 96, 128],
            "layers_per_block": 1, "norm_num_groups": 16, "attention_head_dim": 32,
            "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
            "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]}),
        prediction="eps",
        schedule=DiffusersSchedule(beta_schedule="scaled_linear", beta_start=0.0015, beta_end=0.0155,
                                   clip_sample=False),
        target="image",
        sampler=SamplerConfig(steps=50),
    ),
}
