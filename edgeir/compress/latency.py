"""Latency of whole restorations, for models that are compared with each other.

On a shared machine a model timed while another job runs looks slower than one timed a minute earlier, so
models compared in one table are timed together: a warm-up restoration each (lazy initialisation, onnxruntime's
graph optimisation), then rounds in which every model restores the same image once, in turn."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from edgeir.models.restorer import Restorer
from edgeir.tasks.base import Degraded

RUNS = 5


def interleaved_latency(models: Sequence[Restorer], degraded: Degraded, runs: int = RUNS,
                        seed: int = 0) -> list[float]:
    """Median milliseconds of one whole restoration of ``degraded`` per model, over ``runs`` rounds."""
    times: list[list[float]] = [[] for _ in models]
    for model in models:
        model.restore(degraded, seed=seed)
    for _ in range(runs):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model.restore(degraded, seed=seed)
            times[i].append(1000 * (time.perf_counter() - start))
    return [statistics.median(t) for t in times]
