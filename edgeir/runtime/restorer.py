"""The device-side restorer: ``Restorer.load(bundle)`` then ``restore(image)``.

The condition is built by ``edgeir.tasks`` exactly as in training, the noise is one field per image drawn from
``numpy.random.default_rng(seed)``, tiles run through the bundle's graph, and the task composes the result
(inpainting keeps the known pixels). A ``unet`` variant runs the sampler loop of ``edgeir.diffusion`` in numpy:
the same loop and step maths the torch sampler runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeir.bundle.io import Bundle, load_bundle
from edgeir.bundle.manifest import Variant
from edgeir.data.images import MAX_PIXELS, Picture, from_array, to_array
from edgeir.diffusion.sample import sample
from edgeir.diffusion.steps import to_x0
from edgeir.errors import ConfigError, ImageError
from edgeir.runtime.backends import Shapes, cache_root, open_backend
from edgeir.runtime.tiling import noise_field, restore_tiled
from edgeir.tasks import Degraded
from edgeir.tasks.base import resize

GPU_BATCH = 4  # tiles per graph call on GPU backends; CPU backends gain nothing from batching


class Restorer:
    def __init__(self, bundle: Bundle, variant: Variant, session, backend: str, notes: list[str], tile: int,
                 batch: int):
        self.bundle, self.variant, self.session = bundle, variant, session
        self.manifest = bundle.manifest
        self.backend, self.notes = backend, notes
        self.tile, self.batch = tile, batch
        self.overlap = min(self.manifest.overlap, tile // 4)
        self.graph_seconds = 0.0  # time spent inside the graph, for measuring the runtime's own overhead

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", variant: str | None = None, tile: int | None = None,
             batch: int | None = None, threads: int | None = None) -> Restorer:
        """``backend``: auto, tensorrt, ort-trt, ort-cuda or ort-cpu. ``variant``/``tile``/``batch`` default to
        the bundle's first variant and recommended tile (``edgeir bench --budget-ms`` finds better ones).
        ``threads``: onnxruntime's intra-op threads (default: one per core)."""
        bundle = load_bundle(path)
        m = bundle.manifest
        try:
            v = m.variant(variant)
        except KeyError:
            raise ConfigError(f"{path}: no variant {variant!r} (it has {', '.join(x.name for x in m.variants)})"
                              ) from None
        tile = tile or m.tile
        if tile % m.multiple_of or tile < m.min_size:
            raise ConfigError(f"tile {tile} must be a multiple of {m.multiple_of} and at least {m.min_size}")
        shapes = Shapes(batch or GPU_BATCH, tile, tile, m.multiple_of)
        cache = cache_root() / "engines" / bundle.digest
        session, used, notes = open_backend(backend, bundle.files[v.graph], v, cache, shapes, threads)
        return cls(bundle, v, session, used, notes, tile, batch or (1 if used == "ort-cpu" else GPU_BATCH))

    @property
    def task(self):
        return self.manifest.task

    def describe(self) -> dict:
        return {"backend": self.backend, "variant": self.variant.name, "precision": self.variant.precision,
                "steps": len(self.variant.steps), "tile": self.tile, "overlap": self.overlap,
                "batch": self.batch}

    def restore(self, image: np.ndarray, seed: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
        """uint8 or uint16 HxW or HxWxC (grey, grey+alpha, RGB, RGBA) -> the same dtype and channels at
        output resolution. Inpainting: ``mask`` (HxW bool, True = missing) or transparent pixels."""
        return to_array(self.restore_picture(from_array(image), seed, mask))

    def restore_picture(self, pic: Picture, seed: int = 0, mask: np.ndarray | None = None) -> Picture:
        """Alpha is not restored: super-resolution upsamples it (bicubic), other tasks pass it through, and
        inpainting reads holes from it when no mask is given (the filled output is then opaque)."""
        alpha = pic.alpha
        if self.task.name == "inpaint" and mask is None:
            if alpha is None:
                raise ImageError("inpainting needs a mask: mark the holes as transparent pixels (alpha = 0)")
            mask, alpha = alpha < 0.5, None
        elif alpha is not None and self.task.scale > 1:
            h, w = alpha.shape
            alpha = np.clip(resize(alpha[..., None], (h * self.task.scale, w * self.task.scale))[..., 0], 0, 1)
        return Picture(self.restore_rgb(pic.rgb, seed, mask), alpha, pic.bit_depth, pic.gray)

    def restore_rgb(self, rgb: np.ndarray, seed: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
        """HxWx3 float32 in [0, 1] -> restored HxWx3 float32 in [0, 1] at output resolution."""
        h, w = rgb.shape[:2]
        s = self.task.scale
        if min(h, w) * s < self.manifest.min_size:
            raise ImageError(f"{w}x{h} is too small: outputs must be at least {self.manifest.min_size} pixels "
                             "on each side")
        if h * w * s * s > MAX_PIXELS:
            raise ImageError(f"{w}x{h} would give a {w * s}x{h * s} output, over the {MAX_PIXELS:,}-pixel limit")
        if mask is not None and mask.shape != (h, w):
            raise ImageError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}")
        d = Degraded(rgb.astype(np.float32), None if mask is None else mask.astype(bool))
        cond = np.ascontiguousarray(self.task.condition(d).transpose(2, 0, 1))
        noise = noise_field(seed, self.variant.noise_channels, *cond.shape[1:])
        out = restore_tiled(self._run_tiles, cond, noise, self.tile, self.overlap, self.manifest.multiple_of,
                            self.batch)
        return self.task.compose(out.transpose(1, 2, 0), d)

    def _graph(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        start = time.perf_counter()
        out = self.session.run(feeds)
        self.graph_seconds += time.perf_counter() - start
        return out

    def _run_tiles(self, cond: np.ndarray, noise: np.ndarray) -> np.ndarray:
        v = self.variant
        if v.kind == "sampler":
            return self._graph({"condition": cond, "noise": noise})
        t = np.empty(cond.shape[0], np.float32)
        fresh = iter([noise[:, i:i + 3] for i in range(3, noise.shape[1], 3)])  # one slice per stochastic step

        def x0(x_t: np.ndarray, step) -> np.ndarray:
            t.fill(step.t)
            pred = self._graph({"x_t": x_t, "t": t, "condition": cond})
            return to_x0(pred, x_t, step.sqrt_ab, step.sqrt_1mab, v.prediction)

        residual = sample(x0, noise[:, :3] * np.float32(v.temperature), v.steps, lambda like: next(fresh))
        # Restorer.to_image in numpy: the residual is added to the condition's base image
        return np.clip((cond[:, :3] + residual / np.float32(v.residual_scale)) * 0.5 + 0.5, 0, 1)
