"""Memory per tile: the peak memory of restores with the shipped bundles at a few tiles, each in whole-frame
calls and, where the frame is tall enough for it to hold fewer tiles, in the narrowest band the runtime cuts;
with the median frame time beside it, since smaller tiles and bands repeat work.

Peak memory is ``edgeir.runtime.memory.restore_peak`` (a fresh process, two frames, the rise of its peak RSS over
its size before the restorer was loaded); times are ``time_restores`` in this process (median of ``--runs``
after a warm-up).

    nice .venv/bin/python tools/bench_memory.py [--runs 2] [--bundles sr4x deblur] [--sizes 512x512 1080x1920]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import onnxruntime

from edgeir.commands.bench import parse_size
from edgeir.runtime import Restorer
from edgeir.runtime.budget import time_restores
from edgeir.runtime.memory import largest_call, restore_peak
from edgeir.runtime.restorer import MAX_CALL_PIXELS

EXPORTED = Path(__file__).resolve().parent.parent / "exported"

parser = argparse.ArgumentParser()
parser.add_argument("--bundles", nargs="+", default=["sr4x", "deblur"])
parser.add_argument("--sizes", nargs="+", default=["512x512"])
parser.add_argument("--tiles", nargs="+", type=int, default=[256, 128, 64])
parser.add_argument("--runs", type=int, default=2)
args = parser.parse_args()

print(f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), onnxruntime {onnxruntime.__version__} CPU\n")
print("| bundle | output | tile | band | calls | tiles per call | peak RSS (MB) | frame (ms) |")
print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |")
for name in args.bundles:
    bundle = EXPORTED / name
    for size in args.sizes:
        h, w = parse_size(size)
        for tile in args.tiles:
            r = Restorer.load(bundle, "ort-cpu", tile=tile)
            v, m = r.variant, r.manifest
            scale = 1 if r.task.name == "inpaint" else r.task.scale
            whole = largest_call(h, w, tile, v.overlap, scale, m.multiple_of)
            narrowest = largest_call(h, w, tile, v.overlap, scale, m.multiple_of, max_call_pixels=1)
            bands = [("whole frame", MAX_CALL_PIXELS)] + ([("narrowest", 1)] if narrowest[2] < whole[2] else [])
            for band, call in bands:
                peak = restore_peak(bundle, "ort-cpu", v.name, h, w, tile, call)
                t = time_restores(Restorer.load(bundle, "ort-cpu", tile=tile, max_call_pixels=call), h, w, args.runs)
                print(f"| {name} ({len(v.steps)} step{'s' * (len(v.steps) > 1)}) | {w}x{h} | {tile} | {band} | "
                      f"{peak.calls} | {peak.tiles_per_call} | {peak.peak_mb:.0f} | {t.p50_ms:.0f} |", flush=True)
