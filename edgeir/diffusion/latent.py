"""Where a latent restorer samples: an autoencoder's latent space, ``factor`` times smaller than the image on
each side, with ``channels`` channels. Torch-free, since the bundle manifest, the restore graph and the runtime
need its geometry as much as the torch model does.

The UNet is conditioned by concatenation with one of two things (``condition``):

* ``lowres``: the low-resolution input itself, which is already at latent resolution (diffusers'
  ``LDMSuperResolutionPipeline``: super-resolution whose scale is the autoencoder's factor);
* ``latent``: the encoder's latent of the task's base image (the bicubic upsampling for super-resolution, the
  blurred image for deblurring), as ResShift, SinSR and StableSR condition theirs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeir.tasks import Degraded, Task

Condition = Literal["lowres", "latent"]


class LatentSpace(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    factor: int = Field(ge=2, le=64)  # image pixels per latent pixel, along each side
    channels: int = Field(ge=1, le=64)
    condition: Condition = "latent"

    @model_validator(mode="after")
    def _power_of_two(self) -> LatentSpace:
        if self.factor & (self.factor - 1):
            raise ValueError(f"the latent factor must be a power of two, got {self.factor}")
        return self

    @property
    def unet_cond_channels(self) -> int:
        return 3 if self.condition == "lowres" else self.channels

    def problem(self, task: Task) -> str | None:
        """Why this latent space cannot serve ``task``, or None."""
        if self.condition == "lowres" and (task.name != "sr" or task.scale != self.factor):
            return (f"a UNet conditioned on the low-resolution image needs super-resolution by the autoencoder's "
                    f"factor ({self.factor}), not {task.name} x{task.scale}")
        if self.condition == "latent" and task.cond_channels != 3:
            return f"{task.name}'s condition has {task.cond_channels} channels; a latent condition encodes 3"
        return None

    def condition_input(self, task: Task, d: Degraded) -> np.ndarray:
        """HxWx3 in [-1, 1]: what the torch model and the restore graph condition on before any encoder, the
        low-resolution image or the task's base image at output resolution."""
        if self.condition == "lowres":
            return d.image.astype(np.float32) * 2 - 1
        return task.condition(d)

    def size(self, height: int, width: int) -> tuple[int, int]:
        """The latent's sides for an image of ``height`` x ``width`` (a multiple of ``factor``)."""
        return height // self.factor, width // self.factor
