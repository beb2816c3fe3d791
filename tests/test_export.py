"""Exported graphs equal the torch code they come from: the whole-sampler graph of a few-step sr4x student equals
the torch sampler within 1e-3 and its UNet graph the torch UNet within 1e-4, at several sizes and batch 1 and 2
(dynamic shapes for real, from one export). The checks every export runs have teeth."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import tiny_config

from edgeir.errors import ConfigError
from edgeir.export import checks
from edgeir.export.graph import export_graph, parity_cases, real_conditions
from edgeir.export.sampler import SamplerGraph, export_sampler, sampler_feeds
from edgeir.export.unet import export_unet, unet_feeds
from edgeir.graphs.ort import open_session
from edgeir.graphs.shapes import DimRange, image_profile
from edgeir.load import load_restorer
from edgeir.models.config import SamplerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.tasks import InpaintTask

SIZES = [(1, 64, 64), (2, 32, 48), (1, 48, 96), (2, 80, 32)]  # (batch, height, width), multiples of 16


def student(steps: int) -> RestorerModel:
    """The shipped sr4x teacher with a few-step sampler config: structurally what a distilled student is."""
    r = load_restorer("sr4x")
    r.config = r.config.model_copy(update={"sampler": r.config.sampler.model_copy(
        update={"steps": steps, "timesteps": r.config.timesteps(steps)})})
    return r


@pytest.fixture(scope="module", params=[4, 1], ids=["4-step", "1-step"])
def sr4x_student(request) -> RestorerModel:
    return student(request.param)


def tiny(task=None, steps: int = 1) -> RestorerModel:
    """A tiny random restorer; one step keeps the unrolled sampler graph (and onnxslim's work) small."""
    torch.manual_seed(0)
    cfg = tiny_config(task)
    return RestorerModel(cfg.model_copy(update={"sampler": SamplerConfig(steps=steps)})).eval()


def ort_run(path, feeds) -> np.ndarray:
    return checks.run(open_session(path), feeds)


def inputs(restorer, b, h, w, rng, real=False):
    c = restorer.task.cond_channels
    return real_conditions(restorer.task, b, h, w) if real else rng.uniform(-1, 1, (b, c, h, w)).astype(np.float32)


def test_sampler_graph_equals_the_torch_sampler(sr4x_student, tmp_path):
    r = sr4x_student
    assert [s.t for s in r.steps()] == r.config.sampler.timesteps
    path = export_sampler(r, tmp_path / "sampler.onnx")
    rng = np.random.default_rng(0)
    worst = 0.0
    for (b, h, w), real in [(s, False) for s in SIZES] + [((2, 64, 64), True)]:
        cond = inputs(r, b, h, w, rng, real)
        noise = rng.standard_normal((b, 3, h, w)).astype(np.float32)
        out = ort_run(path, {"condition": cond, "noise": noise})
        with torch.no_grad():  # the torch sampler itself, not the graph's module
            ref = r.restore_tensor(torch.from_numpy(cond), torch.from_numpy(noise)).numpy()
        assert out.shape == (b, 3, h, w)
        assert 0 <= out.min() and out.max() <= 1
        worst = max(worst, float(np.abs(out - ref).max()))
    print(f"sampler graph ({len(r.steps())} steps) vs torch sampler: max abs diff {worst:.2e}")
    assert worst < 1e-3


def test_unet_graph_equals_the_torch_unet(tmp_path):
    r = student(4)
    path = export_unet(r, tmp_path / "unet.onnx")
    rng = np.random.default_rng(1)
    worst = 0.0
    for (b, h, w), real in [(s, False) for s in SIZES] + [((1, 64, 64), True)]:
        feeds = unet_feeds(r, inputs(r, b, h, w, rng, real), rng)
        with torch.no_grad():
            ref = r.denoiser(*[torch.from_numpy(feeds[n]) for n in ("x_t", "t", "condition")]).numpy()
        worst = max(worst, float(np.abs(ort_run(path, feeds) - ref).max()))
    print(f"UNet graph vs torch UNet: max abs diff {worst:.2e}")
    assert worst < 1e-4


def test_graph_io_names_and_dynamic_axes(tmp_path):
    r = tiny(steps=2)
    model = onnx.load(str(export_sampler(r, tmp_path / "sampler.onnx")))
    for value in [*model.graph.input, *model.graph.output]:
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims[0] == "batch" and dims[2:] == ["height", "width"], dims
    assert [i.name for i in model.graph.input] == ["condition", "noise"]
    assert [o.name for o in model.graph.output] == ["image"]
    t_input = onnx.load(str(export_unet(r, tmp_path / "unet.onnx"))).graph.input[1]
    assert t_input.name == "t" and t_input.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_sampler_module_is_the_torch_sampler():
    """Same step maths, same loop: bit-identical to RestorerModel.restore_tensor for a deterministic sampler."""
    torch.manual_seed(0)
    r = RestorerModel(tiny_config()).eval()
    cond, noise = torch.rand(2, 3, 8, 12) * 2 - 1, torch.randn(2, 3, 8, 12)
    with torch.no_grad():
        assert torch.equal(SamplerGraph(r)(cond, noise), r.restore_tensor(cond, noise))


def test_stochastic_sampler_graph_takes_its_noise_as_input(tmp_path):
    """eta > 0: fresh noise per step comes from extra noise channels (the manifest's K), so the graph stays
    deterministic given its inputs and equals the torch module fed the same noise."""
    torch.manual_seed(0)
    cfg = tiny_config()
    r = RestorerModel(cfg.model_copy(update={"sampler": SamplerConfig(steps=3, eta=1.0)})).eval()
    path = export_sampler(r, tmp_path / "sampler.onnx")
    rng = np.random.default_rng(0)
    feeds = sampler_feeds(r, rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32), rng)
    assert feeds["noise"].shape[1] == 3 * 3  # initial noise + the 2 stochastic steps (the last has sigma 0)
    sess = open_session(path)
    a, b = checks.run(sess, feeds), checks.run(sess, feeds)
    assert np.array_equal(a, b)
    with torch.no_grad():
        ref = SamplerGraph(r)(*[torch.from_numpy(feeds[n]) for n in ("condition", "noise")]).numpy()
    assert np.abs(a - ref).max() < 1e-4
    feeds["noise"][:, 3:] = rng.standard_normal(feeds["noise"][:, 3:].shape)
    assert np.abs(checks.run(sess, feeds) - a).max() > 1e-3  # the step noise is really used


@pytest.mark.parametrize("task", [None, InpaintTask()], ids=["sr", "inpaint"])
def test_export_graph_checks_slims_and_is_tensorrt_ready(task, tmp_path):
    r = tiny(task)
    profile = image_profile(DimRange(min=1, opt=1, max=4), DimRange(min=8, opt=16, max=32))
    for kind in ("sampler", "unet"):
        result = export_graph(r, kind, tmp_path, "fp32", profile=profile)
        assert result.path == tmp_path / f"{kind}.fp32.onnx" and result.path.exists()
        assert set(result.diffs) == {"random", "real"}
        assert max(result.diffs.values()) <= checks.TOLERANCE[(kind, "fp32")]
        assert result.slimmed and result.tensorrt_problems == []
        assert result.nodes == len(onnx.load(str(result.path)).graph.node)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sampler.fp32.onnx", "unet.fp32.onnx"]  # no leftovers


@pytest.mark.parametrize("keep_io_fp32", [True, False])
def test_fp16_export_has_its_own_gate_and_io_types(keep_io_fp32, tmp_path):
    r = tiny()
    result = export_graph(r, "sampler", tmp_path, "fp16", slim=False, keep_io_fp32=keep_io_fp32)
    assert {"fp16 random", "fp16 real"} <= set(result.diffs)
    assert max(result.diffs.values()) <= checks.TOLERANCE[("sampler", "fp16")]
    model = onnx.load(str(result.path))
    io_type = onnx.TensorProto.FLOAT if keep_io_fp32 else onnx.TensorProto.FLOAT16
    assert {v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]} == {io_type}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    # the graph still runs from FP32 arrays (run() casts to what the graph declares)
    rng = np.random.default_rng(0)
    out = checks.run(open_session(result.path), sampler_feeds(r, inputs(r, 1, 16, 16, rng), rng))
    assert out.shape == (1, 3, 16, 16) and np.isfinite(out).all()


def test_parity_gate_catches_a_wrong_graph(tmp_path):
    r = tiny()
    path = export_unet(r, tmp_path / "unet.onnx")
    cases = parity_cases(r, "unet", r.steps())
    assert checks.max_abs_diff(path, cases["random"]) < checks.TOLERANCE[("unet", "fp32")]
    model = onnx.load(str(path))
    weight = next(i for i in model.graph.initializer if i.name.endswith("conv_out.weight"))
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight) * 1.01, weight.name))
    onnx.save(model, str(path))
    diff = checks.max_abs_diff(path, cases["random"])
    with pytest.raises(checks.ExportCheckError, match="onnxruntime differs from torch by .* on random inputs"):
        checks.gate("unet graph", "random", diff, checks.TOLERANCE[("unet", "fp32")])


def test_checker_rejects_an_invalid_graph(tmp_path):
    path = export_unet(tiny(), tmp_path / "unet.onnx")
    model = onnx.load(str(path))
    model.graph.node[-1].input[0] = "no_such_tensor"
    onnx.save(model, str(path))
    with pytest.raises(checks.ExportCheckError, match="unet.onnx: invalid ONNX"):
        checks.validate(path)


def test_int8_needs_a_quantized_model(tmp_path):
    with pytest.raises(ConfigError, match="needs a quantized model"):
        export_graph(tiny(), "unet", tmp_path, "int8")


def test_onnxruntime_session_runs_batch_one_from_a_batch_two_export(tmp_path):
    """The dynamo exporter would fix batch from a batch-1 example; ours keeps it dynamic both ways."""
    r = tiny(steps=2)
    sess = ort.InferenceSession(str(export_sampler(r, tmp_path / "s.onnx", size=(8, 8))))
    for b, h, w in [(1, 8, 8), (3, 12, 20)]:
        out = sess.run(None, {"condition": np.zeros((b, 3, h, w), np.float32),
                              "noise": np.zeros((b, 3, h, w), np.float32)})[0]
        assert out.shape == (b, 3, h, w)
