"""``edgeir bench``: latency percentiles, graph time and host time, and the peak memory of whole restores at one
output size (or of a stream of them); with a latency or memory budget, the configuration that meets it
(variant, tile, band size), measured here and recorded."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from edgeir.bundle import load_bundle
from edgeir.errors import ConfigError
from edgeir.runtime import Restorer
from edgeir.runtime.backends import cache_root
from edgeir.runtime.budget import plan, time_restores
from edgeir.runtime.memory import restore_peak


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
              stream: bool = False, workspace_mb: int = 1024, memory_mb: float | None = None,
              trusted_keys: list[Path] | None = None) -> dict:
    """Without a budget, ``variant`` (default the bundle's first) is measured as it is; with one, the planner
    picks among the bundle's restore graphs (or ``variant``'s tiles and bands) and the choice is measured.
    ``trusted_keys``: measure only a bundle signed by one of them."""
    h, w = parse_size(size)
    if trusted_keys:
        load_bundle(bundle, trusted_keys)
    result: dict = {}
    if budget_ms is not None or memory_mb is not None:
        chosen = plan(bundle, h, w, budget_ms, backend, memory_mb=memory_mb, variant=variant,
                      workspace_mb=workspace_mb)
        where = plan_out or cache_root() / "plans" / f"{chosen.digest}-{h}x{w}-{chosen.backend}.json"
        result["plan_file"] = str(chosen.save(where))
        result["tried"] = chosen.tried
        restorer = chosen.load(bundle)
        peak = chosen.peak
    else:
        restorer = Restorer.load(bundle, backend, variant, workspace_mb=workspace_mb)
        peak = asdict(restore_peak(bundle, restorer.backend, restorer.variant.name, h, w,
                                   max_call_pixels=restorer.max_call_pixels, workspace_mb=workspace_mb))
    t = time_restores(restorer, h, w, runs, stream=stream)
    within = None if budget_ms is None else t.p95_ms <= budget_ms
    return {"p50_ms": round(t.p50_ms, 2), "p95_ms": round(t.p95_ms, 2), "p99_ms": round(t.p99_ms, 2),
            "graph_ms": round(t.graph_ms, 2), "host_ms": round(t.host_ms, 2),
            "fps": None if t.fps is None else round(t.fps, 2), "stream": stream, **peak,
            "max_call_pixels": restorer.max_call_pixels, "memory_mb": memory_mb, "within_budget": within,
            "budget_ms": budget_ms, "size": f"{h}x{w}", "runs": runs, **restorer.describe(), "notes": restorer.notes,
            **result}


def table(result: dict) -> str:
    """The configurations measured (the planner's, or the one benched) as a plain table, peak memory beside the
    graph and host time."""
    row_format = "{:<20} {:>5} {:>5} {:>10} {:>12} {:>9} {:>8} {:>8}"
    lines = [row_format.format("variant", "tile", "calls", "tiles/call", "peak MB", "graph_ms", "host_ms", "p95_ms")]
    budget = result["memory_mb"]
    for row in result.get("tried") or [result]:
        peak = "not measured" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
        times = (f"{row[k]:.1f}" if k in row else "-" for k in ("graph_ms", "host_ms", "p95_ms"))
        over = budget is not None and row["peak_mb"] is not None and row["peak_mb"] > budget
        lines.append(row_format.format(row["variant"], row["tile"], row["calls"], row["tiles_per_call"], peak, *times)
                     + ("  over the memory budget" if over else ""))
    return "\n".join(lines)
