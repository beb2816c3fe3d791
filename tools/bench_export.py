"""Benchmark of the export step, in one run on one machine: for few-step sr4x students (the shipped teacher with
its sampler config set to 4 and 1 timesteps, which is what a distilled student is structurally), the latency of
the same restore done three ways:

* torch eager: ``RestorerModel.restore_tensor`` (the torch sampler);
* onnxruntime, sampler graph: the whole loop as one graph (``edgeir export --graph sampler``);
* onnxruntime, UNet graph + Python loop: one graph call per step, the step maths in numpy
  (``edgeir.graphs.reference``, the host loop restore graphs are checked against);

plus each graph's size, node count (before and after onnxslim) and max abs difference from torch.

    nice .venv/bin/python tools/bench_export.py [--size 256] [--runs 10] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgeir.export.graph import export_graph, real_conditions
from edgeir.export.sampler import export_sampler
from edgeir.export.unet import export_unet
from edgeir.graphs.ort import open_session
from edgeir.graphs.reference import host_restore
from edgeir.load import load_restorer
from edgeir.models.restorer import RestorerModel
from edgeir.timing import median_ms


def student(steps: int) -> RestorerModel:
    r = load_restorer("sr4x")
    r.config = r.config.model_copy(update={"sampler": r.config.sampler.model_copy(
        update={"steps": steps, "timesteps": r.config.timesteps(steps)})})
    return r


def unet_loop(restorer: RestorerModel, sess, cond: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The restore with the UNet graph and the step loop on the host (``edgeir.graphs.reference``), one tile
    covering the image."""
    cfg = restorer.config
    size = cond.shape[-1]
    out = host_restore(lambda feeds: sess.run(None, feeds)[0], cond[0], noise[0], restorer.sampling(), size, 0,
                       cfg.multiple_of)
    return out[None]


def bench(steps: int, size: int, runs: int, threads: int, work: Path) -> dict:
    r = student(steps)
    cond = real_conditions(r.task, 1, size, size)
    noise = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    ct, nt = torch.from_numpy(cond), torch.from_numpy(noise)
    with torch.no_grad():
        reference = r.restore_tensor(ct, nt).numpy()
    out = work / f"{steps}step"
    graphs = {kind: export_graph(r, kind, out, "fp32") for kind in ("sampler", "unet")}
    raw_nodes = {"sampler": len(onnx.load(str(export_sampler(r, out / "raw_s.onnx"))).graph.node),
                 "unet": len(onnx.load(str(export_unet(r, out / "raw_u.onnx"))).graph.node)}
    s_sess, u_sess = (open_session(graphs[k].path, threads=threads) for k in ("sampler", "unet"))
    feeds = {"condition": cond, "noise": noise}

    def torch_eager():
        with torch.no_grad():
            return r.restore_tensor(ct, nt)

    rows = [
        {"method": "torch eager sampler", "ms": median_ms([torch_eager], runs, 2)[0], "diff": 0.0},
        {"method": "onnxruntime sampler graph", "ms": median_ms([lambda: s_sess.run(None, feeds)], runs, 2)[0],
         "diff": float(np.abs(s_sess.run(None, feeds)[0] - reference).max()), "graph": "sampler"},
        {"method": "onnxruntime UNet graph + Python loop", "ms": median_ms([lambda: unet_loop(r, u_sess, cond, noise)],
                                                                             runs, 2)[0],
         "diff": float(np.abs(unet_loop(r, u_sess, cond, noise) - reference).max()), "graph": "unet"},
    ]
    for row in rows:
        if "graph" in row:
            g = graphs[row["graph"]]
            row.update(mb=g.bytes / 1e6, nodes=g.nodes, raw_nodes=raw_nodes[row["graph"]])
    return {"steps": steps, "rows": rows}


def table(results: list[dict], size: int) -> str:
    header = (f"| steps | method (sr4x, 1x3x{size}x{size} output) | median ms | vs torch | graph MB "
              "| nodes (onnxslim'd / raw) | max abs diff vs torch |")
    lines = [header, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for res in results:
        base = res["rows"][0]["ms"]
        for row in res["rows"]:
            graph = (f"{row['mb']:.1f} | {row['nodes']} / {row['raw_nodes']}" if "nodes" in row else "- | -")
            lines.append(f"| {res['steps']} | {row['method']} | {row['ms']:.1f} | {base / row['ms']:.2f}x | {graph} "
                         f"| {row['diff']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="output height and width (multiple of 16)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads (1 on a shared "
                    "machine: oversubscribed OpenMP threads make torch erratic)")
    ap.add_argument("--steps", type=int, nargs="+", default=[4, 1])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(s, args.size, args.runs, args.threads, Path(tmp)) for s in args.steps]
    machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, " \
              f"onnxruntime {ort.__version__}"
    if args.json:
        json.dump({"machine": machine, "size": args.size, "results": results}, sys.stdout, indent=2)
        print()
    else:
        print(f"{machine}; median of {args.runs} runs after 2 warm-up runs\n")
        print(table(results, args.size))


if __name__ == "__main__":
    main()
