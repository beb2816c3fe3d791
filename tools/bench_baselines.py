"""The shipped teachers against every classical baseline, under each degradation their task takes, in one table.

    python tools/bench_baselines.py [--size 256] [--steps 10] [--threads 2] [--markdown]
                                    [--teacher NAME ...] [--model LABEL=FOLDER ...]

For each teacher (sr4x, deblur, inpaint) and each named degradation its task takes (``edgeir.tasks.degradations``:
sr4x clean and real, the others their own), on the held-out photographs (centre crops, one degradation per
photograph, seed 0): the teacher with DDIM-``--steps`` at its own temperature, the task's strongest baseline
(``task.baseline``, what every report and ``edgeir eval`` compare with), its weaker named ones
(``task.baselines``) and the other classical methods tried for it (the deconvolutions of
``edgeir.tasks.deblur.DECONVOLUTIONS``, the denoisers of ``edgeir.tasks.sr.DENOISERS``).
"""

from __future__ import annotations

import click
import torch
from rich.console import Console
from rich.table import Table

from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set, evaluate
from edgeir.load import TEACHERS, load_restorer
from edgeir.metrics import METRICS, mean_metrics, measure
from edgeir.tasks import DeblurTask, SRTask, Task
from edgeir.tasks.deblur import DECONVOLUTIONS, deconvolve
from edgeir.tasks.sr import DENOISERS, denoise

NAMES = {"wiener": "Wiener", "unsupervised_wiener": "unsupervised Wiener", "richardson_lucy": "Richardson-Lucy",
         "nl_means": "NL-means", "tv": "TV", "bilateral": "bilateral"}


def other_methods(task: Task) -> dict:
    """The classical methods tried for ``task`` besides its named baselines."""
    if isinstance(task, DeblurTask):
        return {f"{NAMES[m]}, known kernel": lambda d, m=m: deconvolve(d.image, d.kernel, m)
                for m in DECONVOLUTIONS if m != "wiener"}
    if isinstance(task, SRTask) and task.noisy:
        return {f"bicubic + {NAMES[m]}": lambda d, m=m: denoise(task.bicubic(d), m)
                for m in DENOISERS if m != "nl_means"}
    return {}


@click.command()
@click.option("--size", default=256, show_default=True, help="Centre crop of each held-out photograph.")
@click.option("--steps", default=10, show_default=True, help="Teacher DDIM steps (the shipped default is 50).")
@click.option("--threads", default=2, show_default=True, help="torch threads.")
@click.option("--markdown", is_flag=True, help="Also print the table as Markdown.")
@click.option("--teacher", "teachers", multiple=True, type=click.Choice(list(TEACHERS)),
              help="Only these shipped teachers (default: all).")
@click.option("--model", "extra", multiple=True, metavar="LABEL=FOLDER",
              help="Another model to measure the same way, say a fine-tuned teacher (repeatable).")
def main(size: int, steps: int, threads: int, markdown: bool, teachers: tuple[str, ...],
         extra: tuple[str, ...]) -> None:
    torch.set_num_threads(threads)
    images = builtin_images("heldout")
    models = {name: name for name in teachers or TEACHERS}
    for item in extra:
        label, sep, folder = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item}: expected LABEL=FOLDER", param_hint="--model")
        models[label] = folder
    rows = []  # (teacher, degradation, method, metrics, margin over the strongest baseline)
    for name, source in models.items():
        r = load_restorer(source)
        for degradation in r.task.degradations:
            task = r.task.with_degradation(degradation)
            cases = degrade_set(task, images, size)
            res = evaluate(lambda d, i, r=r: r.restore(d, seed=i, schedule=r.steps(steps)), task, cases,
                           label=f"{name} {degradation}")
            extra = {m: mean_metrics([measure(fn(d), gt, task.scale) for _, gt, d in cases])
                     for m, fn in other_methods(task).items()}
            strongest, *weaker = res["baselines"]
            label = "**baseline**" if strongest == "baseline" else f"**{strongest}** (baseline)"
            methods = [(f"teacher, DDIM-{steps}", res["model"]), (label, res["baseline"]),
                       *((m, res["baselines"][m]) for m in weaker), *extra.items()]
            for method, m in methods:
                rows.append((name, degradation, method, m, m["psnr"] - res["baseline"]["psnr"]))

    table = Table(title=f"teachers vs classical baselines, held-out photographs ({size}px crops, seed 0)")
    for col in ("teacher", "degradation", "method", *METRICS, "vs baseline"):
        table.add_column(col, justify="right" if col in METRICS or col == "vs baseline" else "left")
    for i, (name, degradation, method, m, margin) in enumerate(rows):
        if i and rows[i - 1][:2] != (name, degradation):
            table.add_section()
        table.add_row(name, degradation, method.replace("**", ""), *(f"{m[k]:.4f}" for k in METRICS),
                      f"{margin:+.2f} dB")
    Console(width=150).print(table)
    if markdown:
        print("| teacher | degradation | method | PSNR | SSIM | HaarPSI | detail | vs baseline |")
        print("|---|---|---|---|---|---|---|---|")
        for name, degradation, method, m, margin in rows:
            print(f"| {name} | {degradation} | {method} | {m['psnr']:.2f} | "
                  + " | ".join(f"{m[k]:.4f}" for k in METRICS[1:]) + f" | {margin:+.2f} dB |")


if __name__ == "__main__":
    main()
