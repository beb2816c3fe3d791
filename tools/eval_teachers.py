"""Evaluate the shipped teachers against their naive baselines on the held-out photographs, in one table.

    python tools/eval_teachers.py [--size 256] [--sweep] [--weights DIR] [--only NAME] [--seeds N]

``--weights DIR`` evaluates DIR/NAME model folders (a new training run, say) in place of the shipped ones.

``--seeds N`` degrades each photograph N ways (degradation seeds 0..N-1: other masks, kernels, noise) and
averages over all of them, to see whether a narrow margin on the default single degradation holds.

``--sweep`` also tries other noise temperatures and step counts (how the shipped default samplers were chosen).
"""

from __future__ import annotations

import click
import torch
from rich.console import Console
from rich.table import Table

from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set, evaluate
from edgeir.load import TEACHERS, load_restorer
from edgeir.metrics import METRICS


@click.command()
@click.option("--size", default=256, show_default=True, help="Centre crop of each held-out photograph.")
@click.option("--sweep", is_flag=True, help="Also sweep sampler temperature and steps.")
@click.option("--weights", type=click.Path(exists=True, file_okay=False), help="Folder of NAME/ teacher folders.")
@click.option("--only", "only", multiple=True, type=click.Choice(list(TEACHERS)), help="Evaluate these teachers only.")
@click.option("--seeds", default=1, show_default=True, help="Degradations per photograph (seeds 0..N-1).")
@click.option("--threads", default=1, show_default=True, help="torch threads (more than the free cores thrash).")
def main(size: int, sweep: bool, weights: str | None, only: tuple[str, ...], seeds: int, threads: int) -> None:
    torch.set_num_threads(threads)
    table = Table(title=f"shipped teachers vs naive baselines, held-out photographs ({size}px crops"
                        f"{f', {seeds} degradations each' if seeds > 1 else ''})")
    for col in ("teacher", "method", *METRICS, "vs baseline"):
        table.add_column(col, justify="right" if col in METRICS else "left")
    images = builtin_images("heldout")
    for name in only or TEACHERS:
        r = load_restorer(f"{weights}/{name}" if weights else name)
        s = r.config.sampler
        cases = [c for seed in range(seeds) for c in degrade_set(r.task, images, size, seed)]
        variants = [(s.steps, s.temperature)]
        if sweep:
            variants += [(st, tmp) for st in (20, 50) for tmp in (1.0, 0.7, 0.5, 0.3, 0.1) if (st, tmp) != variants[0]]
        base = None
        for steps, temp in variants:
            r.config = r.config.model_copy(update={"sampler": s.model_copy(update={"temperature": temp})})
            res = evaluate(lambda d, i, r=r, n=steps: r.restore(d, seed=i, schedule=r.steps(n)), r.task, cases,
                           baseline=base is None, label=f"{name} {steps} steps T={temp}")
            if base is None:
                base = res["baseline"]
                table.add_row(name, "naive baseline", *(f"{base[m]:.4f}" for m in METRICS), "")
            m = res["model"]
            beats = all(m[k] > base[k] for k in METRICS)
            default = " (default)" if (steps, temp) == variants[0] else ""
            table.add_row("", f"DDIM-{steps} T={temp}{default}", *(f"{m[k]:.4f}" for k in METRICS),
                          f"{m['psnr'] - base['psnr']:+.2f} dB, {'beats on all four' if beats else 'does not beat'}")
        table.add_section()
    Console().print(table)


if __name__ == "__main__":
    main()
