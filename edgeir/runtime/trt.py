"""Native TensorRT engines through TensorRT's own Python API, with cuda-python for device memory (no torch,
no pycuda).

An engine only runs on the GPU model and TensorRT version that built it, so portable bundles ship ONNX and the
engine is built on the device at first use, then cached under ``cache_root()`` keyed by graph, TensorRT
version, GPU, precision and shape profile. A variant whose format is ``tensorrt`` ships a prebuilt engine for
one device: it is used as is, and refused clearly when it does not deserialize here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from edgeir.bundle.manifest import Variant
from edgeir.errors import BackendError
from edgeir.files import write_atomic

INSTALL = "pip install 'edgeir[trt]'; on a Jetson, JetPack's python3-libnvinfer and pip install cuda-python"


def _modules() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
    if trt is None or not hasattr(trt, "Builder"):  # the stubs-only package imports as an empty namespace
        raise BackendError(f"tensorrt: TensorRT's Python bindings are not installed ({INSTALL})")
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            raise BackendError(f"tensorrt: cuda-python is not installed ({INSTALL})") from None
    return trt, cudart


def _check(result: tuple, what: str) -> Any:
    err, *rest = result
    if int(err) != 0:
        raise BackendError(f"tensorrt: {what} failed (CUDA error {int(err)})")
    return rest[0] if len(rest) == 1 else rest


class TrtSession:
    def __init__(self, graph: bytes, variant: Variant, cache: Path, shapes):
        trt, self.cudart = _modules()
        self.logger = trt.Logger(trt.Logger.ERROR)
        props = _check(self.cudart.cudaGetDeviceProperties(0), "finding a GPU")
        if variant.format == "tensorrt":
            blob = graph
        else:
            blob = self._cached_engine(trt, graph, variant, cache, shapes, props.name.decode(errors="replace"))
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(blob)
        if self.engine is None:
            raise BackendError(f"tensorrt: {variant.graph} was built for another GPU or TensorRT version "
                               f"(this is TensorRT {trt.__version__}); ship ONNX and let the device build it")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self.cudart.cudaStreamCreate(), "creating a CUDA stream")
        self.output = variant.outputs[0].name
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)

    def _cached_engine(self, trt, graph: bytes, variant: Variant, cache: Path, shapes, gpu: str) -> bytes:
        key = hashlib.sha256(graph + f"|{trt.__version__}|{gpu}|{variant.precision}|{shapes}".encode())
        path = cache / f"{variant.name}-{key.hexdigest()[:16]}.engine"
        if path.exists():
            return path.read_bytes()
        # The exporter's builder (torch- and onnx-free, so it runs here): Q/DQ graphs strongly typed, the FP16
        # flag for FP16 graphs, one profile from the bundle's size constraints up to the planned tile.
        from edgeir.graphs.tensorrt import build_serialized

        m, b = shapes.multiple_of, shapes.batch
        profile = {spec.name: ((1,), (b,), (b,)) if spec.layout == "N" else
                   ((1, spec.channels, m, m), (b, spec.channels, shapes.height, shapes.width),
                    (b, spec.channels, shapes.height, shapes.width)) for spec in variant.inputs}
        blob = build_serialized(graph, profile, fp16=variant.precision == "fp16",
                                strongly_typed=variant.precision == "int8", workspace_mb=1024,
                                timing_cache=cache / "timing.cache", name=variant.graph)
        write_atomic(path, blob)
        return blob

    def _device(self, name: str, nbytes: int) -> int:
        ptr, cap = self.buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr), "freeing memory")
            ptr = _check(self.cudart.cudaMalloc(nbytes), f"allocating {nbytes:,} bytes")
            self.buffers[name] = (ptr, nbytes)
        return int(ptr)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        kinds = self.cudart.cudaMemcpyKind
        h2d, d2h = kinds.cudaMemcpyHostToDevice, kinds.cudaMemcpyDeviceToHost
        host = {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in feeds.items()}  # alive until synced
        for name, arr in host.items():
            if not self.context.set_input_shape(name, arr.shape):
                raise BackendError(f"tensorrt: input {name} shape {arr.shape} is outside the engine's profile")
            ptr = self._device(name, arr.nbytes)
            _check(self.cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self.stream), "upload")
            self.context.set_tensor_address(name, ptr)
        out = np.empty(tuple(self.context.get_tensor_shape(self.output)), np.float32)
        ptr = self._device(self.output, out.nbytes)
        self.context.set_tensor_address(self.output, ptr)
        if not self.context.execute_async_v3(self.stream):
            raise BackendError("tensorrt: inference failed")
        _check(self.cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream), "download")
        _check(self.cudart.cudaStreamSynchronize(self.stream), "synchronising")
        return out

    def __del__(self):
        for ptr, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(ptr)
