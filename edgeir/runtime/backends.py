"""Inference backends behind one tiny interface: ``session.run(feeds) -> first output``.

* ``ort-cpu``, ``ort-cuda``, ``ort-trt``: onnxruntime with its CPU, CUDA or TensorRT execution provider (the
  TensorRT EP caches its engines on disk, so only the first run on a device pays for the build);
* ``tensorrt``: native TensorRT engines through TensorRT's own Python API (``edgeir.runtime.trt``).

``auto`` takes the first of ``PREFERENCE`` that is installed and opens; it says which, and why the better ones
were skipped. onnxruntime silently falls back to CPU when a GPU provider fails to load, so every session checks
that the provider it asked for is the one actually running.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeir.bundle.manifest import Variant
from edgeir.errors import BackendError
from edgeir.graphs.ort import open_session

PREFERENCE = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")
BACKENDS = ("auto", *PREFERENCE)
_PROVIDERS = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
              "ort-trt": "TensorrtExecutionProvider"}


class Session(Protocol):
    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class Shapes:
    """The largest inputs a session will see; TensorRT builds its optimisation profile for them."""

    batch: int
    height: int
    width: int
    multiple_of: int


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

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output], feeds)[0]


def _open(name: str, graph: bytes, variant: Variant, cache: Path, shapes: Shapes, threads: int | None
          ) -> Session:
    if name == "tensorrt":
        from edgeir.runtime.trt import TrtSession

        return TrtSession(graph, variant, cache, shapes)
    return OrtSession(name, graph, variant, cache, threads)


def open_backend(backend: str, graph: bytes, variant: Variant, cache: Path, shapes: Shapes,
                 threads: int | None = None) -> tuple[Session, str, list[str]]:
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
            return _open(name, graph, variant, cache, shapes, threads), name, notes
        except BackendError as e:
            if backend != "auto":
                raise
            notes.append(str(e))
    raise BackendError(f"no backend can run variant {variant.name}: {'; '.join(notes)}")
