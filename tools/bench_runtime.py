"""Runtime benchmark: where a frame's time goes, host or graph, for the shipped bundles, old path and new path
side by side in one run.

* host loop: what the runtime did before its restore graphs: the task's condition built in numpy and Pillow,
  the frame cut into tiles and blended back in numpy, the noise drawn per frame, one UNet graph call per
  sampler step (all tiles batched), pixels converted on the host (``edgeir.graphs.reference``);
* restore graph: ``edgeir.runtime.Restorer`` on the bundle's restore graph: the frame in, the frame out.

Host time is a frame's whole time minus that frame's time inside onnxruntime's ``run`` (median over frames).
Every configuration runs in a fresh process that never imports torch (its peak RSS is its own), median of
``--runs`` after one warm-up; the stream row restores 30 same-size frames through ``Restorer.stream``.

    nice .venv/bin/python tools/bench_runtime.py [--runs 5] [--threads 2] [--bundles sr4x deblur inpaint]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

EXPORTED = Path(__file__).resolve().parent.parent / "exported"
SIZES = [(512, 512), (1080, 1920)]

CHILD = r"""
import json, sys, time
import numpy as np
from edgeir.runtime import Restorer
from edgeir.runtime.budget import peak_rss_mb, synthetic_input, time_restores
bundle, path, h, w, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
r = Restorer.load(bundle, "ort-cpu", threads=threads)
result = {"backend": r.backend, "variant": r.variant.name, "steps": len(r.variant.steps), "torch": None}
if path == "graph":
    t = time_restores(r, h, w, runs)
    result.update(total_ms=t.p50_ms, graph_ms=t.graph_ms, host_ms=t.host_ms, calls=1)
elif path == "stream":
    t = time_restores(r, h, w, runs, stream=True)
    result.update(total_ms=1000 / t.fps, graph_ms=t.graph_ms, host_ms=t.host_ms, calls=1, fps=t.fps)
else:
    from edgeir.data.images import Picture, from_array, to_array
    from edgeir.graphs.ort import open_session
    from edgeir.graphs.reference import host_restore
    from edgeir.tasks import Degraded
    unet_variant = next(v for v in r.manifest.variants if v.kind == "unet")
    session = open_session(r.bundle.read(unet_variant.graph), threads=threads)
    v, task = unet_variant, r.task
    image = synthetic_input(task, h, w)
    inside, calls = [0.0], [0]
    def unet(feeds):
        start = time.perf_counter()
        out = session.run(None, feeds)[0]
        inside[0] += time.perf_counter() - start
        calls[0] += 1
        return out
    def restore(seed):
        pic = from_array(image)
        mask = pic.alpha < 0.5 if task.name == "inpaint" else None
        d = Degraded(pic.rgb, mask)
        cond = np.ascontiguousarray(task.condition(d).transpose(2, 0, 1))
        noise = np.random.default_rng(seed).standard_normal((v.noise_channels, *cond.shape[1:]), dtype=np.float32)
        out = host_restore(unet, cond, noise, v.sampling, r.variant.tile, r.variant.overlap, r.manifest.multiple_of)
        return to_array(Picture(task.compose(out.transpose(1, 2, 0), d), None, 8, False))
    restore(0)
    totals, graphs = [], []
    for i in range(runs):
        inside[0], calls[0] = 0.0, 0
        start = time.perf_counter()
        restore(i)
        totals.append((time.perf_counter() - start) * 1000)
        graphs.append(inside[0] * 1000)
    result.update(total_ms=float(np.median(totals)), graph_ms=float(np.median(graphs)),
                  host_ms=float(np.median(np.subtract(totals, graphs))), calls=calls[0])
result["torch"] = "torch" in sys.modules
result["peak_rss_mb"] = peak_rss_mb()
print(json.dumps(result))
"""


def measure(bundle: Path, path: str, h: int, w: int, runs: int, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(bundle), path, str(h), str(w), str(runs), str(threads)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{bundle.name} {path} {h}x{w} failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bundles", nargs="+", default=["sr4x", "deblur", "inpaint"])
    args = ap.parse_args()
    rows = []
    for name in args.bundles:
        for h, w in SIZES:
            for path in ("host loop", "restore graph"):
                r = measure(EXPORTED / name, "host" if path == "host loop" else "graph", h, w, args.runs, args.threads)
                rows.append({"bundle": name, "size": f"{w}x{h}", "path": path, **r})
                print(f"{name} {w}x{h} {path}: {r['total_ms']:.0f} ms, host {r['host_ms']:.1f} ms", file=sys.stderr)
        r = measure(EXPORTED / name, "stream", 512, 512, 30, args.threads)
        rows.append({"bundle": name, "size": "512x512", "path": "restore graph, stream of 30", **r})
    print(f"{platform.processor() or platform.machine()}, onnxruntime CPU, {args.threads} threads, median of "
          f"{args.runs} frames after a warm-up (streams: 30 frames)\n")
    print("| bundle | output | path | frame (ms) | graph (ms) | host (ms) | host / graph | graph calls | "
          "peak RSS (MB) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['bundle']} ({r['steps']} step{'s' if r['steps'] > 1 else ''}) | {r['size']} | {r['path']} | "
              f"{r['total_ms']:.0f} | {r['graph_ms']:.0f} | {r['host_ms']:.1f} | "
              f"{100 * r['host_ms'] / r['graph_ms']:.1f}% | {r['calls']} | {r['peak_rss_mb']:.0f} |")
    if any(r["torch"] for r in rows):
        print("\nwarning: torch was imported in a measurement process")


if __name__ == "__main__":
    main()
