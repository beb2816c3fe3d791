"""Where a latent restorer's time goes: its UNet, its autoencoder's decoder (and encoder), and what a distilled
TinyDecoder leaves of the decoder's share, side by side in one run; then the runtime's host and graph time for a
bundle of it.

The models are the ``sr4x-latent`` preset's architecture (or ``--model``'s), with the decoder stage's default
TinyDecoder in place of its decoder: latency depends on the architecture, not on the weights, so an untrained
one times like a trained one (quality is not measured here). Each graph is timed alone in onnxruntime on the
CPU (``edgeir.compress.latency.restore_parts_ms``: one UNet evaluation, one decoder call, median of ``--runs``,
all graphs in interleaved rounds); a restoration of S steps costs S UNet evaluations plus one decoder call
(plus one encoder call where the UNet takes a latent). The bundle row restores a whole frame through
``edgeir.runtime`` (its restore graph, ``--steps`` steps, FP32): graph time and host time apart.

    nice .venv/bin/python tools/bench_latent_cost.py [--sizes 256 512] [--steps 1 2 4 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from edgeir.compress.cost import codec_costs, macs
from edgeir.compress.decoder import DecoderSettings, tiny_config, with_decoder
from edgeir.compress.latency import THREADS, backend, restore_parts_ms
from edgeir.models.restorer import RestorerModel
from edgeir.models.tiny_decoder import TinyDecoder
from edgeir.train.presets import PRESETS


def size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w or h)


def models(source: str | None) -> dict[str, RestorerModel]:
    torch.manual_seed(0)
    if source:
        from edgeir.load import load_restorer

        model = load_restorer(source)
    else:
        model = RestorerModel(PRESETS["sr4x-latent"]).eval()
    tiny = TinyDecoder(tiny_config(DecoderSettings(), model.config)).eval()
    return {"autoencoder's decoder": model,
            "TinyDecoder": with_decoder(model, tiny, {"untrained": "for timing only"})}


def bundle_timing(model: RestorerModel, steps: int, frame: tuple[int, int], runs: int, folder: Path) -> dict:
    from edgeir.export.bundle import export_bundle
    from edgeir.load import save_restorer
    from edgeir.runtime import Restorer
    from edgeir.runtime.budget import time_restores

    save_restorer(model, folder / "model")
    export_bundle(str(folder / "model"), folder / "bundle", steps=steps)
    restorer = Restorer.load(folder / "bundle", "ort-cpu", threads=THREADS)
    t = time_restores(restorer, *frame, runs)
    return {"total": t.p50_ms, "graph": t.graph_ms, "host": t.host_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="A latent restorer (default: the sr4x-latent preset, untrained).")
    # Tile sizes: the runtime restores larger frames tile by tile (the bundle row), and the decoder's global
    # attention over a whole 1080p latent would need tens of GB.
    ap.add_argument("--sizes", nargs="+", type=size, default=[(256, 256), (512, 512)])
    ap.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 50])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--bundle-frame", type=size, default=(1080, 1920), help="Output frame for the bundle row.")
    ap.add_argument("--bundle-steps", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    console = Console(width=None if sys.stdout.isatty() else 170)  # logs get whole rows
    candidates = models(args.model)
    first = next(iter(candidates.values()))
    encoder = first.config.latent.condition == "latent"

    table = Table(title=f"latent restorer cost per image, {backend()} (median of {args.runs}); restoration = "
                        f"S x UNet + decoder{' + encoder' if encoder else ''}")
    for column in ("output", "decoder", "decoder GMACs", "UNet GMACs / step", "UNet ms", "decoder ms",
                   *(f"{s} steps: ms (decoder share)" for s in args.steps)):
        table.add_column(column, justify="right" if column != "decoder" else "left")
    m = first.config.multiple_of
    for h, w in ((-(-h // m) * m, -(-w // m) * m) for h, w in args.sizes):  # 1080 -> 1088: the network's multiple
        parts = restore_parts_ms(candidates, (h, w), args.runs)
        for name, model in candidates.items():
            p = parts[name]
            fixed = p["decoder"] + p.get("encoder", 0.0)
            cells = [f"{s * p['unet'] + fixed:.0f} ({p['decoder'] / (s * p['unet'] + fixed):.0%})"
                     for s in args.steps]
            table.add_row(f"{h}x{w}", name, f"{codec_costs(model, h, w)['decoder_macs'] / 1e9:.2f}",
                          f"{macs(model, h, w) / 1e9:.2f}", f"{p['unet']:.1f}", f"{p['decoder']:.1f}", *cells)
    console.print(table)

    frame = args.bundle_frame
    rows = Table(title=f"the runtime on a {frame[0]}x{frame[1]} output frame, {args.bundle_steps}-step FP32 "
                       f"restore graph, {backend()}: graph time and host time apart (median of {args.runs})")
    for column in ("decoder", "frame ms", "graph ms", "host ms"):
        rows.add_column(column, justify="right" if column != "decoder" else "left")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, model) in enumerate(candidates.items()):
            t = bundle_timing(model, args.bundle_steps, frame, args.runs, Path(tmp) / str(i))
            rows.add_row(name, f"{t['total']:.0f}", f"{t['graph']:.0f}", f"{t['host']:.1f}")
    console.print(rows)


if __name__ == "__main__":
    main()
