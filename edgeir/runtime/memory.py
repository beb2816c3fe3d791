"""Peak memory of restores, measured: a fresh process loads the restorer and restores a synthetic frame twice,
then reports how far its peak resident memory rose above its size before the restorer was loaded (the session,
with graph parsing and INT8 re-encoding, and everything its runs allocated).

* A fresh process, because a process's peak never comes down: measured in the caller, every figure would be the
  largest one before it. Its own peak is Linux's ``VmHWM``, which starts afresh at exec; ``ru_maxrss`` starts at
  the size of the process that spawned it (a bench that has loaded a restorer would hide the child's first
  100 MB or so), so it is only the fallback where there is no ``/proc``.
* Two frames, because onnxruntime's CPU arena grows again on the second frame of a size (by 30-75% at 256-512
  px here), and a device restores frames one after another.
* At the frame size, tile and band size the runtime will use, because a graph call holds all the tiles it
  restores at once: memory follows the tile pixels per call (tiles times tile area, more than the frame's pixels
  where tiles overlap), plus whatever grows faster than a tile's area (attention), so one tile's figure does
  not predict a frame's.

On GPU backends the figure a budget applies to is the device memory the restores hold when they are done
(``cudaMemGetInfo`` before loading and after: TensorRT's execution contexts and buffers, and onnxruntime's CUDA
arena, keep what they took), read through cuda-python as the TensorRT backend does; where that is not installed
the device memory is not measured, and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeir.bundle import load_bundle
from edgeir.errors import BackendError
from edgeir.graphs import layout
from edgeir.runtime.restorer import MAX_CALL_PIXELS, Restorer, band_rows

FRAMES = 2
MB = 1 << 20


@dataclass
class Peak:
    peak_mb: float | None  # the figure a budget is held to: host_mb on the CPU, device_mb on a GPU
    host_mb: float  # rise of the process's peak resident memory
    device_mb: float | None  # GPU memory the restores hold; None on the CPU backend or without cuda-python
    calls: int  # graph calls per frame (bands)
    tiles_per_call: int  # tiles in the largest call


def largest_call(height: int, width: int, tile: int, overlap: int, scale: int, multiple_of: int,
                 max_call_pixels: int = MAX_CALL_PIXELS) -> tuple[int, int, int]:
    """(graph calls per frame, output pixels of the largest, tiles in it) for an ``height`` x ``width`` output
    frame, as the runtime cuts it."""
    rows = band_rows(height, width, tile, overlap, scale, max_call_pixels)
    tallest = max(bottom - top for top, bottom, _, _ in rows)
    spans = layout.span(tallest, tile, overlap, multiple_of)[0], layout.span(width, tile, overlap, multiple_of)[0]
    return len(rows), tallest * width, spans[0] * spans[1]


def restore_peak(bundle: str | Path, backend: str, variant: str, height: int, width: int, tile: int | None = None,
                 max_call_pixels: int = MAX_CALL_PIXELS, workspace_mb: int = 1024) -> Peak:
    """The peak memory of restoring ``height`` x ``width`` frames with ``variant`` on ``backend`` (a backend's
    own name, not auto), measured in a fresh process."""
    job = {"bundle": str(bundle), "backend": backend, "variant": variant, "height": height, "width": width,
           "tile": tile, "max_call_pixels": max_call_pixels, "workspace_mb": workspace_mb}
    # The child imports this edgeir, also when it is not installed but on the caller's path.
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "edgeir.runtime.memory", json.dumps(job)], capture_output=True,
                          text=True, env=env, check=False)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise BackendError(f"measuring the peak memory of {variant} on {backend} failed: {last[:200]}")
    return Peak(**json.loads(done.stdout.splitlines()[-1]))


def measure(job: dict) -> Peak:
    """What the fresh process does (``restore_peak``): its figures are only meaningful there."""
    from edgeir.runtime.budget import synthetic_input  # budget (the planner) imports this module

    m = load_bundle(job["bundle"]).manifest
    image = synthetic_input(m.task, job["height"], job["width"])  # the caller's frame, not the restorer's memory
    device_free = _device_free(job["backend"])
    host, device = _own_peak_mb(), device_free() if device_free else 0
    r = Restorer.load(job["bundle"], job["backend"], job["variant"], max_call_pixels=job["max_call_pixels"],
                      workspace_mb=job["workspace_mb"], tile=job["tile"])
    for _ in range(FRAMES):
        r.restore(image)
    host_mb = round(_own_peak_mb() - host, 1)
    device_mb = None if device_free is None else round((device - device_free()) / MB, 1)
    v = r.variant
    assert v.tile is not None and v.overlap is not None
    n, _, tiles = largest_call(job["height"], job["width"], v.tile, v.overlap,
                               1 if m.task.name == "inpaint" else m.task.scale, m.multiple_of, job["max_call_pixels"])
    return Peak(host_mb if r.backend == "ort-cpu" else device_mb, host_mb, device_mb, n, tiles)


def _own_peak_mb() -> float:
    """This process's own peak resident memory (see the module docstring)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        from edgeir.runtime.budget import peak_rss_mb

        return peak_rss_mb()


def _device_free(backend: str):
    """A function returning the GPU's free bytes, its CUDA context made first so that the context is not
    counted; None on the CPU backend or without TensorRT's bindings and cuda-python. The backend's library is
    imported first as well: the library is not the restore's memory."""
    if backend.startswith("ort-"):
        import onnxruntime  # noqa: F401
    if backend == "ort-cpu":
        return None
    from edgeir.runtime.trt import _check, _cudart

    try:
        cudart = _cudart()
    except BackendError:
        return None
    _check(cudart.cudaFree(0), "making a CUDA context")
    return lambda: int(_check(cudart.cudaMemGetInfo(), "reading free GPU memory")[0])


if __name__ == "__main__":
    print(json.dumps(asdict(measure(json.loads(sys.argv[1])))))
