"""The device-side restorer: ``Restorer.load(bundle)``, then ``restore(image)`` or ``stream(frames)``.

The host does as little as it can: each frame goes to the bundle's restore graph as it is (8-bit RGB as
uint8, NHWC) and comes back as pixels; condition, tiling, the sampler loop, blending and rounding all run in
the graph, on the device. What a frame size needs besides its pixels -- the noise field for the seed and the
tile index maps -- is made once and reused, so a stream of same-size frames makes it once (and a video's still
regions stay still: every frame starts from the same noise). Only inpainting's hole fill runs on the host,
since it is a sparse solve (``edgeir.tasks.fill``): near the holes only, handed to the graph as the holes' flat
indices and values.

Frames over ``max_call_pixels`` are restored in horizontal bands, each with a tile's worth of context above and
below and aligned to the tile grid: a band's kept rows come from the very tiles the whole frame would have used,
fed the very same condition and noise, so bands join without a seam while memory stays bounded.

A latent restorer's bundle runs the same way: its noise is latent-sized and its index maps are
``edgeir.graphs.layout.latent_maps``; the tile grid (in output pixels) lies on the latent grid, so bands do too.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeir.bundle.io import Bundle, load_bundle
from edgeir.bundle.manifest import Variant
from edgeir.data.images import MAX_PIXELS, Picture, from_array, to_array
from edgeir.errors import ConfigError, ImageError
from edgeir.graphs import layout
from edgeir.runtime.backends import STATIC, Session, cache_root, open_backend
from edgeir.tasks.base import resize
from edgeir.tasks.inpaint import hole_feeds

MAX_CALL_PIXELS = 2_100_000  # output pixels per graph call: a 1920x1080 frame is one call
PLANS = 2  # frame sizes whose noise and index maps are kept


@dataclass
class Band:
    """One graph call: input rows ``src`` (at input resolution) in, output rows ``keep`` of its result kept as
    frame rows ``dest``; with its noise and index maps, made once per frame size and seed."""

    src: slice
    keep: slice
    dest: slice
    static: dict[str, np.ndarray]


class Restorer:
    def __init__(self, bundle: Bundle, variant: Variant, session: Session, backend: str, notes: list[str],
                 max_call_pixels: int, open_variant):
        self.bundle, self.variant, self.session = bundle, variant, session
        self.manifest = bundle.manifest
        self.backend, self.notes = backend, notes
        self.max_call_pixels = max_call_pixels
        self._open = open_variant
        self._float: tuple[Variant, Session] | None = None
        self._plans: OrderedDict[tuple, list[Band]] = OrderedDict()
        self.graph_seconds = 0.0  # time inside the graph, so callers can tell host time from device time

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", variant: str | None = None, threads: int | None = None,
             max_call_pixels: int = MAX_CALL_PIXELS, workspace_mb: int = 1024, tile: int | None = None,
             trusted_keys: Sequence[str | Path] | None = None) -> Restorer:
        """``backend``: auto, tensorrt, ort-trt, ort-cuda or ort-cpu. ``variant``: default the bundle's first
        restore graph. ``threads``: onnxruntime's intra-op threads (default: one per core).
        ``max_call_pixels``: larger frames go in bands. ``workspace_mb``: TensorRT's builder workspace.
        ``tile``: the output tile side (default the variant's); a restore graph takes its tiles from the index
        maps it is fed, so any tile its overlap allows runs, a smaller one in less memory. ``trusted_keys``:
        ed25519 public key files; the bundle must then be signed by one of them (``edgeir export --sign``)."""
        bundle = load_bundle(path, trusted_keys)
        m = bundle.manifest
        try:
            v = m.variant(variant)
        except KeyError:
            if variant is None:
                raise ConfigError(f"{path}: has no restore graph (made by an older edgeir); compose one with "
                                  f"edgeir export {path} -o NEW_BUNDLE") from None
            raise ConfigError(f"{path}: no variant {variant!r} (it has {', '.join(x.name for x in m.variants)})"
                              ) from None
        if v.kind != "restore":
            raise ConfigError(f"variant {v.name} is a {v.kind} graph; the runtime runs restore graphs")
        if tile is not None:
            try:
                layout.check(tile, v.overlap or 0, m.multiple_of)
            except ValueError as e:
                raise ConfigError(f"{path}: variant {v.name}: {e}") from None
            v = v.model_copy(update={"tile": tile})
        cache = cache_root() / "engines" / bundle.digest

        def open_variant(chosen: Variant, name: str = backend) -> tuple[Session, str, list[str]]:
            return open_backend(name, bundle.read(chosen.graph), chosen, cache, threads, workspace_mb)

        session, used, notes = open_variant(v)
        return cls(bundle, v, session, used, notes, max_call_pixels, open_variant)

    @property
    def task(self):
        return self.manifest.task

    def describe(self) -> dict:
        v = self.variant
        return {"backend": self.backend, "variant": v.name, "precision": v.precision, "steps": len(v.steps),
                "tile": v.tile, "overlap": v.overlap, "pixels": v.pixels}

    # ---- whole images -------------------------------------------------------------------------------------

    def restore(self, image: np.ndarray, seed: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
        """uint8 or uint16 HxW or HxWxC (grey, grey+alpha, RGB, RGBA) -> the same dtype and channels at
        output resolution. Inpainting: ``mask`` (HxW bool, True = missing) or transparent pixels. 8-bit RGB
        goes to the graph as it is."""
        if image.dtype == np.uint8 and image.ndim == 3 and self.variant.pixels == "uint8":
            if image.shape[2] == 3 and self.task.name != "inpaint":
                self._check_size(*image.shape[:2])
                return self._frame(image, seed)
            if self.task.name == "inpaint" and image.shape[2] == (3 if mask is not None else 4):
                self._check_size(*image.shape[:2])
                mask = self._mask(image[..., 3] < 128 if mask is None else mask, *image.shape[:2])
                return self._frame(np.ascontiguousarray(image[..., :3]), seed, mask=mask)
        return to_array(self.restore_picture(from_array(image), seed, mask))

    def restore_picture(self, pic: Picture, seed: int = 0, mask: np.ndarray | None = None) -> Picture:
        """Alpha is not restored: super-resolution upsamples it (bicubic), other tasks pass it through, and
        inpainting reads holes from it when no mask is given (the filled output is then opaque). 16-bit
        pictures go through the bundle's float32 restore graph, so no precision is lost on the way."""
        alpha = pic.alpha
        h, w = pic.rgb.shape[:2]
        self._check_size(h, w)
        if self.task.name == "inpaint" and mask is None:
            if alpha is None:
                raise ImageError("inpainting needs a mask: mark the holes as transparent pixels (alpha = 0)")
            mask, alpha = alpha < 0.5, None
        elif alpha is not None and self.task.scale > 1:
            s = self.task.scale
            alpha = np.clip(resize(alpha[..., None], (h * s, w * s))[..., 0], 0, 1)
        if mask is not None:
            mask = self._mask(mask, h, w)
        variant, session = self._for_depth(pic.bit_depth)
        if variant.pixels == "uint8":  # 8-bit values, exactly as they were read
            frame = (pic.rgb * 255 + 0.5).astype(np.uint8)
        else:
            frame = np.ascontiguousarray(pic.rgb, dtype=np.float32)
        out = self._frame(frame, seed, variant, session, mask)
        rgb = out.astype(np.float32) / np.float32(255) if out.dtype == np.uint8 else out
        return Picture(rgb, alpha, pic.bit_depth, pic.gray)

    @staticmethod
    def _mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
        if mask.shape != (h, w):
            raise ImageError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}")
        return mask.astype(bool, copy=False)

    def _check_size(self, h: int, w: int) -> None:
        s = self.task.scale
        if not h or not w:
            raise ImageError("image has zero size")
        if min(h, w) * s < self.manifest.min_size:
            raise ImageError(f"{w}x{h} is too small: outputs must be at least {self.manifest.min_size} pixels "
                             "on each side")
        if h * w * s * s > MAX_PIXELS:
            raise ImageError(f"{w}x{h} would give a {w * s}x{h * s} output, over the {MAX_PIXELS:,}-pixel limit")

    def _for_depth(self, bit_depth: int) -> tuple[Variant, Session]:
        """The graph for pictures of ``bit_depth``: 16-bit ones need float32 pixels in and out."""
        if bit_depth == 8 or self.variant.pixels == "float32":
            return self.variant, self.session
        if self._float is None:
            v = self.variant
            twin = next((x for x in self.manifest.variants if x.kind == "restore" and x.pixels == "float32"
                         and (x.overlap, x.precision, x.steps) == (v.overlap, v.precision, v.steps)), None)
            if twin is None:
                raise ImageError(f"16-bit images need a float32 restore graph, which {self.bundle.path} lacks")
            twin = twin.model_copy(update={"tile": v.tile})  # the tile this restorer was loaded with
            self._float = (twin, self._open(twin, self.backend)[0])
        return self._float

    # ---- frames -------------------------------------------------------------------------------------------

    def stream(self, frames: Iterable[np.ndarray], seed: int = 0) -> Iterator[np.ndarray]:
        """Restore a sequence of frames (HxWx3 uint8, or what ``restore`` takes), yielding each result in turn.
        While the graph runs on frame N, the caller's iteration makes frame N+1 (decoding it, say) and handles
        result N-1 (encoding it): the host and the device work at the same time. Frames of one size share one
        noise field and one set of index maps, made for the first of them."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for frame in frames:
                future = pool.submit(self.restore, frame, seed)
                if pending is not None:
                    yield pending.result()
                pending = future
            if pending is not None:
                yield pending.result()

    def _frame(self, frame: np.ndarray, seed: int, variant: Variant | None = None,
               session: Session | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """One frame's HxWx3 pixels at input resolution (and inpainting's hole ``mask``) -> the HxWx3 output
        pixels, through the restore graph, in bands if it is large."""
        variant, session = variant or self.variant, session or self.session
        s = self.task.scale
        h, w = frame.shape[0] * s, frame.shape[1] * s
        bands = self._plan(h, w, seed, variant)
        holes = self.task.graph_feeds(frame, mask) if self.task.name == "inpaint" else {}  # type: ignore
        if len(bands) == 1:
            return self._graph(session, {"image": frame[None], **holes, **bands[0].static})[0]
        out = np.empty((h, w, 3), np.dtype(variant.pixels))
        for band in bands:
            part = {"image": np.ascontiguousarray(frame[band.src])[None]}
            if holes:
                part.update(_band_holes(frame, holes, band.src))
            out[band.dest] = self._graph(session, {**part, **band.static})[0, band.keep]
        return out

    def _graph(self, session: Session, feeds: dict[str, np.ndarray]) -> np.ndarray:
        start = time.perf_counter()
        out = session.run(feeds, STATIC)
        self.graph_seconds += time.perf_counter() - start
        return out

    def _plan(self, h: int, w: int, seed: int, variant: Variant) -> list[Band]:
        """The bands of an ``h`` x ``w`` output frame, with their noise and index maps: made at the first frame
        of a size and seed, then reused."""
        key = (h, w, seed, variant.tile, variant.overlap, variant.noise_channels)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        tile, overlap = variant.tile, variant.overlap
        assert tile is not None and overlap is not None
        latent = self.manifest.latent.space if self.manifest.latent else None
        noise = np.random.default_rng(seed).standard_normal(
            (1, variant.noise_channels, *layout.sample_shape(h, w, latent)), dtype=np.float32)
        f = latent.factor if latent else 1
        s = self.task.scale
        m = self.manifest.multiple_of
        bands = []
        for top, bottom, keep_top, keep_bottom in band_rows(h, w, tile, overlap, s, self.max_call_pixels):
            static = {"noise": np.ascontiguousarray(noise[:, :, top // f: -(-bottom // f)]),
                      **layout.tile_maps(bottom - top, w, tile, overlap, m, latent)}
            bands.append(Band(slice(top // s, bottom // s), slice(keep_top - top, keep_bottom - top),
                              slice(keep_top, keep_bottom), static))
        self._plans[key] = bands
        if len(self._plans) > PLANS:
            self._plans.popitem(last=False)
        return bands


def _band_holes(frame: np.ndarray, feeds: dict[str, np.ndarray], rows: slice) -> dict[str, np.ndarray]:
    """Inpainting's hole inputs for a band of rows of ``frame``: the frame's fill (worked out once, on the
    whole frame, so bands join exactly), its holes renumbered from the band's first row."""
    width, holes = frame.shape[1], feeds["holes"]
    lo, hi = np.searchsorted(holes, [rows.start * width, rows.stop * width])
    return hole_feeds(frame[rows], feeds["mask"][0, rows, :, 0].view(bool), holes[lo:hi] - rows.start * width,
                      feeds["fill"][lo:hi])


def band_rows(h: int, w: int, tile: int, overlap: int, scale: int, max_pixels: int
              ) -> list[tuple[int, int, int, int]]:
    """(top, bottom, keep_top, keep_bottom) output rows of each graph call. A band reaches ``tile`` plus a few
    rows (the condition's bicubic support) beyond the rows it keeps, rounded out to the tile grid, so the tiles
    behind every kept row see exactly what they would in the whole frame."""
    stride = tile - overlap
    if h * w <= max_pixels or stride % scale:
        return [(0, h, 0, h)]
    context = -(-(tile + 3 * scale) // stride) * stride
    rows = max(stride, (max_pixels // w - 2 * context) // stride * stride)
    out = []
    for keep_top in range(0, h, rows):
        keep_bottom = min(h, keep_top + rows)
        out.append((max(0, keep_top - context), min(h, keep_bottom + context), keep_top, keep_bottom))
    return out
