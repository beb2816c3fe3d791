"""``edgeir report RUN_DIR``: report.md, grid.png and pareto.png from a compression run's report.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from edgeir.compress.pipeline import _data as recipe_data
from edgeir.compress.recipe import Recipe
from edgeir.errors import ConfigError
from edgeir.files import atomic_path, write_atomic
from edgeir.load import load_restorer
from edgeir.metrics import mean_metrics, measure
from edgeir.report import markdown, plots

GRID_IMAGES = 3


def build_report(run: str | Path, trust_pickle: bool = False) -> list[Path]:
    """``trust_pickle``: the run's model is a .pt/.pth state dict the user vouched for (``compress --trust-pickle``)."""
    run = Path(run)
    try:
        report = json.loads((run / "report.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"{run}: no report.json (not an edgeir compress output folder)") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{run / 'report.json'}: corrupt JSON ({e})") from None
    recipe = Recipe.model_validate(report["recipe"])
    teacher = load_restorer(report["model"], trust_pickle=trust_pickle)
    task = teacher.config.task
    _, cases = recipe_data(recipe, teacher)

    # The naive baseline is measured here, where its images are drawn anyway.
    base_imgs, base_rows, seconds = [], [], []
    for _, gt, d in cases:
        start = time.perf_counter()
        img = task.baseline(d)
        seconds.append(time.perf_counter() - start)
        base_imgs.append(img)
        base_rows.append(measure(img, gt, crop=task.scale))
    report["baseline"] = {**mean_metrics(base_rows), "latency_ms": 1000 * float(np.median(seconds))}
    for s in report["stages"]:
        files = [p for p in (run / s["folder"]).rglob("*") if p.suffix in (".safetensors", ".onnx", ".engine")]
        s["size_mb"] = min(p.stat().st_size for p in files) / 1e6 if files else None

    shown = cases[:GRID_IMAGES]
    with np.load(run / "teacher" / "outputs.npz", allow_pickle=False) as z:
        teacher_imgs = [z[f"image{i}"] for i in range(len(shown))]
    columns = [("degraded input", [plots.shown_input(d.image, gt.shape[:2]) for _, gt, d in shown]),
               ("naive baseline", base_imgs[: len(shown)]), ("teacher", teacher_imgs)]
    for s in report["stages"]:
        model = load_restorer(run / s["folder"])
        columns.append((s["stage"], [model.restore(d, seed=recipe.seed + i) for i, (_, _, d) in enumerate(shown)]))
    columns.append(("ground truth", [gt for _, gt, _ in shown]))

    paths = [run / "grid.png", run / "pareto.png", run / "report.md"]
    with atomic_path(paths[0]) as tmp:
        plots.grid(columns, tmp)
    with atomic_path(paths[1]) as tmp:
        plots.pareto(report, tmp)
    write_atomic(paths[2], markdown.render(report, ["grid.png", "pareto.png"]))
    return paths
