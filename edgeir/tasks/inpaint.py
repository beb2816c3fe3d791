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
from edgeir.tasks.fill import biharmonic_holes, hole_box, pyramid_fill

# Each fill as the values it gives the holes, row-major
FILLS = {"pyramid": lambda image, mask: pyramid_fill(image, mask)[mask], "biharmonic": biharmonic_holes}


def hole_feeds(image: np.ndarray, mask: np.ndarray, holes: np.ndarray, fill: np.ndarray) -> dict[str, np.ndarray]:
    """The (1, H, W, 1) uint8 mask, the (N,) holes and their (N, 3) fill, as a restore graph takes them. A frame
    (or band) without holes gets one at its first pixel filled with that pixel's own value, which changes
    nothing, so no input is ever empty (TensorRT profiles start at one)."""
    if not holes.size:
        first = image[:1, :1].reshape(1, 3)
        holes = np.zeros(1, np.int64)
        fill = first.astype(np.float32) / np.float32(255) if first.dtype == np.uint8 else first.astype(np.float32)
    return {"mask": mask.astype(bool, copy=False).view(np.uint8)[None, ..., None], "holes": holes, "fill": fill}


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
        cond = np.empty(mask.shape + (4,), np.float32)
        cond[..., :3] = d.image
        holes, fill = self.fill_holes(d.image, mask)
        cond.reshape(-1, 4)[holes, :3] = fill
        cond[..., 3] = mask
        cond *= 2
        cond -= 1
        return cond

    def graph_feeds(self, image: np.ndarray, mask: np.ndarray | None) -> dict[str, np.ndarray]:
        """A restore graph's inputs besides the frame (``edgeir.graphs.restore``): the mask, the holes' flat
        indices and their fill."""
        if mask is None:
            mask = np.zeros(image.shape[:2], bool)
        return hole_feeds(image, mask, *self.fill_holes(image, mask))

    def fill_holes(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) int64 flat indices of the holes, row-major, and (N, 3) float32 values in [0, 1] filling them:
        what a restore graph takes besides the frame, since the fill is a sparse solve. ``image``: HxWx3
        floats in [0, 1], or uint8."""
        box = hole_box(mask)
        if box is None:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
        crop = image[box]
        if crop.dtype == np.uint8:  # the division from_array makes, on the crop only
            crop = crop.astype(np.float32)
            crop /= np.float32(255)
        return np.flatnonzero(mask).astype(np.int64), FILLS[self.fill](crop, mask[box])

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
