"""What every task provides. Images are float32 HxWx3 in [0, 1]; conditions are float32 HxWxC in [-1, 1] at
output resolution (the network unshuffles them itself)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from edgeir.errors import ConfigError


@dataclass
class Degraded:
    image: np.ndarray  # what the user has: low-res, blurred or holed image, HxWx3 in [0, 1]
    mask: np.ndarray | None = None  # inpainting only: HxW bool, True where pixels are missing
    # deblurring only: the blur kernel, known when the image was degraded here (evaluation), never to a model
    kernel: np.ndarray | None = None


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    scale: int = 1
    cond_channels: int = 3
    # What the model was trained for (edgeir.tasks.degradations); "clean" is the task's own degrade, the one
    # every model made before this field degrades with.
    degradation: str = "clean"
    degradations: ClassVar[tuple[str, ...]] = ("clean",)

    @field_validator("degradation")
    @classmethod
    def _known_degradation(cls, name: str) -> str:
        if name not in cls.degradations:
            raise ValueError(f"the {cls.model_fields['name'].default} task has no degradation {name!r} (it takes "
                             f"{', '.join(cls.degradations)})")
        return name

    def with_degradation(self, name: str) -> Task:
        """This task degrading with ``name`` instead (an evaluation under another degradation)."""
        try:
            return type(self).model_validate({**self.model_dump(), "degradation": name})
        except ValidationError as e:
            raise ConfigError(e.errors()[0]["msg"].removeprefix("Value error, ")) from None

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> Degraded:
        raise NotImplementedError

    def condition(self, d: Degraded) -> np.ndarray:
        """The network's condition at output resolution, in [-1, 1]; its first 3 channels are the base image
        that the network's residual is added to."""
        return d.image.astype(np.float32) * 2 - 1

    def baseline(self, d: Degraded) -> np.ndarray:
        """The strongest classical restoration of ``d``: the one every model must beat."""
        return np.clip(self.condition(d)[..., :3] * 0.5 + 0.5, 0, 1)

    def baselines(self) -> dict[str, Callable[[Degraded], np.ndarray]]:
        """Classical restorations by name, ``baseline`` first, then any weaker one a practitioner might try
        (reports show them all, so the margin over each is visible)."""
        return {"baseline": self.baseline}

    def loss_weight(self, cond):
        """Per-pixel weight of the training loss (tensors or arrays); uniform unless a task says otherwise."""
        return 1.0

    def compose(self, restored: np.ndarray, d: Degraded) -> np.ndarray:
        """Final output from the network's image (inpainting keeps the known pixels)."""
        return restored

    def crop_gt(self, gt: np.ndarray) -> np.ndarray:
        """Crop ground truth so that its size is a multiple of the scale."""
        h, w = gt.shape[0] // self.scale * self.scale, gt.shape[1] // self.scale * self.scale
        return gt[:h, :w]


def resize(image: np.ndarray, size_hw: tuple[int, int],
           resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """Resize of a float HxWxC image with Pillow (bicubic unless told; antialiased when shrinking, like MATLAB's
    imresize). Training and the runtime both resize through here, so conditions match bit for bit."""
    h, w = size_hw
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F")
                   .resize((w, h), resample))
        for c in range(image.shape[2])
    ]
    return np.stack(chans, axis=-1)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return image
    return np.clip(image + rng.normal(0, sigma, image.shape).astype(np.float32), 0, 1)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A round trip through Pillow's JPEG encoder (8-bit, 4:2:0 chroma) of an HxWx3 image in [0, 1]."""
    buf = io.BytesIO()
    Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf), dtype=np.float32) / 255
