"""Runtime benchmark: overhead of the runtime itself (condition, noise, tiling, blending, compose) as a share
of graph time, peak memory against tile size, and the import time of edgeir.runtime.

Every measurement runs in a fresh process that never imports torch, so its peak RSS is that configuration's
alone. Without --bundle, the sr4x teacher's sampler (4 DDIM steps) is exported first (that part uses torch).

    nice .venv/bin/python tools/bench_runtime.py [--bundle PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
start = time.perf_counter()
import edgeir.runtime
import_ms = (time.perf_counter() - start) * 1000
from edgeir.runtime import Restorer
from edgeir.runtime.budget import peak_rss_mb, time_restores
bundle, h, w, tile, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = Restorer.load(bundle, "ort-cpu", tile=tile)
loaded_mb = peak_rss_mb()
t = time_restores(r, h, w, runs)
print(json.dumps({"import_ms": import_ms, "torch_imported": "torch" in sys.modules, "p50_ms": t.p50_ms,
                  "graph_ms": t.graph_ms, "loaded_mb": loaded_mb, "peak_mb": peak_rss_mb(), **r.describe()}))
"""

CONFIGS = [(512, 512, 512), (2048, 2048, 512), (2048, 2048, 256)]  # output height, width, tile


def default_bundle(folder: Path) -> Path:
    from edgeir.bundle import Manifest, make_variant, write_bundle
    from edgeir.export.sampler import export_sampler
    from edgeir.load import load_restorer

    teacher = load_restorer("sr4x")
    cfg, steps = teacher.config, teacher.steps(4)
    export_sampler(teacher, folder / "sampler.onnx", steps=steps)
    variant = make_variant("sampler-fp32-4", "sampler.onnx", "sampler", cfg.task.cond_channels, steps,
                           cfg.prediction, cfg.sampler.temperature, cfg.residual_scale)
    manifest = Manifest(task=cfg.task, multiple_of=cfg.multiple_of, min_size=cfg.multiple_of, tile=512,
                        overlap=32, variants=[variant], producer={"by": "tools/bench_runtime.py"})
    return write_bundle(folder / "sr4x", {"sampler.onnx": folder / "sampler.onnx"}, manifest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or default_bundle(Path(tmp))
        rows = []
        for h, w, tile in CONFIGS:
            out = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(h), str(w), str(tile),
                                  str(args.runs)], capture_output=True, text=True, check=True)
            rows.append({"size": f"{h}x{w}", **json.loads(out.stdout)})
    print("| output | tile | full restore p50 (ms) | graph (ms) | runtime overhead | RSS after load (MB) | "
          "peak RSS (MB) | torch imported |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        overhead = (r["p50_ms"] - r["graph_ms"]) / r["graph_ms"] * 100
        print(f"| {r['size']} | {r['tile']} | {r['p50_ms']:.0f} | {r['graph_ms']:.0f} | {overhead:.1f}% | "
              f"{r['loaded_mb']:.0f} | {r['peak_mb']:.0f} | {r['torch_imported']} |")
    imports = sorted(r["import_ms"] for r in rows)
    print(f"\nimport edgeir.runtime: {imports[len(imports) // 2]:.0f} ms (median of {len(imports)} fresh processes); "
          f"backend {rows[0]['backend']}, variant {rows[0]['variant']}, overlap {rows[0]['overlap']}, "
          f"{args.runs} timed runs after 1 warm-up")


if __name__ == "__main__":
    main()
