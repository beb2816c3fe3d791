"""A diffusers ``UNet2DModel`` folder (as written by ``save_pretrained``) as an edgeir denoiser.

The UNet takes ``concat(x_t, condition)`` on its channels. diffusers' folder says nothing about the task, so
an ``edgeir.json`` next to it gives the rest of the ``RestorerConfig`` (task, prediction, schedule, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from edgeir.errors import CheckpointError, validation_message
from edgeir.models.config import DiffusersUNetSpec, RestorerConfig

SIDECAR = "edgeir.json"


class DiffusersUNet(nn.Module):
    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DiffusersUNet":
        try:
            from diffusers import UNet2DModel
        except ImportError:
            raise ImportError("diffusers is not installed (pip install 'edgeir[diffusers]')") from None
        return cls(UNet2DModel.from_config(config))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x_t, cond], dim=1), t).sample

    # Our checkpoints store the bare UNet's keys so diffusers' own weight files load unchanged.
    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        return self.unet.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        return self.unet.load_state_dict(state_dict, strict=strict, assign=assign)


def diffusers_config(folder: Path, unet_config: dict[str, Any]) -> RestorerConfig:
    sidecar = folder / SIDECAR
    if not sidecar.exists():
        raise CheckpointError(f"{folder}: a diffusers UNet2DModel folder needs an {SIDECAR} with at least "
                              '{"task": {"name": "sr", "scale": 4}, "prediction": "eps"}')
    try:
        extra = json.loads(sidecar.read_text())
        clean = {k: v for k, v in unet_config.items() if not k.startswith("_")}
        return RestorerConfig.model_validate({**extra, "network": DiffusersUNetSpec(config=clean).model_dump()})
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{sidecar}: corrupt JSON ({e})") from None
    except ValidationError as e:
        raise CheckpointError(f"{sidecar}: invalid config: {validation_message(e)}") from None
