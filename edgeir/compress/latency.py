"""What compression is judged on besides quality: latency, timed together (``edgeir.timing``) for the models
a table compares. Whole restorations for the stage table; one UNet evaluation in onnxruntime for pruning, whose
MACs do not predict latency (``edgeir.compress.cost``)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edgeir.export.unet import export_unet
from edgeir.graphs.ort import open_session
from edgeir.models.restorer import RestorerModel
from edgeir.progress import no_progress
from edgeir.tasks.base import Degraded
from edgeir.timing import median_ms

RUNS = 5


def restore_latency_ms(models: Sequence[RestorerModel], degraded: Degraded, runs: int = RUNS,
                       seed: int = 0) -> list[float]:
    """Median milliseconds of one whole restoration of ``degraded`` per model."""
    return median_ms([lambda m=m: m.restore(degraded, seed=seed) for m in models], runs)


def unet_latency_ms(models: Mapping[str, RestorerModel], size: tuple[int, int] = (256, 256), runs: int = 20,
                    threads: int = 2, progress: Callable = no_progress) -> dict[str, float]:
    """Median ms of one UNet evaluation in onnxruntime at output ``size`` (height, width) per model, after 3
    warm-up rounds."""
    rng = np.random.default_rng(0)
    h, w = size
    calls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(models.values()):
            session = open_session(export_unet(m, Path(tmp) / f"{i}.onnx"), threads=threads)
            feed = {"x_t": rng.standard_normal((1, 3, h, w), dtype=np.float32), "t": np.array([500.0], np.float32),
                    "condition": rng.standard_normal((1, m.config.task.cond_channels, h, w), dtype=np.float32)}
            calls.append(lambda s=session, f=feed: s.run(None, f))
        with progress("onnxruntime latency", runs + 3) as advance:
            return dict(zip(models, median_ms(calls, runs, warmup=3, advance=advance)))
