import numpy as np
import pytest
import torch

from edgeir.models.config import EdgeUNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.models.unet import UNetConfig
from edgeir.tasks import SRTask

torch.set_num_threads(1)  # CI has 2 cores; tiny models gain nothing from more


def tiny_config(task=None, **unet) -> RestorerConfig:
    task = task or SRTask(scale=2)
    cfg = UNetConfig(cond_channels=task.cond_channels, unshuffle=2, channels=(8, 16), norm_groups=4,
                     attention_heads=2, time_embed_dim=16, **unet)
    return RestorerConfig(task=task, network=EdgeUNetSpec(config=cfg), residual_scale=4.0,
                          sampler=SamplerConfig(steps=4))


def tiny_diffusers_unet(seed: int = 0):
    """A diffusers UNet2DModel with attention and both resamplers, on concat(x_t, a 3-channel condition)."""
    import diffusers

    torch.manual_seed(seed)
    return diffusers.UNet2DModel(sample_size=16, in_channels=6, out_channels=3, block_out_channels=(16, 32),
                                 layers_per_block=1, norm_num_groups=4, attention_head_dim=8,
                                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))


@pytest.fixture
def tiny_restorer() -> RestorerModel:
    torch.manual_seed(0)
    return RestorerModel(tiny_config()).eval()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
