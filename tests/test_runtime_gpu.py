"""The GPU paths of the runtime, where no GPU is: TensorRT and onnxruntime's CUDA provider replaced by fakes that
keep the books (engine builds, device allocations, uploads) and, for onnxruntime, compute the real graph on the
CPU. What is checked is edgeir's side: an engine per frame size, built once and cached; device buffers allocated
once; the noise field and index maps uploaded once, only the frame's pixels every call."""

from __future__ import annotations

import ctypes
import sys
import types
from typing import ClassVar

import numpy as np
import pytest
from test_runtime_support import make_bundle, tiny_restorer

from edgeir.bundle import load_bundle
from edgeir.graphs import layout
from edgeir.graphs import tensorrt as trt_builder
from edgeir.graphs.ort import open_session
from edgeir.runtime import Restorer, backends


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tiny_restorer(), tmp_path_factory.mktemp("gpu") / "sr")


class FakeCudart:
    """cuda-python's runtime API over host memory, counting what edgeir asks of it."""

    class cudaMemcpyKind:
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = "h2d", "d2h"

    def __init__(self):
        self.memory: dict[int, ctypes.Array] = {}
        self.mallocs, self.copies = [], []

    def cudaGetDeviceProperties(self, device):
        return 0, types.SimpleNamespace(name=b"Fake GPU")

    def cudaStreamCreate(self):
        return 0, 1

    def cudaMalloc(self, nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        self.memory[ctypes.addressof(buf)] = buf
        self.mallocs.append(nbytes)
        return 0, ctypes.addressof(buf)

    def cudaFree(self, ptr):
        self.memory.pop(ptr, None)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self.copies.append((kind, nbytes))
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)


def fake_tensorrt(cudart: FakeCudart) -> types.ModuleType:
    """Just enough of TensorRT's runtime API: an engine 'computes' its output as the image's mean, so the
    pixels that arrived on the device are the ones that come back."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"

    class Logger:
        ERROR = WARNING = 0

        def __init__(self, level):
            pass

    class Context:
        def __init__(self, engine):
            self.engine, self.shapes, self.addresses = engine, {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)
            return True

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def get_tensor_shape(self, name):
            _, _, h, w = self.shapes["noise"]
            return (1, h, w, 3)

        def execute_async_v3(self, stream):
            image = np.ctypeslib.as_array((ctypes.c_uint8 * int(np.prod(self.shapes["image"]))).from_address(
                self.addresses["image"]))
            out = self.get_tensor_shape("restored")
            ctypes.memset(self.addresses["restored"], int(image.mean()), int(np.prod(out)))
            return True

    class Engine:
        def create_execution_context(self):
            return Context(self)

        def get_tensor_dtype(self, name):
            return np.uint8

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine() if blob.startswith(b"engine") else None

    trt.Logger, trt.Runtime, trt.Builder = Logger, Runtime, object
    trt.nptype = lambda dtype: dtype
    return trt


def install_fakes(monkeypatch, cudart: FakeCudart) -> None:
    """TensorRT and cuda-python as the runtime imports them, both backed by ``cudart``."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(cudart))
    cuda = types.ModuleType("cuda")
    cuda.bindings = types.SimpleNamespace(runtime=cudart)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", cuda.bindings)


def test_tensorrt_builds_an_engine_per_frame_size_and_uploads_static_inputs_once(bundle, tmp_path, monkeypatch):
    cudart = FakeCudart()
    install_fakes(monkeypatch, cudart)
    builds = []

    def fake_build(graph, shapes, fp16, strongly_typed, workspace_mb, timing_cache, name):
        builds.append({"shapes": shapes, "workspace_mb": workspace_mb, "timing_cache": timing_cache})
        return b"engine for " + repr(sorted(shapes)).encode()

    monkeypatch.setattr(trt_builder, "build_serialized", fake_build)
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))
    runtime = Restorer.load(bundle, backend="tensorrt", workspace_mb=512)
    assert runtime.backend == "tensorrt"
    frames = [np.full((16, 24, 3), v, np.uint8) for v in (10, 20, 30)]
    outs = list(runtime.stream(frames))
    assert [int(o[0, 0, 0]) for o in outs] == [10, 20, 30] and outs[0].shape == (32, 48, 3)
    assert len(builds) == 1 and builds[0]["workspace_mb"] == 512  # the device profile's workspace reaches it
    shapes = builds[0]["shapes"]
    assert shapes["image"] == ((1, 16, 24, 3),) * 3 and shapes["noise"][0] == (1, 3, 32, 48)
    assert len(cudart.mallocs) == 7  # image, noise, four tiling maps, restored: once
    uploads = [n for kind, n in cudart.copies if kind == "h2d"]
    assert uploads.count(16 * 24 * 3) == 3  # the pixels every frame
    assert len(uploads) == 3 + 5  # noise and the tiling maps once
    runtime.restore(np.full((20, 24, 3), 5, np.uint8))  # another size: another engine, larger buffers only
    assert len(builds) == 2
    again = Restorer.load(bundle, backend="tensorrt", workspace_mb=512)  # a new process: the engine is cached
    again.restore(frames[0])
    assert len(builds) == 2


def test_tensorrt_builds_one_engine_for_a_frame_size_whatever_the_holes(tmp_path, monkeypatch):
    """Inpainting's hole count changes from frame to frame at one frame size: the engine's profile ranges over
    it (one hole to every pixel) instead of building an engine per count."""
    from edgeir.tasks import InpaintTask

    cudart = FakeCudart()
    install_fakes(monkeypatch, cudart)
    builds = []

    def fake_build(graph, shapes, fp16, strongly_typed, workspace_mb, timing_cache, name):
        builds.append(shapes)
        return b"engine for " + repr(sorted(shapes.items())).encode()

    monkeypatch.setattr(trt_builder, "build_serialized", fake_build)
    monkeypatch.setenv("EDGEIR_CACHE", str(tmp_path / "cache"))
    inpaint = make_bundle(tiny_restorer(InpaintTask(fill="biharmonic")), tmp_path / "inp")
    runtime = Restorer.load(inpaint, backend="tensorrt")
    frames = []
    for holes in (3, 40, 0):
        rgba = np.full((16, 24, 4), 255, np.uint8)
        rgba.reshape(-1, 4)[:holes, 3] = 0
        frames.append(rgba)
    outs = list(runtime.stream(frames))
    assert len(outs) == 3 and outs[0].shape == (16, 24, 3)
    (profile,) = builds
    assert profile["holes"] == ((1,), (16 * 24 // 16,), (16 * 24,))
    assert profile["fill"] == ((1, 3), (16 * 24 // 16, 3), (16 * 24, 3))
    assert profile["image"] == ((1, 16, 24, 3),) * 3


class FakeOrtValue:
    uploads: ClassVar[list] = []

    def __init__(self, array):
        self.array = array

    @classmethod
    def ortvalue_from_numpy(cls, array, device, index):
        assert device == "cuda"
        cls.uploads.append(array.shape)
        return cls(array.copy())


class FakeCudaSession:
    """onnxruntime's CUDA provider with IOBinding, computing the graph on the CPU provider."""

    def __init__(self, graph, providers, threads=None):
        self.cpu = open_session(graph, threads=threads)
        self.bindings = []

    def get_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def get_inputs(self):
        return self.cpu.get_inputs()

    def run(self, *args):
        raise AssertionError("a CUDA session is run through IOBinding")

    def io_binding(self):
        session = self

        class Binding:
            def __init__(self):
                self.inputs, self.kinds = {}, {}
                session.bindings.append(self)

            def bind_ortvalue_input(self, name, value):
                self.inputs[name], self.kinds[name] = value.array, "device"

            def bind_cpu_input(self, name, array):
                self.inputs[name], self.kinds[name] = array, "host"

            def bind_output(self, name, device):
                self.output = name

            def copy_outputs_to_cpu(self):
                return self.result

        return Binding()

    def run_with_iobinding(self, binding):
        binding.result = self.cpu.run([binding.output], binding.inputs)


def test_onnxruntime_cuda_keeps_static_inputs_on_the_device(bundle, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    frames = [(np.random.default_rng(i).random((16, 24, 3)) * 255).astype(np.uint8) for i in range(4)]
    cpu = Restorer.load(bundle, backend="ort-cpu")
    expected = [cpu.restore(f, seed=2) for f in frames]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "OrtValue", FakeOrtValue)
    monkeypatch.setattr(backends, "open_session", FakeCudaSession)
    FakeOrtValue.uploads = []
    runtime = Restorer.load(bundle, backend="ort-cuda")
    outs = list(runtime.stream(frames, seed=2))
    assert all(np.array_equal(o, e) for o, e in zip(outs, expected))
    maps = layout.maps(32, 48, 32, 8, 4)
    assert sorted(FakeOrtValue.uploads) == sorted([(1, 3, 32, 48), *(m.shape for m in maps.values())])  # once
    static = {"noise": "device", **{k: "device" for k in maps}}
    session = runtime.session.session
    assert [b.kinds for b in session.bindings] == [{"image": "host", **static}] * 4
    assert load_bundle(bundle).manifest.variants[0].tile == 32
