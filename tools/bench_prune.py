"""Structured pruning benchmark on the shipped sr4x teacher with a few-step DDIM sampler: the unpruned model vs
the prune stage at two ratios, before and after distillation recovery. One run, one machine.

    nice .venv/bin/python tools/bench_prune.py [--ratios 0.4 0.5] [--recovery-steps 800] [--sampler-steps 4]

Per model: parameters, MACs of one UNet evaluation at 256x256 output (attention matmuls included),
onnxruntime CPU latency of one UNet evaluation at 256x256 (median of --latency-runs, the models interleaved
round-robin so a shared machine's load hits them alike), PSNR/SSIM/detail against ground truth on the held-out
photographs (256 px crops) and PSNR against the unpruned model's output from the same noise. The last lines
check the issue's goals: >= 50% fewer MACs, >= 1.8x lower latency, <= 0.2 dB PSNR loss, >= 90% of the detail.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeir.compress.cost import macs, params
from edgeir.compress.latency import unet_latency_ms
from edgeir.compress.prune import PruneSettings, run
from edgeir.compress.recover import RecoverySettings
from edgeir.compress.stage import StageContext
from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set, evaluate
from edgeir.load import load_restorer
from edgeir.metrics import psnr_y
from edgeir.models.restorer import RestorerModel
from edgeir.progress import progress_bar

SIZE = 256


def quality(model: RestorerModel, cases: list, label: str) -> tuple[dict, list[np.ndarray]]:
    outputs: list[np.ndarray] = []

    def restore(d, i):
        outputs.append(model.restore(d, seed=i))  # the same noise for every model
        return outputs[-1]

    return evaluate(restore, model.task, cases, baseline=False, label=label)["model"], outputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=float, nargs=2, default=[0.4, 0.5])
    ap.add_argument("--recovery-steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--feature-weight", type=float, default=0.0)
    ap.add_argument("--importance", choices=["taylor", "magnitude"], default="taylor")
    ap.add_argument("--round-to", type=int, default=16, help="kept widths' multiple (16: one AVX-512 vector)")
    ap.add_argument("--sampler-steps", type=int, default=4)
    ap.add_argument("--latency-runs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_prune"))
    args = ap.parse_args()
    start = time.time()

    teacher = load_restorer("sr4x")
    s = teacher.config.sampler
    teacher.config = teacher.config.model_copy(update={"sampler": s.model_copy(update={
        "kind": "ddim", "eta": 0.0, "steps": args.sampler_steps, "timesteps": None})})
    cases = degrade_set(teacher.task, builtin_images("heldout"), SIZE, seed=0)
    train = [im for _, im in builtin_images("train")]

    models = {"unpruned": teacher}
    for ratio in args.ratios:
        for steps in (0, args.recovery_steps):
            recovery = RecoverySettings(steps=steps, batch=args.batch, patch=args.patch, lr=args.lr,
                                        feature_weight=args.feature_weight)
            settings = PruneSettings(ratio=ratio, importance=args.importance, round_to=args.round_to,
                                     recovery=recovery)
            ctx = StageContext(teacher=teacher, student=teacher, train_images=train, eval_cases=cases,
                               work_dir=args.out / f"ratio{ratio}-steps{steps}", progress=progress_bar)
            label = f"pruned {ratio:g}, " + (f"recovered {steps} steps" if steps else "no recovery")
            models[label] = run(settings, ctx).model

    rows = {}
    ref_out = None
    for name, m in models.items():
        q, outs = quality(m, cases, name)
        ref_out = ref_out if ref_out is not None else outs
        vs_ref = float(np.mean([psnr_y(o, r) for o, r in zip(outs, ref_out)])) if name != "unpruned" else None
        rows[name] = {"params": params(m), "macs": macs(m, SIZE, SIZE), **q, "psnr_vs_unpruned": vs_ref}
    for name, ms in unet_latency_ms(models, (SIZE, SIZE), args.latency_runs, args.threads, progress_bar).items():
        rows[name]["latency_ms"] = ms

    base = rows["unpruned"]
    table = Table(title=f"sr4x, {args.sampler_steps}-step DDIM, held-out photographs ({SIZE} px crops); "
                        f"latency: one UNet evaluation at {SIZE}x{SIZE}, onnxruntime CPU, {args.threads} threads")
    for col in ("model", "params", "MACs", "MACs cut", "latency ms", "speed-up", "PSNR", "SSIM", "detail",
                "PSNR vs unpruned"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in rows.items():
        vs = f"{r['psnr_vs_unpruned']:.2f}" if r["psnr_vs_unpruned"] is not None else "-"
        table.add_row(name, f"{r['params'] / 1e6:.2f}M", f"{r['macs'] / 1e9:.2f}G",
                      f"{1 - r['macs'] / base['macs']:.0%}", f"{r['latency_ms']:.1f}",
                      f"{base['latency_ms'] / r['latency_ms']:.2f}x", f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                      f"{r['detail']:.3f}", vs)
    console = Console(width=150)
    console.print(table)
    for ratio in args.ratios:
        r = rows[f"pruned {ratio:g}, recovered {args.recovery_steps} steps"]
        goals = {">= 50% fewer MACs": r["macs"] <= 0.5 * base["macs"],
                 ">= 1.8x lower latency": base["latency_ms"] / r["latency_ms"] >= 1.8,
                 "<= 0.2 dB PSNR loss": base["psnr"] - r["psnr"] <= 0.2,
                 ">= 90% of the detail": r["detail"] >= 0.9 * base["detail"]}
        console.print(f"ratio {ratio:g} after recovery: " + ", ".join(
            f"{goal} {'met' if ok else 'MISSED'}" for goal, ok in goals.items()))
    console.print(f"total {(time.time() - start) / 60:.1f} min")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
