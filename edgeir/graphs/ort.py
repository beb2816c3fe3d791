"""The one place an onnxruntime session is opened: the exporter's checks, compression's INT8 denoiser, the
benchmarks and the device runtime all come through here, so options and errors are the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeir.errors import BackendError, brief


def open_session(graph: bytes | str | Path, providers: list[Any] | None = None, threads: int | None = None,
                 int8_encoding: str | None = None, optimize: bool = True):
    """An ``onnxruntime.InferenceSession`` for ``graph`` (bytes or a file). On the CPU provider alone an INT8
    Q/DQ graph is re-encoded for onnxruntime's kernels first (``edgeir.graphs.cpu_int8``; ``int8_encoding``
    overrides the encoding this CPU computes exactly). ``threads``: intra-op threads (default: one per core).
    ``optimize=False`` runs the graph as written, Q/DQ in float: the spec's own arithmetic."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendError("onnxruntime is not installed (pip install 'edgeir[runtime]')") from None
    providers = providers or ["CPUExecutionProvider"]
    data = graph if isinstance(graph, bytes) else Path(graph).read_bytes()
    name = "the graph" if isinstance(graph, bytes) else Path(graph).name
    # The byte search skips parsing FP32 graphs, which have nothing to re-encode.
    if providers == ["CPUExecutionProvider"] and optimize and b"QuantizeLinear" in data:
        try:
            from edgeir.graphs.cpu_int8 import for_cpu
        except ImportError:
            raise BackendError("INT8 graphs are re-encoded for the CPU with the onnx package: pip install onnx "
                               "(or edgeir[runtime])") from None
        data = for_cpu(data, int8_encoding)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # onnxruntime's warnings are for its developers; ours are one line
    if threads:
        opts.intra_op_num_threads = threads
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(data, opts, providers=providers)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own unrelated exception types
        raise BackendError(f"onnxruntime cannot open {name} ({brief(e, first_line=True)})") from None
