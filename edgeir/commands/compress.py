"""``edgeir compress``: run a recipe, then show what each stage cost and kept."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeir.compress.pipeline import compress
from edgeir.compress.recipe import load_recipe


def run_compress(model: str | None, recipe_file: str | Path, out: str | Path, resume: bool = False,
                 device: str | None = None, trust_pickle: bool = False) -> dict:
    recipe = load_recipe(recipe_file)
    with terminate_as_interrupt():
        return compress(recipe, out, model, resume, device, recipe_file=str(recipe_file), trust_pickle=trust_pickle)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a job scheduler's time limit, a container stopping) ends the block as Ctrl-C does, so
    the pipeline records the run as interrupted and resumable instead of dying with report.json saying
    "running". Only the main thread may set a handler; elsewhere SIGTERM keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"terminated by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_report(out: str | Path) -> dict | None:
    try:
        return json.loads((Path(out) / "report.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def report_table(report: dict, out: str | Path, console: Console | None = None) -> None:
    """One row for the teacher and one per stage: cost, the four quality sides, and the gates' verdict."""
    # A header as long as the engine's name would squeeze every other column.
    timed = report["teacher"].get("latency_backend")
    table = Table(title=f"edgeir compress: {report['recipe']['name']} ({report['status']})",
                  caption=f"ms/img: {timed}, the teacher and every stage timed together" if timed else None)
    for col in ("model", "steps", "params", "GMAC/img", "ms/img", "PSNR", "SSIM", "HaarPSI", "detail",
                "PSNR vs teacher", "gates"):
        table.add_column(col, justify="left" if col in ("model", "gates") else "right", no_wrap=True)

    def row(label: str, m: dict, gates: str) -> list[str]:
        return [label, str(m["steps"]), f"{m['params'] / 1e6:.2f}M", f"{m['macs'] / 1e9:.1f}",
                _num(m.get("latency_ms"), ".0f"), _num(m["psnr"], ".2f"), _num(m["ssim"], ".4f"),
                _num(m["haarpsi"], ".4f"), _num(m["detail"], ".3f"), _num(m.get("psnr_vs_teacher"), ".2f"),
                gates]

    table.add_row(*row("teacher", report["teacher"], ""))
    verdicts = []
    for s in report["stages"]:
        failed = [g for g in s["gates"] if not g["passed"]]
        verdict = "-" if not s["gates"] else ("FAIL" if failed else "pass")
        label = s["stage"] + (" (resumed)" if s["resumed"] else "")
        table.add_row(*row(label, s["metrics"], verdict), style="red" if failed else None)
        verdicts += [f"{s['stage']} gate {g['gate']} {g['limit']:g}: {_num(g['value'], '.4g')} "
                     f"({'pass' if g['passed'] else 'FAIL'})" for g in s["gates"]]
        ort = s.get("info", {}).get("unet_ms_onnxruntime")
        if ort:  # what pruning is for, measured rather than inferred from MACs
            h, w = ort["size"]
            verdicts.append(f"{s['stage']} one UNet evaluation at {h}x{w} in onnxruntime: {ort['before']:.1f} -> "
                            f"{ort['after']:.1f} ms ({ort['before'] / ort['after']:.2f}x faster)")
        parts = s.get("info", {}).get("latency_ms_onnxruntime")
        if parts:  # what the decoder stage is for
            h, w = parts["size"]
            before, after = parts["before"], parts["after"]
            verdicts.append(f"{s['stage']} decoder at {h}x{w} in onnxruntime: {before['decoder']:.1f} -> "
                            f"{after['decoder']:.1f} ms, {before['decoder_share']:.0%} -> {after['decoder_share']:.0%} "
                            f"of a restoration ({before['restore']:.1f} -> {after['restore']:.1f} ms)")
    # Logs and pipes get the whole table rather than an 80-column squeeze.
    console = console or Console(width=None if sys.stdout.isatty() else 130)
    console.print(table)
    for line in verdicts:
        console.print(line, highlight=False)
    for name, t in report.get("targets", {}).items():
        state = "met" if t["met"] else "NOT met"
        console.print(f"target {name} <= {t['target']:g}: measured {_num(t['measured'], '.3g')} ({state})",
                      highlight=False)
    if report.get("final"):
        console.print(f"final model: {Path(out) / report['final']}", highlight=False)
