"""Latency, measured one way everywhere (compression stages, benchmarks, the runtime's budget planner).

On a shared machine whatever runs while another job does looks slower than what ran a minute earlier, so
things compared with each other are timed together: warm-up rounds first (lazy initialisation, graph
optimisation, caches), then rounds in which each runs once, in turn. Stdlib only: the runtime uses it too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def interleaved_ms(fns: Sequence[Callable[[], object]], runs: int, warmup: int = 1,
                   advance: Callable[[int], None] | None = None) -> list[list[float]]:
    """Milliseconds of each of ``fns``, ``runs`` times each, after ``warmup`` untimed rounds; ``advance(1)``
    after every round, for a progress bar."""
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(warmup + runs):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            if round_ >= warmup:
                times[i].append((time.perf_counter() - start) * 1000)
        if advance:
            advance(1)
    return times


def median_ms(fns: Sequence[Callable[[], object]], runs: int, warmup: int = 1,
              advance: Callable[[int], None] | None = None) -> list[float]:
    """The median of ``interleaved_ms`` per function."""
    return [statistics.median(t) for t in interleaved_ms(fns, runs, warmup, advance)]
