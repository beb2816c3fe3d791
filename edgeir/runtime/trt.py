"""Native TensorRT engines through TensorRT's own Python API, with cuda-python for device memory (no torch,
no pycuda).

An engine only runs on the GPU model and TensorRT version that built it, so portable bundles ship ONNX and the
engine is built on the device, for the frame size it meets (a restore graph's shapes all follow from the
frame's, but for inpainting's hole count, which its profile ranges over), then cached under ``cache_root()`` keyed by graph, TensorRT version, GPU, precision and shapes; a
stream of same-size frames builds once. A variant whose format is ``tensorrt`` ships a prebuilt engine for one
device: it is used as is, and refused clearly when it does not deserialize here.

Device memory is allocated once per input and output and grown only when a larger frame comes; static inputs
(noise, index maps) are uploaded once per array, the frame's pixels every call.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeir.bundle.manifest import Variant
from edgeir.errors import BackendError
from edgeir.files import write_atomic

if TYPE_CHECKING:
    import tensorrt as trt

Shape = tuple[int, ...]
INSTALL = "pip install 'edgeir[trt]'; on a Jetson, JetPack's python3-libnvinfer and pip install cuda-python"


def _cudart() -> Any:
    """cuda-python's runtime API, once TensorRT is known to import (the methods below import it by name, so
    mypy checks them against the TensorRT stubs)."""
    try:
        import tensorrt
    except ImportError:
        tensorrt = None  # type: ignore[assignment]
    if tensorrt is None or not hasattr(tensorrt, "Builder"):  # the stubs-only package imports as an empty namespace
        raise BackendError(f"tensorrt: TensorRT's Python bindings are not installed ({INSTALL})")
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            raise BackendError(f"tensorrt: cuda-python is not installed ({INSTALL})") from None
    return cudart


def _check(result: tuple, what: str) -> Any:
    err, *rest = result
    if int(err) != 0:
        raise BackendError(f"tensorrt: {what} failed (CUDA error {int(err)})")
    return rest[0] if len(rest) == 1 else rest


class TrtSession:
    def __init__(self, graph: bytes, variant: Variant, cache: Path, workspace_mb: int = 1024):
        self.cudart = _cudart()
        import tensorrt as trt

        self.logger = trt.Logger(trt.Logger.ERROR)
        self.graph, self.variant, self.cache, self.workspace_mb = graph, variant, cache, workspace_mb
        self.gpu = _check(self.cudart.cudaGetDeviceProperties(0), "finding a GPU").name.decode(errors="replace")
        self.stream = _check(self.cudart.cudaStreamCreate(), "creating a CUDA stream")
        self.output = variant.outputs[0].name
        self.per_frame = {spec.name for spec in variant.inputs if spec.layout == "holes"}
        self.contexts: dict[tuple, trt.IExecutionContext] = {}  # input shapes -> context of their engine
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self.uploaded: dict[str, int] = {}  # static input -> id of the host array now on the device
        self.held: dict[str, np.ndarray] = {}  # ...kept alive, so that id is not reused meanwhile
        if variant.format == "tensorrt":
            self.prebuilt = self._deserialize(graph)

    def _deserialize(self, blob: bytes) -> trt.ICudaEngine:
        import tensorrt as trt

        engine = trt.Runtime(self.logger).deserialize_cuda_engine(blob)
        if engine is None:
            raise BackendError(f"tensorrt: {self.variant.graph} was built for another GPU or TensorRT version "
                               f"(this is TensorRT {trt.__version__}); ship ONNX and let the device build it")
        return engine

    def _profile(self, shapes: dict[str, Shape]) -> dict[str, tuple[Shape, Shape, Shape]]:
        """Each input's (min, opt, max) shape for inputs of these shapes: exactly the frame's, except a count
        that changes from frame to frame at one frame size (inpainting's holes), which ranges from one to
        every pixel of the frame, so a stream of frames with different holes builds one engine."""
        pixels = int(np.prod(shapes["noise"][2:])) if "noise" in shapes else 1
        profile: dict[str, tuple[Shape, Shape, Shape]] = {}
        for name, shape in shapes.items():
            if name in self.per_frame:
                rest = tuple(shape[1:])
                profile[name] = ((1, *rest), (max(1, pixels // 16), *rest), (pixels, *rest))
            else:
                profile[name] = (shape, shape, shape)
        return profile

    def _context(self, shapes: dict[str, tuple[int, ...]]) -> trt.IExecutionContext:
        """The execution context for inputs of these shapes: an engine built (or read from the cache) for
        their profile, or the prebuilt one."""
        profile = self._profile(shapes)
        key = tuple(sorted(profile.items()))
        if key not in self.contexts:
            engine = self.prebuilt if self.variant.format == "tensorrt" else self._deserialize(self._engine(profile))
            self.contexts[key] = engine.create_execution_context()
        return self.contexts[key]

    def _engine(self, profile: dict[str, tuple[Shape, Shape, Shape]]) -> bytes:
        import tensorrt as trt

        v = self.variant
        key = hashlib.sha256(self.graph + f"|{trt.__version__}|{self.gpu}|{v.precision}|{sorted(profile.items())}"
                             .encode())
        path = self.cache / f"{v.name}-{key.hexdigest()[:16]}.engine"
        if path.exists():
            return path.read_bytes()
        # The exporter's builder (torch- and onnx-free, so it runs here): Q/DQ graphs strongly typed, the FP16
        # flag for FP16 graphs, one profile for this frame size.
        from edgeir.graphs.tensorrt import build_serialized

        blob = build_serialized(self.graph, profile, fp16=v.precision == "fp16",
                                strongly_typed=v.precision == "int8", workspace_mb=self.workspace_mb,
                                timing_cache=self.cache / "timing.cache", name=v.graph)
        write_atomic(path, blob)
        return blob

    def _device(self, name: str, nbytes: int) -> int:
        ptr, cap = self.buffers.get(name, (0, 0))
        if cap < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr), "freeing memory")
            ptr = _check(self.cudart.cudaMalloc(nbytes), f"allocating {nbytes:,} bytes")
            self.buffers[name] = (ptr, nbytes)
            self.uploaded.pop(name, None)
        return int(ptr)

    def run(self, feeds: dict[str, np.ndarray], static: frozenset[str] = frozenset()) -> np.ndarray:
        import tensorrt as trt

        kinds = self.cudart.cudaMemcpyKind
        h2d, d2h = kinds.cudaMemcpyHostToDevice, kinds.cudaMemcpyDeviceToHost
        host = {n: np.ascontiguousarray(a) for n, a in feeds.items()}  # alive until synced
        context = self._context({n: a.shape for n, a in host.items()})
        for name, arr in host.items():
            if not context.set_input_shape(name, arr.shape):
                raise BackendError(f"tensorrt: input {name} shape {arr.shape} is outside the engine's profile")
            ptr = self._device(name, arr.nbytes)
            if name not in static or self.uploaded.get(name) != id(feeds[name]):
                _check(self.cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self.stream), "upload")
                if name in static:
                    self.uploaded[name], self.held[name] = id(feeds[name]), feeds[name]
            context.set_tensor_address(name, ptr)
        dtype = trt.nptype(context.engine.get_tensor_dtype(self.output))
        out = np.empty(context.get_tensor_shape(self.output)[:], dtype)
        ptr = self._device(self.output, out.nbytes)
        context.set_tensor_address(self.output, ptr)
        if not context.execute_async_v3(self.stream):
            raise BackendError("tensorrt: inference failed")
        _check(self.cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream), "download")
        _check(self.cudart.cudaStreamSynchronize(self.stream), "synchronising")
        return out

    def __del__(self):
        for ptr, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(ptr)
