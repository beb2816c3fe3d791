"""Inpainting: free-form strokes and boxes. The condition is the masked image, its holes pre-filled by a cheap
smooth fill (``edgeir.tasks.fill``), plus a mask channel; the baseline is scikit-image's biharmonic inpainting;
known pixels are kept in the output.

The pre-fill matters: with mid-grey holes the network must produce the whole hole content as its residual and,
since holes are a small share of the pixels, it learns to leave them greyish. With a smooth fill as the base it
only adds what a smooth fill misses, as the super-resolution and deblurring networks do. The fill is part of
the model's contract (its config names it): a network trained on one fill's base sees another's as a shift."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from edgeir.tasks.base import Degraded, Task
from edgeir.tasks.fill import biharmonic_fill, near_holes, pyramid_fill

FILLS = {"pyramid": pyramid_fill, "biharmonic": biharmonic_fill}


def _draw_mask(h: int, w: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for k in ("strokes", "boxes") if kind == "mixed" else (kind,):
        if k == "strokes":
            for _ in range(int(rng.integers(1, 4))):
                x, y = rng.uniform(0, w), rng.uniform(0, h)
                width = int(rng.integers(max(2, min(h, w) // 32), max(3, min(h, w) // 10)))
                for _ in range(int(rng.integers(2, 6))):
                    a, r = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.4) * min(h, w)
                    nx, ny = np.clip(x + r * np.cos(a), 0, w - 1), np.clip(y + r * np.sin(a), 0, h - 1)
                    draw.line([(x, y), (nx, ny)], fill=255, width=width, joint="curve")
                    x, y = nx, ny
        else:
            bh, bw = (max(1, int(rng.uniform(0.1, 0.3) * s)) for s in (h, w))
            y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
            draw.rectangle([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=255)
    return np.asarray(img) > 0


def random_mask(h: int, w: int, rng: np.random.Generator, kind: str, max_coverage: float) -> np.ndarray:
    """True where pixels are missing. Strokes imitate a user's brush; boxes imitate removed objects. Masks
    covering more than ``max_coverage`` are redrawn, so enough context is left to restore from."""
    for _ in range(20):
        mask = _draw_mask(h, w, rng, kind)
        if mask.mean() <= max_coverage:
            return mask
    return mask & (np.arange(h)[:, None] % 2 == 0)


class InpaintTask(Task):
    name: Literal["inpaint"] = "inpaint"
    cond_channels: int = 4
    mask: Literal["strokes", "boxes", "mixed"] = "mixed"
    max_coverage: float = Field(0.4, gt=0, le=0.9)
    # "pyramid" is what models without this field were trained on; "biharmonic" continues edges into holes
    fill: Literal["pyramid", "biharmonic"] = "pyramid"

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> Degraded:
        mask = random_mask(gt.shape[0], gt.shape[1], rng, self.mask, self.max_coverage)
        return Degraded(np.where(mask[..., None], 0.5, gt).astype(np.float32), mask)

    def condition(self, d: Degraded) -> np.ndarray:
        mask = d.mask if d.mask is not None else np.zeros(d.image.shape[:2], bool)
        cond = np.empty(mask.shape + (4,), np.float32)  # built in place: the runtime does this per frame
        cond[..., :3] = near_holes(FILLS[self.fill], d.image, mask)
        cond[..., 3] = mask
        cond *= 2
        cond -= 1
        return cond

    def loss_weight(self, cond):
        """Known pixels are pasted back into the output, so training spends its effort on the holes."""
        return 0.1 + (cond[:, 3:4] > 0)

    def baseline(self, d: Degraded) -> np.ndarray:
        from skimage.restoration import inpaint_biharmonic

        if d.mask is None or not d.mask.any():
            return d.image
        return np.clip(inpaint_biharmonic(d.image, d.mask, channel_axis=-1), 0, 1).astype(np.float32)

    def compose(self, restored: np.ndarray, d: Degraded) -> np.ndarray:
        if d.mask is None:
            return restored
        return np.where(d.mask[..., None], restored, d.image).astype(restored.dtype)
