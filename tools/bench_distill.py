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
``--device cuda`` trains them (and makes the teacher outputs) on a GPU, in full FP32; every model is still
measured on the CPU, so the table compares with a CPU-only run's. ``--save DIR`` keeps the students, and
``--load DIR`` measures such saved students instead of training them (train on a GPU, measure anywhere).

The issue's goals for 1-step students are judged on the main table's one noise draw per image and, with
``--noise-seeds N``, on the mean over the N draws, a steadier estimate of the same quantities.
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
from edgeir.compress.latency import restore_latency_ms
from edgeir.compress.stage import StageContext
from edgeir.data.builtin import BUILTIN_TRAIN, builtin_images
from edgeir.diffusion.schedules import spaced_timesteps
from edgeir.evaluate import degrade_set
from edgeir.load import load_restorer, save_restorer
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
    ap.add_argument("--patch", type=_sizes, default=[128],
                    help="training crop sizes, comma-separated (default: the teacher's training size)")
    ap.add_argument("--save-every", type=int, default=DistillSettings.model_fields["save_every"].default,
                    help="checkpoint interval in iterations (a GPU runs 50 in well under a second)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--detail-weight", type=float, default=30.0, help="for students that name none")
    ap.add_argument("--loss", choices=("mse", "psnr"), default="mse", help="the distill stage's loss")
    ap.add_argument("--data", choices=tuple(BUILTIN_TRAIN), default="builtin",
                    help="the students' training photographs, as a recipe's data.train names them")
    ap.add_argument("--ema", type=float, default=DistillSettings.model_fields["ema"].default,
                    help="the distill stage's EMA decay of the weights")
    ap.add_argument("--chain", action="store_true", help="start each student from the previous one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu",
                    help="where the students train and the teacher makes their outputs (say cuda); every model "
                         "is measured on the CPU")
    ap.add_argument("--save", type=Path, help="also save each student here, in the teachers' folder format")
    ap.add_argument("--load", type=Path,
                    help="measure the students that --save wrote here (trained elsewhere, say on a GPU) instead "
                         "of training them")
    ap.add_argument("--latency-runs", type=int, default=5, help="timed restorations per model (median)")
    ap.add_argument("--fresh", type=int, default=0, help="also compare on this many unseen training crops")
    ap.add_argument("--noise-seeds", type=int, default=1,
                    help="also report PSNR vs teacher-50 over this many noise draws per held-out image")
    ap.add_argument("--work", type=Path, help="keep the teacher outputs and checkpoints here (resumable)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()

    start = time.time()
    # Full FP32 on a GPU too: TF32 convolutions would leave the 50-step targets less exact than the CPU's.
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
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
        minutes, made = {}, {}
        specs = args.students.split(",")
        counts = Counter(int(spec.split(":")[0]) for spec in specs)
        init = teacher
        for spec in specs:
            k, iterations, lr, *weight = spec.split(":")
            k = int(k)
            # Students of the same step count are told apart by their spec.
            name = f"distilled, {k} step{'s' if k > 1 else ''}" + (f" ({spec})" if counts[k] > 1 else "")
            s = DistillSettings(method=args.method, steps=k, iterations=int(iterations), batch=args.batch,
                                patch=args.patch if len(args.patch) > 1 else args.patch[0], pairs=args.pairs,
                                lr=float(lr), loss=args.loss, ema=args.ema, save_every=args.save_every,
                                detail_weight=float(weight[0]) if weight else args.detail_weight)
            ctx = StageContext(teacher=teacher, student=init, train_images=images, eval_cases=cases,
                               work_dir=work, seed=args.seed, device=args.device, progress=progress_bar)
            t0 = time.time()
            if args.load:
                student = load_restorer(args.load / spec.replace(":", "_"))
                made[spec] = {k: v for k, v in student.config.provenance.items() if k != "history"}
            else:
                student = distill.run(s, ctx).model
                teacher.cpu()  # the stage moved it to args.device
                minutes[spec] = (time.time() - t0) / 60
            if args.save:
                save_restorer(student, args.save / spec.replace(":", "_"))
            if args.chain:
                init = student
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
    if made:
        console.print(f"loaded students, as their provenance records them: {made}", highlight=False)
    if fresh is not None:
        console.print(fresh_table([name for name, _ in rows[1:]], models[1:], *fresh, args))
    draws = {"one noise draw": {name: _summary(m, rows[0][1]) for name, m in rows[1:]}}
    if args.noise_seeds > 1:
        table, draws[f"mean over {args.noise_seeds} noise draws"] = seeds_table(rows, models, cases, args)
        console.print(table)
    goals = [line for label, summary in draws.items() for line in _goals(summary, label)]
    for line in goals:
        console.print(line, highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"rows": dict(rows), "goals": goals, "args": vars(args)}, indent=2,
                                        default=str))


def fresh_crops(teacher, images, args, work: Path) -> tuple:
    """(condition, noise, 50-step teacher output) for ``args.fresh`` training crops from a seed the students'
    teacher outputs never use; made by the distill stage's own code and cached next to its pairs."""
    size = args.patch[0]
    s = DistillSettings(pairs=args.fresh, patch=size, batch=8)
    ctx = StageContext(teacher=teacher, student=teacher, train_images=images, eval_cases=[], work_dir=work,
                       seed=args.seed + 1000, device=args.device, progress=progress_bar)
    pairs = distill._teacher_pairs(teacher.to(args.device), len(teacher.steps()), s, size, ctx,
                                   [im for im in images if min(im.shape[:2]) >= size])
    teacher.cpu()
    return pairs


@torch.no_grad()
def fresh_table(names: list[str], models: list, cond, noise, target, args) -> Table:
    """Mean PSNR (Y) against the teacher's output per third of the crops, ordered by DDIM 4's."""
    def psnrs(model) -> np.ndarray:
        out = model.to_image(model.sample(cond, noise), cond).permute(0, 2, 3, 1).numpy()
        return np.array([psnr_y(o, r) for o, r in zip(out, ref)])

    ref = models[0].to_image(target, cond).permute(0, 2, 3, 1).numpy()
    scores = {name: psnrs(m) for name, m in zip(names, models)}
    thirds = np.array_split(np.argsort(scores["teacher, DDIM 4"]), 3)
    table = Table(title=f"PSNR vs teacher-50 on {args.fresh} unseen {args.patch[0]} px training crops, by how "
                        "close undistilled DDIM 4 comes")
    for col in ("sampler", "all", "hardest third", "middle third", "easiest third"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    for name, v in scores.items():
        table.add_row(name, f"{v.mean():.2f}", *(f"{v[t].mean():.2f}" for t in thirds))
    return table


def seeds_table(rows: list, models: list, cases, args) -> tuple[Table, dict]:
    """PSNR against the teacher's 50-step output from the same noise, detail as a share of the teacher's and
    PSNR against ground truth, over ``args.noise_seeds`` noise draws per held-out image: one draw (the main
    table's ``rows``, which this starts from) is a small sample. Returns the table and each model's means."""
    # measure_model gives image i the noise seed ``seed + i``, so steps of len(cases) never reuse a draw.
    seeds = [args.seed + j * len(cases) for j in range(args.noise_seeds)]
    names = [name for name, _ in rows[1:]]
    per_draw = {name: [_summary(m, rows[0][1])] for name, m in rows[1:]}
    for seed in seeds[1:]:
        ref_metrics, reference = measure_model(models[0], cases, seed, label=f"teacher, seed {seed}")
        for name, model in zip(names, models[1:]):
            m, _ = measure_model(model, cases, seed, reference, label=f"{name}, seed {seed}")
            per_draw[name].append(_summary(m, ref_metrics))
    table = Table(title=f"PSNR vs teacher-50 over {len(seeds)} noise draws per held-out image "
                        f"(seeds {seeds[0]}, {seeds[1]}, ...)")
    for col in ("sampler", "mean", "lowest", "highest", "detail (share of teacher's, mean)",
                "PSNR - teacher's (mean)"):
        table.add_column(col, justify="left" if col == "sampler" else "right")
    means = {}
    for name in names:
        vs = [d["vs_teacher"] for d in per_draw[name]]
        means[name] = {key: float(np.mean([d[key] for d in per_draw[name]])) for key in per_draw[name][0]}
        table.add_row(name, f"{means[name]['vs_teacher']:.2f}", f"{min(vs):.2f}", f"{max(vs):.2f}",
                      f"{means[name]['detail_share']:.1%}", f"{means[name]['psnr_drop']:+.3f} dB")
    return table, means


def _summary(m: dict, teacher: dict) -> dict:
    """What the goals judge, for one model against the teacher measured on the same noise."""
    return {"vs_teacher": m["psnr_vs_teacher"], "detail_share": m["detail"] / teacher["detail"],
            "psnr_drop": m["psnr"] - teacher["psnr"]}


def _sizes(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def one_thread_latency(models: list, degraded, runs: int) -> list[float]:
    """``restore_latency_ms`` on one torch thread, as an edge CPU app would restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return restore_latency_ms(models, degraded, runs)
    finally:
        torch.set_num_threads(threads)


def _goals(summary: dict, label: str) -> list[str]:
    """The issue's goals for every 1-step student, each with its verdict, judged on ``summary`` (name ->
    ``_summary``) from one noise draw or the mean over several."""
    ddim4 = summary["teacher, DDIM 4"]["vs_teacher"]
    lines = []
    for student, one in summary.items():
        if not student.startswith("distilled, 1 step"):
            continue
        checks = [
            ("PSNR vs teacher >= undistilled DDIM 4", one["vs_teacher"], ddim4, one["vs_teacher"] >= ddim4),
            ("detail >= 90% of the teacher's", one["detail_share"], 0.9, one["detail_share"] >= 0.9),
            ("PSNR at most 0.3 dB below the teacher's", one["psnr_drop"], -0.3, one["psnr_drop"] >= -0.3),
        ]
        name = student.removeprefix("distilled, 1 step").strip()
        lines += [f"goal ({label}): 1-step student{' ' + name if name else ''} {what}: {value:.3f} vs "
                  f"{limit:.3f} -> {'MET' if ok else 'NOT met'}" for what, value, limit, ok in checks]
    return lines


if __name__ == "__main__":
    sys.exit(main())
