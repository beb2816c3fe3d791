"""The shipped teachers' designs. Each is a 2.7M-parameter UNet working at reduced resolution that predicts
the scaled residual over the task's base image (x0 prediction, cosine schedule)."""

from __future__ import annotations

from edgeir.models.config import EdgeUNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.unet import UNetConfig
from edgeir.tasks import DeblurTask, InpaintTask, SRTask

PRESETS: dict[str, RestorerConfig] = {
    "sr4x": RestorerConfig(
        task=SRTask(scale=4),
        network=EdgeUNetSpec(config=UNetConfig(cond_channels=3, unshuffle=4, channels=(64, 96, 128))),
        residual_scale=5.0,
        sampler=SamplerConfig(steps=50),
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
}
