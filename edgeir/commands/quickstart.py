"""``edgeir quickstart``: the main job end to end on the shipped default, as a user would run it by hand:

1. ``edgeir compress sr4x --recipe recipes/sr4x-quick.yaml``  (distill -> prune -> quantize, gated)
2. ``edgeir report``                                         (report.md, grid.png, pareto.png)
3. ``edgeir export``                                         (the final stage as a checked bundle)
4. ``edgeir bench --device cpu``                             (p50/p95/p99 against the CPU profile's budget)
5. ``edgeir restore``                                        (a held-out photograph, degraded, then restored)

Every step writes into OUT and is skipped when its result is already there, so an interrupted run resumes.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from edgeir.commands.bench import run_bench
from edgeir.commands.compress import read_report, run_compress
from edgeir.commands.restore import run_restore
from edgeir.data.builtin import builtin_images
from edgeir.data.images import Picture, write_image
from edgeir.devices import load_profile
from edgeir.evaluate import degrade_set
from edgeir.export.bundle import export_bundle
from edgeir.load import load_restorer
from edgeir.report.build import build_report

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "sr4x-quick.yaml"
SAMPLE = "chelsea"


def run_quickstart(out: str | Path, recipe: str | Path = RECIPE, device: str = "cpu",
                   console: Console | None = None) -> dict:
    out = Path(out)
    say = (console or Console(stderr=True)).rule
    run_dir, bundle = out / "compress", out / "bundle"

    say("1/5 compress")
    done = read_report(run_dir)
    report = done if done and done["status"] == "completed" else run_compress(
        None, recipe, run_dir, resume=run_dir.exists())
    final = run_dir / report["final"]

    say("2/5 report")
    build_report(run_dir)

    say("3/5 export")
    if not (bundle / "manifest.json").exists():
        precision = "int8" if any(s["kind"] == "quantize" for s in report["stages"]) else "fp32"
        export_bundle(str(final), bundle, precision=precision, size="64:256:512",
                      command=f"edgeir export {final} -o {bundle} --precision {precision}")

    say("4/5 bench")
    profile = load_profile(device)
    bench = run_bench(bundle, profile.size, budget_ms=profile.p95_budget_ms, runs=5)

    say("5/5 restore")
    teacher = load_restorer(report["recipe"]["teacher"])
    name, img = next((n, im) for n, im in builtin_images("heldout") if n == SAMPLE)
    (_, gt, degraded), = degrade_set(teacher.config.task, [(name, img)], size=256)
    sample = out / "sample"
    write_image(sample / f"{SAMPLE}-degraded.png", Picture(degraded.image, None, 8, False))
    write_image(sample / f"{SAMPLE}-ground-truth.png", Picture(gt, None, 8, False))
    restored = run_restore(bundle, [str(sample / f"{SAMPLE}-degraded.png")], out / "restored")
    return {"report": str(run_dir / "report.md"), "bundle": str(bundle), "bench": bench,
            "restored": restored["restored"], "final_stage": report["final"],
            "final_metrics": {k: report["stages"][-1]["metrics"][k] for k in ("psnr", "ssim", "haarpsi", "detail",
                                                                             "psnr_vs_teacher", "steps")},
            "teacher_metrics": {k: report["teacher"][k] for k in ("psnr", "ssim", "haarpsi", "detail")},
            "profile": profile.model_dump(), "within_budget": bench["within_budget"]}
