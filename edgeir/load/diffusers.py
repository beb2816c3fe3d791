"""A diffusers ``UNet2DModel`` folder (as written by ``save_pretrained``) as an edgeir restorer.

The UNet takes ``concat(x_t, condition)`` on its channels (``edgeir.models.diffusers_unet``). diffusers' folder
says nothing about the task, so an ``edgeir.json`` next to it gives the rest of the ``RestorerConfig`` (task,
prediction, schedule, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeir.errors import CheckpointError, validation_message
from edgeir.models.config import DiffusersUNetSpec, RestorerConfig

SIDECAR = "edgeir.json"


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
