"""Step distillation of the shipped sr4x teacher, in one run on one machine: the teacher's DDIM sampler at
50 / 8 / 4 / 1 steps (no distillation) against students distilled to 4 / 2 / 1 steps.

    nice python tools/bench_distill.py                     # the run to record in docs/BENCHMARKS.md
    python tools/bench_distill.py --students 2:5:1e-4,1:5:1e-4 --pairs 4 --eval-size 64   # a smoke run

Every model is measured by the pipeline's own ``edgeir.compress.gates.measure_model`` on the built-in
held-out photographs: PSNR/SSIM (Y), HaarPSI and detail against ground truth, PSNR against the 50-step
teacher's output from the same noise. Latency is the median wall time of one whole restoration (torch, one
thread, this CPU), all models timed in the same interleaved rounds.
``--noise-seeds N`` adds a table of the same comparison over N noise draws per held-out image.
``--fresh N`` adds a second table: PSNR against the 50-step teacher's output on N crops of the training
photographs that no student trained on (new crops and noise), grouped by how close undistilled DDIM 4 comes,
so a student's faithfulness on smooth and on textured content can be told apart.
The students are trained by the distill stage itself (``edgeir.compress.distill.run``): by default the direct
method, where they share one set of 50-step teacher outputs; ``--method progressive`` halves the teacher's
steps instead (iterations per halving round). Each student starts from the teacher's weights; with ``--chain``
from the previous student's, as consecutive distill stages of a recipe do (say 2 steps, then 1).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgeir.compress import distill
from edgeir.compress.distill import DistillSettings, with_timesteps
from edgeir.compress.gates import measure_model
from edgeir.compress.latency import interleaved_latency
from edgeir.compress.recipe import BUILTIN_TRAIN
from edgeir.compress.stage import StageContext
from edgeir.data.builtin import builtin_images
from edgeir.diffusion.schedules import spaced_timesteps
from edgeir.evaluate import degrade_set
from edgeir.load import load_restorer
from edgeir.metrics.fidelity import psnr_y
from edgeir.progress import progress_bar


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="sr4x")
    ap.add_argument("--eval-size", type=int, default=128, help="centre crop of each held-out image")
    ap.add_argument("--method", choices=("direct", "progressive"), default="direct")
    ap.add_argument("--students", default="4:120:1e-4:30,2:500:1e-4:30,1:3000:2e-4:0",
                    help="steps:iterations:lr[:detail weight] of each student (default weight: --detail-weight)")
    ap.add_argument("--pairs", type=int, default=1024, help="50-step teacher outputs to regress")
    ap.add_argument("--patch", type=int, default=128, help="training crops (the teacher's training size)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--detail-weight", type=float, default=30.0, help="for students that name none")
    ap.add_argument("--loss", choices=("mse", "psnr"), default="mse", help="the distill stage's loss")
    ap.add_argument("--data", choices=tuple(BUILTIN_TRAIN), default="builtin",
                    help="the students' training photographs, as a recipe's data.train names them")
    ap.add_argument("--ema", type=float, default=DistillSettings.model_fields["ema"].default,
                    help="the distill stage's EMA decay of the weights")
    ap.add_argument("--chain", action="store_true", help="start each student from the previous one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-runs", type=int, default=5, help="timed restorations per model (median)")
    ap.add_argument("--fresh", type=int, default=0, help="also compare on this many unseen training crops")
    ap.add_argument("--noise-seeds", type=int, default=1,
                    help="also report PSNR vs teacher-50 over this many noise draws per held-out image")
    ap.add_argument("--work", type=Path, help="keep the teacher outputs and checkpoints here (resumable)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()

    start = time.time()
    teacher = load_restorer(args.teacher).eval()
    n_teacher = len(teacher.steps())
    T = teacher.config.schedule.num_train_timesteps
    cases = degrade_set(teacher.config.task, builtin_images("heldout"), args.eval_size, args.seed)
    rows, models = [], []
    ref_metrics, reference = measure_model(teacher, cases, args.seed, label=f"DDIM {n_teacher}")
    rows.append((f"teacher, DDIM {n_teacher}", {**ref_metrics, "psnr_vs_teacher": None}))
    models.append(teacher)
    for k in (8, 4, 1):
        model = with_timesteps(teacher, spaced_timesteps(T, k), {})
        m, _ = measure_model(model, cases, args.seed, reference, label=f"DDIM {k}")
        rows.append((f"teacher, DDIM {k}", m))
        models.append(model)

    images = [im for _, im in builtin_images(BUILTIN_TRAIN[args.data])]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        minutes = {}
        specs = args.students.split(",")
        counts = Counter(int(spec.split(":")[0]) for spec in specs)
        init = teacher
        for spec in specs:
            k, iterations, lr, *weight = spec.split(":")
            k = int(k)
            # Students of the same step count are told apart by their spec.
            name = f"distilled, {k} step{'s' if k > 1 else ''}" + (f" ({spec})" if counts[k] > 1 else "")
            s = DistillSettings(method=args.method, steps=k, iterations=int(iterations), batch=args.batch,
                                patch=args.patch, pairs=args.pairs, lr=float(lr), loss=args.loss, ema=args.ema,
                                detail_weight=float(weight[0]) if weight else args.detail_weight)
            ctx = StageContext(teacher=teacher, student=init, train_images=images, eval_cases=cases,
                               work_dir=work, seed=args.seed, progress=progress_bar)
            t0 = time.time()
            student = distill.run(s, ctx).model
            if args.chain:
                init = student
            minutes[spec] = (time.time() - t0) / 60
            m, _ = measure_model(student, cases, args.seed, reference, label=f"distilled {k}")
            rows.append((name, m))
            models.append(student)
        fresh = fresh_crops(teacher, images, args, work) if args.fresh else None

    for (name, m), ms in zip(rows, one_thread_latency(models, cases[0][2], args.latency_runs)):
        m["latency_ms"] = ms

    table = Table(title=f"{args.teacher}: step distillation, {len(cases)} held-out images at "
                        f"{args.eval_size}x{args.eval_size} ({platform.processor() or platform.machine()}, "
                        f"{torch.get_num_threads()} torch threads)")
    for col in ("sampler", "UNet evals", "PSNR", "SSIM", "HaarPSI", "detail", "PSNR vs teacher-50",
                "ms/image (1 thread)"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for name, m in rows:
        vs = m.get("psnr_vs_teacher")
        table.add_row(name, str(m["steps"]), f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{m['haarpsi']:.4f}",
                      f"{m['detail']:.3f}", "-" if vs is None else f"{vs:.2f}", f"{m['latency_ms']:.0f}")
    console = Console(width=120)
    console.print(table)
    console.print(f"settings: {vars(args)}; training minutes per student: "
                  f"{ {k: round(v, 1) for k, v in minutes.items()} }; total {(time.time() - start) / 60:.1f} min",
                  highlight=False)
    if fresh is not None:
        console.print(fresh_table([name for name, _ in rows[1:]], models[1:], *fresh, args))
    if args.noise_seeds > 1:
        console.print(seeds_table(rows, models, cases, args))
    goals = _goals(dict(rows), n_teacher)
    for line in goals:
        console.print(line, highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"rows": dict(rows), "goals": goals, "args": vars(args)}, indent=2,
                                        default=str))


def fresh_crops(teacher, images, args, work: Path) -> tuple:
    """(condition, noise, 50-step teacher output) for ``args.fresh`` training crops from a seed the students'
    teacher outputs never use; made by the distill stage's own code and cached next to its pairs."""
    s = DistillSettings(pairs=args.fresh, patch=args.patch, batch=8)
    ctx = StageContext(teacher=teacher, student=teacher, train_images=images, eval_cases=[], work_dir=work,
                       seed=args.seed + 1000, progress=progress_bar)
    return distill._teacher_pairs(teacher, len(teacher.steps()), s, ctx,
                                  [im for im in images if min(im.shape[:2]) >= args.patch])


@torch.no_grad()
def fresh_table(names: list[str], models: list, cond, noise, target, args) -> Table:
    """Mean PSNR (Y) against the teacher's output per third of the crops, ordered by DDIM 4's."""
    def psnrs(model) -> np.ndarray:
        out = model.to_image(model.sample(cond, noise), cond).permute(0, 2, 3, 1).numpy()
        return np.array([psnr_y(o, r) for o, r in zip(out, ref)])

    ref = models[0].to_image(target, cond).permute(0, 2, 3, 1).numpy()
    scores = {name: psnrs(m) for name, m in zip(names, models)}
    thirds = np.array_split(np.argsort(scores["teacher, DDIM 4"]), 3)
    table = Table(title=f"PSNR vs teacher-50 on {args.fresh} unseen {args.patch} px training crops, by how "
                        "close undistilled DDIM 4 comes")
    for col in ("sampler", "all", "hardest third", "middle third", "easiest third"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for name, v in scores.items():
        table.add_row(name, f"{v.mean():.2f}", *(f"{v[t].mean():.2f}" for t in thirds))
    return table


def seeds_table(rows: list, models: list, cases, args) -> Table:
    """PSNR against the teacher's 50-step output from the same noise, and detail as a share of the teacher's,
    over ``args.noise_seeds`` noise draws per held-out image: one draw (the main table's ``rows``, which this
    starts from) is a small sample."""
    # measure_model gives image i the noise seed ``seed + i``, so steps of len(cases) never reuse a draw.
    seeds = [args.seed + j * len(cases) for j in range(args.noise_seeds)]
    names = [name for name, _ in rows[1:]]
    teacher_detail = rows[0][1]["detail"]
    vs = {name: [m["psnr_vs_teacher"]] for name, m in rows[1:]}
    detail = {name: [m["detail"] / teacher_detail] for name, m in rows[1:]}
    for seed in seeds[1:]:
        ref_metrics, reference = measure_model(models[0], cases, seed, label=f"teacher, seed {seed}")
        for name, model in zip(names, models[1:]):
            m, _ = measure_model(model, cases, seed, reference, label=f"{name}, seed {seed}")
            vs[name].append(m["psnr_vs_teacher"])
            detail[name].append(m["detail"] / ref_metrics["detail"])
    table = Table(title=f"PSNR vs teacher-50 over {len(seeds)} noise draws per held-out image "
                        f"(seeds {seeds[0]}, {seeds[1]}, ...)")
    for col in ("sampler", "mean", "lowest", "highest", "detail (share of teacher's, mean)"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for name in names:
        table.add_row(name, f"{np.mean(vs[name]):.2f}", f"{min(vs[name]):.2f}", f"{max(vs[name]):.2f}",
                      f"{np.mean(detail[name]):.1%}")
    return table


def one_thread_latency(models: list, degraded, runs: int) -> list[float]:
    """``interleaved_latency`` on one torch thread, as an edge CPU app would restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return interleaved_latency(models, degraded, runs)
    finally:
        torch.set_num_threads(threads)


def _goals(rows: dict, n_teacher: int) -> list[str]:
    """The issue's goals for every 1-step student, each with its verdict."""
    teacher, ddim4 = rows[f"teacher, DDIM {n_teacher}"], rows["teacher, DDIM 4"]
    lines = []
    for student, one in rows.items():
        if not student.startswith("distilled, 1 step"):
            continue
        checks = [
            ("PSNR vs teacher >= undistilled DDIM 4", one["psnr_vs_teacher"], ddim4["psnr_vs_teacher"],
             one["psnr_vs_teacher"] >= ddim4["psnr_vs_teacher"]),
            ("detail >= 90% of the teacher's", one["detail"] / teacher["detail"], 0.9,
             one["detail"] >= 0.9 * teacher["detail"]),
            ("PSNR at most 0.3 dB below the teacher's", one["psnr"] - teacher["psnr"], -0.3,
             one["psnr"] >= teacher["psnr"] - 0.3),
        ]
        label = student.removeprefix("distilled, 1 step").strip()
        lines += [f"goal: 1-step student{' ' + label if label else ''} {name}: {value:.3f} vs {limit:.3f} -> "
                  f"{'MET' if ok else 'NOT met'}" for name, value, limit, ok in checks]
    return lines


if __name__ == "__main__":
    sys.exit(main())
