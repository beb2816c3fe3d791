"""Latency of one UNet evaluation in onnxruntime (CPU): what pruning and quantization are judged by, since
MACs do not predict it (see ``edgeir.compress.cost``)."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from edgeir.export.unet import export_unet
from edgeir.models.restorer import Restorer


def unet_latency_ms(models: Mapping[str, Restorer], size: tuple[int, int] = (256, 256), runs: int = 20,
                    threads: int = 2, progress: Callable | None = None) -> dict[str, float]:
    """Median ms of one UNet evaluation at output ``size`` (height, width) per model. The sessions run round-robin,
    after 3 warm-up rounds, so a shared machine's load hits every model alike."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    h, w = size
    with tempfile.TemporaryDirectory() as tmp:
        sessions, feeds = {}, {}
        for name, m in models.items():
            path = export_unet(m, Path(tmp) / f"{len(sessions)}.onnx")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            feeds[name] = {"x_t": rng.standard_normal((1, 3, h, w), dtype=np.float32),
                           "t": np.array([500.0], np.float32),
                           "condition": rng.standard_normal((1, m.config.task.cond_channels, h, w),
                                                            dtype=np.float32)}
        times: dict[str, list[float]] = {name: [] for name in models}
        bar = progress("onnxruntime latency", runs + 3) if progress else contextlib.nullcontext(lambda n=1: None)
        with bar as advance:
            for i in range(runs + 3):
                for name, s in sessions.items():
                    start = time.perf_counter()
                    s.run(None, feeds[name])
                    if i >= 3:
                        times[name].append((time.perf_counter() - start) * 1000)
                advance(1)
    return {name: float(np.median(t)) for name, t in times.items()}
