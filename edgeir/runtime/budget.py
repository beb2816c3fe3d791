"""Latency on this machine, and the configuration that meets a budget.

``time_restores`` times full restores (condition, tiling, graph, blending, compose) of a synthetic input after a
warm-up. ``plan`` walks the bundle's variants in order (best quality first) and, for each, the candidate tile
sizes and batch sizes; it takes the first variant whose fastest configuration meets the budget at p95 (else
the fastest overall, marked as missing it) and records the choice as JSON, which ``Restorer.load`` accepts.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeir.errors import ConfigError
from edgeir.files import write_atomic
from edgeir.runtime.restorer import Restorer
from edgeir.tasks.base import Task
from edgeir.timing import interleaved_ms

TILES = (128, 192, 256, 384, 512, 768, 1024)


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
    graph_ms: float  # median time inside the graph per restore
    runs: int


def time_restores(restorer: Restorer, height: int, width: int, runs: int = 10, warmup: int = 1) -> Timing:
    image = synthetic_input(restorer.task, height, width)
    graphs: list[float] = []

    def restore() -> None:
        restorer.graph_seconds = 0.0
        restorer.restore(image)
        graphs.append(restorer.graph_seconds * 1000)

    totals = interleaved_ms([restore], runs, warmup)[0]
    graphs = graphs[warmup:]
    p50, p95, p99 = (float(np.percentile(totals, q)) for q in (50, 95, 99))
    return Timing(p50, p95, p99, float(np.median(graphs)), runs)


@dataclass
class Plan:
    bundle: str
    digest: str  # of the bundle measured: a plan is only valid for it
    size: tuple[int, int]
    budget_ms: float
    backend: str
    variant: str
    tile: int
    batch: int
    p95_ms: float
    within_budget: bool
    tried: list[dict] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, json.dumps(asdict(self), indent=2))

    def load(self, bundle: str | Path) -> Restorer:
        r = Restorer.load(bundle, self.backend, self.variant, self.tile, self.batch)
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


def candidate_tiles(multiple_of: int, recommended: int, height: int, width: int) -> list[int]:
    """Tile sides worth trying: multiples of the network's, up to one tile for the whole image (capped, so
    memory stays bounded on large images)."""
    whole = min(max(height, width) + -max(height, width) % multiple_of, TILES[-1])
    return sorted({t for t in (*TILES, recommended) if t % multiple_of == 0 and t < whole} | {whole})


def plan(path: str | Path, height: int, width: int, budget_ms: float, backend: str = "auto", runs: int = 3
         ) -> Plan:
    first = Restorer.load(path, backend)
    m = first.manifest
    best: Plan | None = None
    tried: list[dict] = []
    for v in m.variants:
        for tile in candidate_tiles(m.multiple_of, m.tile, height, width):
            for batch in (1,) if first.backend == "ort-cpu" else (1, 4):
                r = Restorer.load(path, first.backend, v.name, tile, batch)
                t = time_restores(r, height, width, runs)
                tried.append({"variant": v.name, "tile": tile, "batch": batch, "p95_ms": round(t.p95_ms, 2)})
                if best is None or t.p95_ms < best.p95_ms:
                    best = Plan(str(path), first.bundle.digest, (height, width), budget_ms, first.backend,
                                v.name, tile, batch, t.p95_ms, t.p95_ms <= budget_ms)
        if best is not None and best.within_budget:
            break
    assert best is not None
    best.tried = tried
    return best
