"""A diffusers ``UNet2DModel`` folder (as written by ``save_pretrained``) as an edgeir restorer.

The UNet takes ``concat(x_t, condition)`` on its channels (``edgeir.models.diffusers_unet``). diffusers' folder
says nothing about the task, so an ``edgeir.json`` next to it gives the rest of the ``RestorerConfig`` (task,
prediction, schedule, and ``target``: whether the UNet's clean sample is the residual over the task's base
image, edgeir's default, or the whole image, as most published restorers are trained)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeir.configfile import read_json
from edgeir.errors import CheckpointError, validation_message
from edgeir.models.config import RestorerConfig

SIDECAR = "edgeir.json"


def diffusers_config(folder: Path, unet_config: dict[str, Any]) -> RestorerConfig:
    sidecar = folder / SIDECAR
    if not sidecar.exists():
        raise CheckpointError(f"{folder}: a diffusers UNet2DModel folder needs an {SIDECAR} with at least "
                              '{"task": {"name": "sr", "scale": 4}, "prediction": "eps"}')
    extra = read_json(sidecar, "model config", CheckpointError)
    if not isinstance(extra, dict):
        raise CheckpointError(f"{sidecar}: invalid config: not a JSON object")
    clean = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    try:
        return RestorerConfig.model_validate({**extra, "network": {"type": "diffusers_unet2d", "config": clean}})
    except ValidationError as e:
        raise CheckpointError(f"{sidecar}: invalid config: {validation_message(e)}") from None
