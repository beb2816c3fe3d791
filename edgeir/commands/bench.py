"""``edgeir bench``: latency percentiles, graph time and host time, and peak memory of whole restores at one
output size (or of a stream of them); with a budget, the variant that meets it, measured here and recorded."""

from __future__ import annotations

from pathlib import Path

from edgeir.errors import ConfigError
from edgeir.runtime import Restorer
from edgeir.runtime.backends import cache_root
from edgeir.runtime.budget import peak_rss_mb, plan, time_restores


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected HxW, e.g. 512x512") from None
    if not (1 <= h <= 16384 and 1 <= w <= 16384):
        raise ConfigError(f"--size {text!r}: each side must be within 1..16384")
    return h, w


def run_bench(bundle: str | Path, size: str, budget_ms: float | None = None, runs: int = 20,
              backend: str = "auto", variant: str | None = None, plan_out: Path | None = None,
              stream: bool = False, workspace_mb: int = 1024) -> dict:
    h, w = parse_size(size)
    result: dict = {}
    if budget_ms is not None and variant is None:
        chosen = plan(bundle, h, w, budget_ms, backend)
        where = plan_out or cache_root() / "plans" / f"{chosen.digest}-{h}x{w}-{chosen.backend}.json"
        result["plan_file"] = str(chosen.save(where))
        result["tried"] = chosen.tried
        restorer = chosen.load(bundle)
    else:
        restorer = Restorer.load(bundle, backend, variant, workspace_mb=workspace_mb)
    t = time_restores(restorer, h, w, runs, stream=stream)
    within = None if budget_ms is None else t.p95_ms <= budget_ms
    return {"p50_ms": round(t.p50_ms, 2), "p95_ms": round(t.p95_ms, 2), "p99_ms": round(t.p99_ms, 2),
            "graph_ms": round(t.graph_ms, 2), "host_ms": round(t.host_ms, 2),
            "fps": None if t.fps is None else round(t.fps, 2), "stream": stream,
            "peak_rss_mb": round(peak_rss_mb(), 1), "within_budget": within, "budget_ms": budget_ms,
            "size": f"{h}x{w}", "runs": runs, **restorer.describe(), "notes": restorer.notes, **result}
