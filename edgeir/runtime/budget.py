"""Latency on this machine, split into graph time and host time, and the variant that meets a budget.

``time_restores`` times whole restores of a synthetic frame after a warm-up, each split into the time inside
the graph and the rest (the host's part), and optionally as a stream of same-size frames. ``plan`` walks the
bundle's restore variants in order (best quality first), takes the first whose p95 meets the budget (else the
fastest, marked as missing it) and records the choice as JSON, which ``Plan.load`` reopens.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeir.errors import ConfigError
from edgeir.files import write_atomic
from edgeir.runtime.restorer import Restorer
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
        graph_ms = float(np.median(graphs[warmup:]))
        return Timing(*_percentiles(totals), graph_ms, float(np.median(totals)) - graph_ms, runs)
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
    budget_ms: float
    backend: str
    variant: str
    p95_ms: float
    within_budget: bool
    tried: list[dict] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        return write_atomic(path, json.dumps(asdict(self), indent=2))

    def load(self, bundle: str | Path) -> Restorer:
        r = Restorer.load(bundle, self.backend, self.variant)
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


def plan(path: str | Path, height: int, width: int, budget_ms: float, backend: str = "auto", runs: int = 3
         ) -> Plan:
    first = Restorer.load(path, backend)
    best: Plan | None = None
    tried: list[dict] = []
    for v in first.manifest.variants:
        if v.kind != "restore" or v.pixels != "uint8":
            continue
        r = first if v == first.variant else Restorer.load(path, first.backend, v.name)
        t = time_restores(r, height, width, runs)
        tried.append({"variant": v.name, "tile": v.tile, "p95_ms": round(t.p95_ms, 2),
                      "graph_ms": round(t.graph_ms, 2), "host_ms": round(t.host_ms, 2)})
        if best is None or t.p95_ms < best.p95_ms:
            best = Plan(str(path), first.bundle.digest, (height, width), budget_ms, first.backend, v.name, t.p95_ms,
                        t.p95_ms <= budget_ms)
        if best.within_budget:
            break
    assert best is not None
    best.tried = tried
    return best
