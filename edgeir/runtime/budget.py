"""Latency on this machine, split into graph time and host time, and the configuration that meets a budget.

``time_restores`` times whole restores of a synthetic frame after a warm-up, each split into the time inside
the graph and the rest (the host's part), and optionally as a stream of same-size frames. ``plan`` walks the
bundle's restore variants in order (best quality first), takes the first whose p95 meets the latency budget
(else the fastest, marked as missing it) and records the choice as JSON, which ``Plan.load`` reopens.

With a memory budget, each variant runs in the first configuration whose measured peak (``edgeir.runtime.memory``)
fits it: its own tile in whole-frame calls first, then in narrower bands (the same output, since bands join
exactly, for the work of the context rows each band repeats), then smaller tiles (another cut of the frame, each
tile seeing less of it), each again in whole frames, then bands. A variant nothing fits is skipped; a bundle
nothing fits is refused in one line naming the least it needs.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeir.bundle.manifest import Variant
from edgeir.errors import ConfigError
from edgeir.files import write_atomic
from edgeir.graphs import layout
from edgeir.runtime.memory import Peak, largest_call, restore_peak
from edgeir.runtime.restorer import MAX_CALL_PIXELS, Restorer
from edgeir.runtime.trt import INSTALL
from edgeir.tasks.base import Task
from edgeir.timing import interleaved_ms


def synthetic_input(task: Task, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured uint8 input whose restored output is ``height`` x ``width``; inpainting gets a
    transparent box (its holes)."""
    h, w = max(1, height // task.scale), max(1, width // task.scale)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.stack([0.5 + 0.3 * np.sin(x / (7 + 3 * c) + y / 11 + c) for c in range(3)], -1)
    img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1)
    if task.name != "inpaint":
        return (img * 255 + 0.5).astype(np.uint8)
    alpha = np.ones((h, w, 1), np.float32)
    alpha[h // 3: h // 2, w // 3: w // 2] = 0
    return (np.concatenate([img, alpha], -1) * 255 + 0.5).astype(np.uint8)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


@dataclass
class Timing:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    graph_ms: float  # median time inside the graph per frame
    host_ms: float  # median of the rest: everything the host does for a frame
    runs: int
    fps: float | None = None  # frames per second of a stream (``stream=True``)


def time_restores(restorer: Restorer, height: int, width: int, runs: int = 10, warmup: int = 1,
                  stream: bool = False) -> Timing:
    """One frame at a time, or (``stream``) ``runs`` frames through ``Restorer.stream``, per-frame times
    taken between consecutive results."""
    image = synthetic_input(restorer.task, height, width)
    graphs: list[float] = []

    def restore() -> None:
        restorer.graph_seconds = 0.0
        restorer.restore(image)
        graphs.append(restorer.graph_seconds * 1000)

    if not stream:
        totals = interleaved_ms([restore], runs, warmup)[0]
        graphs = graphs[warmup:]
        # A frame's host time is that frame's total less its own graph time: medians of differences, not
        # differences of medians taken from different frames.
        hosts = [total - graph for total, graph in zip(totals, graphs, strict=True)]
        return Timing(*_percentiles(totals), float(np.median(graphs)), float(np.median(hosts)), runs)
    for _ in range(warmup):
        restorer.restore(image)
    restorer.graph_seconds = 0.0
    start = last = time.perf_counter()
    totals = []
    for _ in restorer.stream(image for _ in range(runs)):
        now = time.perf_counter()
        totals.append((now - last) * 1000)
        last = now
    wall = time.perf_counter() - start
    graph_ms = restorer.graph_seconds * 1000 / runs
    return Timing(*_percentiles(totals), graph_ms, wall * 1000 / runs - graph_ms, runs, runs / wall)


def _percentiles(ms: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99))
    return p50, p95, p99


@dataclass
class Plan:
    bundle: str
    digest: str  # of the bundle measured: a plan is only valid for it
    size: tuple[int, int]
    budget_ms: float | None
    backend: str
    variant: str
    p95_ms: float
    within_budget: bool  # p95 within budget_ms (a plan always fits its memory budget)
    tried: list[dict] = field(default_factory=list)
    tile: int | None = None  # None: the variant's own
    max_call_pixels: int = MAX_CALL_PIXELS
    memory_mb: float | None = None
    peak: dict = field(default_factory=dict)  # edgeir.runtime.memory.Peak's fields

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, json.dumps(asdict(self), indent=2))

    def load(self, bundle: str | Path, trusted_keys: Sequence[str | Path] | None = None) -> Restorer:
        r = Restorer.load(bundle, self.backend, self.variant, max_call_pixels=self.max_call_pixels, tile=self.tile,
                          trusted_keys=trusted_keys)
        if r.bundle.digest != self.digest:
            raise ConfigError(f"this plan was measured on another bundle ({self.bundle}); run edgeir bench again")
        return r

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        try:
            raw = json.loads(Path(path).read_text())
            return cls(**{**raw, "size": tuple(raw["size"])})
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{path}: not a plan written by edgeir bench ({type(e).__name__})") from None


def plan(path: str | Path, height: int, width: int, budget_ms: float | None = None, backend: str = "auto",
         runs: int = 3, memory_mb: float | None = None, variant: str | None = None, workspace_mb: int = 1024
         ) -> Plan:
    """The configuration to run at ``height`` x ``width``: see the module docstring. ``variant`` limits the walk
    to one restore graph (its tiles and bands, under a memory budget)."""
    first = Restorer.load(path, backend, variant, workspace_mb=workspace_mb)
    variants = [first.variant] if variant else [v for v in first.manifest.variants
                                                if v.kind == "restore" and v.pixels == "uint8"]
    best: Plan | None = None
    tried: list[dict] = []
    for v in variants:
        fitted = _first_fit(path, first, v, height, width, memory_mb, workspace_mb, tried)
        if fitted is None:
            continue
        tile, call, peak = fitted
        r = Restorer.load(path, first.backend, v.name, max_call_pixels=call, workspace_mb=workspace_mb, tile=tile)
        t = time_restores(r, height, width, runs)
        tried[-1].update(p95_ms=round(t.p95_ms, 2), graph_ms=round(t.graph_ms, 2), host_ms=round(t.host_ms, 2))
        if best is None or t.p95_ms < best.p95_ms:
            best = Plan(str(path), first.bundle.digest, (height, width), budget_ms, first.backend, v.name, t.p95_ms,
                        budget_ms is None or t.p95_ms <= budget_ms, tile=tile, max_call_pixels=call,
                        memory_mb=memory_mb, peak=asdict(peak))
        if best.within_budget:
            break
    if best is None:
        least = min(tried, key=lambda row: row["peak_mb"])
        raise ConfigError(f"{path}: nothing fits {memory_mb:g} MB at {height}x{width} on {first.backend}: the "
                          f"least, {least['variant']} at tile {least['tile']} with {least['tiles_per_call']} tiles "
                          f"per call, peaked at {least['peak_mb']:g} MB")
    best.tried = tried
    return best


def _first_fit(path: str | Path, r: Restorer, v: Variant, height: int, width: int, memory_mb: float | None,
               workspace_mb: int, tried: list[dict]) -> tuple[int, int, Peak] | None:
    """The first of ``v``'s configurations whose measured peak fits ``memory_mb`` (any, without a budget) as
    (tile, max_call_pixels, peak), each one measured added to ``tried``; None when none fits."""
    for tile, call in _configurations(r, v, height, width, memory_mb is not None):
        peak = restore_peak(path, r.backend, v.name, height, width, tile, call, workspace_mb)
        tried.append({"variant": v.name, "tile": tile, "max_call_pixels": call, **asdict(peak)})
        if memory_mb is None:
            return tile, call, peak
        if peak.peak_mb is None:
            raise ConfigError(f"a memory budget on {r.backend} needs the GPU's memory measured, through TensorRT's "
                              f"bindings and cuda-python ({INSTALL})")
        if peak.peak_mb <= memory_mb:
            return tile, call, peak
    return None


def _configurations(r: Restorer, v: Variant, height: int, width: int, smaller: bool) -> list[tuple[int, int]]:
    """(tile, max_call_pixels) to try for variant ``v``, best first: its own tile in whole-frame calls, then
    (``smaller``, for a memory budget) narrower bands, halving the largest call until it stops shrinking, then
    the same for smaller tiles, halving down to the smallest its overlap allows. Left out: a band holding no
    fewer tiles than a wider one, and a cut made before (a tile larger than the frame is the frame)."""
    assert v.tile is not None and v.overlap is not None
    if not smaller:
        return [(v.tile, MAX_CALL_PIXELS)]
    m = r.manifest
    scale = 1 if r.task.name == "inpaint" else r.task.scale
    out: list[tuple[int, int]] = []
    seen = set()
    tile = v.tile
    while True:
        try:
            layout.check(tile, v.overlap, m.multiple_of)
        except ValueError:
            return out
        pixels, largest, fewest = MAX_CALL_PIXELS, None, None
        while True:
            n, call, tiles = largest_call(height, width, tile, v.overlap, scale, m.multiple_of, pixels)
            if largest is not None and call >= largest:
                break
            cut = (n, call, tiles, *(layout.span(side, tile, v.overlap, m.multiple_of) for side in (height, width)))
            if (fewest is None or tiles < fewest) and cut not in seen:
                out.append((tile, pixels))
                seen.add(cut)
                fewest = tiles
            pixels, largest = call // 2, call
        tile = tile // 2 // m.multiple_of * m.multiple_of
