"""Inference backends behind one tiny interface: ``session.run(feeds, static) -> the graph's output``.

* ``ort-cpu``, ``ort-cuda``, ``ort-trt``: onnxruntime with its CPU, CUDA or TensorRT execution provider (the
  TensorRT EP caches its engines on disk, so only the first run on a device pays for the build);
* ``tensorrt``: native TensorRT engines through TensorRT's own Python API (``edgeir.runtime.trt``).

``static`` names the inputs that stay the same from frame to frame (the noise field and tile index maps): GPU
backends keep them on the device, uploaded once per array, and move only the frame's pixels each call (with
onnxruntime through IOBinding). ``auto`` takes the first of ``PREFERENCE`` that is installed and opens; it says
which, and why the better ones were skipped. onnxruntime silently falls back to CPU when a GPU provider fails to
load, so every session checks that the provider it asked for is the one actually running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeir.bundle.manifest import Variant
from edgeir.errors import BackendError
from edgeir.graphs.ort import open_session

PREFERENCE = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")
BACKENDS = ("auto", *PREFERENCE)
STATIC = frozenset({"noise", "rows", "cols", "row_weights", "col_weights", "pixel_rows", "pixel_cols"})  # fixed by a frame size and seed
RESIDENT = 32  # static arrays kept on the device (a frame in bands has a set per band)
_PROVIDERS = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
              "ort-trt": "TensorrtExecutionProvider"}


class Session(Protocol):
    def run(self, feeds: dict[str, np.ndarray], static: frozenset[str] = frozenset()) -> np.ndarray: ...


def cache_root() -> Path:
    """Where built TensorRT engines live: never inside the bundle, which stays read-only and checksummed."""
    base = os.environ.get("EDGEIR_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgeir"


class OrtSession:
    def __init__(self, backend: str, graph: bytes, variant: Variant, cache: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError(f"{backend} needs onnxruntime (pip install 'edgeir[runtime]', or "
                               "onnxruntime-gpu for the CUDA and TensorRT providers)") from None
        self.ort = ort
        provider = _PROVIDERS[backend]
        if provider not in ort.get_available_providers():
            raise BackendError(f"{backend}: this onnxruntime build has no {provider} (install onnxruntime-gpu)")
        providers: list = list(dict.fromkeys([provider, "CPUExecutionProvider"]))
        if backend == "ort-trt":
            cache.mkdir(parents=True, exist_ok=True)
            providers = [(provider, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                                     "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache),
                                     "trt_fp16_enable": variant.precision != "fp32",
                                     "trt_int8_enable": variant.precision == "int8"}),
                         "CUDAExecutionProvider", "CPUExecutionProvider"]
        self.session = open_session(graph, providers, threads)
        active = self.session.get_providers()[0]
        if active != provider:
            raise BackendError(f"{backend}: onnxruntime could not start {provider} (CUDA/TensorRT libraries "
                               f"missing?) and fell back to {active}")
        names = [i.name for i in self.session.get_inputs()]
        expected = [s.name for s in variant.inputs]
        if sorted(names) != sorted(expected):
            raise BackendError(f"{variant.graph}: graph inputs {names} do not match the manifest's {expected}")
        self.output = variant.outputs[0].name
        self.on_device = backend != "ort-cpu"
        self.resident: dict[tuple[str, int], tuple[np.ndarray, object]] = {}  # -> (host array, device copy)

    def run(self, feeds: dict[str, np.ndarray], static: frozenset[str] = frozenset()) -> np.ndarray:
        if not self.on_device:
            return self.session.run([self.output], feeds)[0]
        binding = self.session.io_binding()
        for name, array in feeds.items():
            if name in static:
                binding.bind_ortvalue_input(name, self._resident(name, array))
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(array))
        binding.bind_output(self.output, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _resident(self, name: str, array: np.ndarray):
        """The device copy of a static input, uploaded once per array. The host array is held with it, so its
        id cannot be reused by another while the copy is kept."""
        key = (name, id(array))
        if key not in self.resident:
            if len(self.resident) >= RESIDENT:
                self.resident.clear()
            self.resident[key] = (array, self.ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array),
                                                                              "cuda", 0))
        return self.resident[key][1]


def _open(name: str, graph: bytes, variant: Variant, cache: Path, threads: int | None, workspace_mb: int
          ) -> Session:
    if name == "tensorrt":
        from edgeir.runtime.trt import TrtSession

        return TrtSession(graph, variant, cache, workspace_mb)
    return OrtSession(name, graph, variant, cache, threads)


def open_backend(backend: str, graph: bytes, variant: Variant, cache: Path, threads: int | None = None,
                 workspace_mb: int = 1024) -> tuple[Session, str, list[str]]:
    """``(session, backend used, notes on the backends skipped)``; ``BackendError`` if none opens."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if variant.format == "tensorrt" and backend not in ("auto", "tensorrt"):
        raise BackendError(f"variant {variant.name} is a TensorRT engine: only the tensorrt backend runs it")
    candidates = [backend] if backend != "auto" else \
        ["tensorrt"] if variant.format == "tensorrt" else list(PREFERENCE)
    notes = []
    for name in candidates:
        try:
            return _open(name, graph, variant, cache, threads, workspace_mb), name, notes
        except BackendError as e:
            if backend != "auto":
                raise
            notes.append(str(e))
    raise BackendError(f"no backend can run variant {variant.name}: {'; '.join(notes)}")
