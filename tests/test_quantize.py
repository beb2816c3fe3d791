"""The quantize stage on a tiny random-weight restorer: calibration from the student's own sampler, the Q/DQ
ONNX graph it exports, onnxruntime on that graph, and the quality gate."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edgeir.compress import layers, quantize, quantize_gate
from edgeir.compress.calibration import calibration_set
from edgeir.compress.nncf_model import export_int8, network_graph, quantize_network, quantizers, weight_of
from edgeir.compress.stage import StageContext
from edgeir.errors import ConfigError, ImageError, QualityGateError
from edgeir.evaluate import degrade_set
from edgeir.graphs.cpu_int8 import ENCODINGS, cpu_encoding, reencode
from edgeir.graphs.ort import open_session
from edgeir.graphs.readiness import check_tensorrt
from edgeir.graphs.shapes import DimRange, image_profile
from edgeir.models.config import EdgeUNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.onnx_net import OnnxNet
from edgeir.models.restorer import RestorerModel
from edgeir.models.unet import UNetConfig
from edgeir.tasks import SRTask

TIMESTEPS = [900, 420, 60]  # a distilled student's own (uneven) schedule


def tiny_student() -> RestorerModel:
    torch.manual_seed(0)
    net = UNetConfig(channels=(8, 16), norm_groups=4, attention_heads=2, time_embed_dim=16, unshuffle=2)
    config = RestorerConfig(network=EdgeUNetSpec(config=net), task=SRTask(scale=2), residual_scale=2.0,
                            sampler=SamplerConfig(steps=3, timesteps=TIMESTEPS, temperature=0.7))
    return RestorerModel(config).eval()


def images(n: int, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour images (low-frequency noise upsampled), float32 HxWx3 in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.uniform(0, 1, (size // 8, size // 8, 3)).astype(np.float32)
        out.append(np.kron(low, np.ones((8, 8, 1), np.float32)))
    return out


@pytest.fixture(scope="module")
def student() -> RestorerModel:
    return tiny_student()


@pytest.fixture(scope="module")
def samples(student):
    return calibration_set(student, images(4), size=12, crop=16, seed=0)


@pytest.fixture(scope="module")
def quantized(student, samples):
    graph = network_graph(student.denoiser.net, samples[0])
    keep = sorted({n for nodes in layers.resolve(graph, layers.DEFAULT_KEEP_FP).values() for n in nodes})
    return quantize_network(student.denoiser.net, samples, graph, keep, layers.timestep_only(graph),
                            "performance", len(samples), "mean_minmax"), graph


@pytest.fixture(scope="module")
def int8_path(student, quantized, tmp_path_factory):
    return export_int8(quantized[0], student, tmp_path_factory.mktemp("q") / "tiny.int8.onnx")


def test_calibration_visits_exactly_the_students_timesteps(student, samples):
    counts = Counter(int(t) for _, t, _ in samples)
    assert set(counts) == set(TIMESTEPS)
    assert len(set(counts.values())) == 1 and sum(counts.values()) == 12  # 4 images x 3 steps, balanced
    x_t, t, cond = samples[0]
    assert x_t.shape == (1, 3, 16, 16) and cond.shape == (1, 3, 16, 16) and t.shape == (1,)
    # The first sampler step sees the initial noise scaled by the sampler's temperature, the later ones the
    # sampler's own updates: x_t differs between an image's steps.
    assert 0.5 < float(samples[0][0].std()) < 0.9
    assert not torch.allclose(samples[0][0], samples[1][0])


def test_calibration_crops_fit_small_images_and_refuse_tiny_ones(student):
    small = calibration_set(student, images(2, size=24), size=3, crop=128)
    assert small[0][0].shape == (1, 3, 24, 24)
    with pytest.raises(ImageError, match="at least 4x4"):
        calibration_set(student, [np.zeros((3, 3, 3), np.float32)], size=3, crop=16)


def test_export_has_only_standard_qdq_and_int8_weights(int8_path):
    model = onnx.load(str(int8_path))
    ops = Counter((n.domain, n.op_type) for n in model.graph.node)
    assert all(domain in ("", "ai.onnx") for domain, _ in ops)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert ops[("", "QuantizeLinear")] > 0 and ops[("", "DequantizeLinear")] > ops[("", "QuantizeLinear")]
    assert check_tensorrt(model, image_profile(DimRange(min=1, opt=1, max=4), DimRange(min=16, opt=32, max=64)),
                          multiple_of=4) == []
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weight_dq and all(inits[n.input[0]].dtype == np.int8 for n in weight_dq)
    # Every convolution weight except the kept first and last is stored as INT8 behind a DequantizeLinear.
    float_conv_weights = [n.input[1] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits]
    assert sorted(float_conv_weights) == ["net.conv_in.weight", "net.conv_out.weight"]


def exact_encodings() -> list[str]:
    """The encodings onnxruntime computes exactly on this CPU: u8u8 everywhere, u8s8 where it has VNNI (or is not
    x86). An AVX2 machine and an AVX-512 VNNI one run the same assertions on the encoding each would choose."""
    return sorted({"u8u8", cpu_encoding()})


@pytest.mark.parametrize("encoding", exact_encodings())
def test_onnxruntime_runs_dynamic_sizes_and_matches_nncf(student, quantized, int8_path, encoding):
    fast = open_session(int8_path, int8_encoding=encoding)
    exact = open_session(int8_path, optimize=False)
    for h, w in ((16, 24), (32, 12)):
        x = torch.randn(2, 3, h, w)
        t = torch.tensor([900.0, 60.0])
        cond = torch.randn(2, 3, h, w).clamp(-1, 1)
        feed = {"x_t": x.numpy(), "t": t.numpy(), "condition": cond.numpy()}
        (out,), (ref,) = fast.run(None, feed), exact.run(None, feed)
        assert out.shape == (2, 3, h, w) and np.isfinite(out).all()
        with torch.no_grad():
            fake_quant = quantized[0](x, t, cond).numpy()
            fp32 = student.denoiser(x, t, cond).numpy()
        # The graph computes what NNCF simulated, up to rounding ties: NNCF rounds (x - low) * s - zp, ONNX
        # rounds x / scale, so a value within float error of a tie may land one step apart (and a random
        # tiny net spreads that step). A wrong scale, axis or zero point would be as large as INT8's error, and
        # so is a kernel that saturates.
        int8_error = np.abs(fake_quant - fp32).mean()
        assert np.abs(ref - fake_quant).mean() < 0.5 * int8_error
        assert np.abs(out - ref).mean() < 0.5 * int8_error


def test_the_cpu_encoding_is_the_exact_fast_one():
    """u8s8 is chosen exactly where onnxruntime's kernels compute it without saturating: on x86 that is where the
    CPU has VNNI, which numpy's own CPU detection reports for AVX-512."""
    features = np.__dict__.get("_core", np.core)._multiarray_umath.__cpu_features__  # type: ignore[attr-defined]
    if features.get("AVX512VNNI"):
        assert cpu_encoding() == "u8s8"
    elif features.get("AVX2") and not features.get("AVX512F"):
        # An AVX2 CPU may still have the VEX form of VNNI, which numpy does not report: both answers are exact.
        assert cpu_encoding() in ENCODINGS
    assert cpu_encoding() in ENCODINGS


def test_int8_weights_are_nncfs_quantized_weights(quantized, int8_path):
    net, graph = quantized
    weight_quantizer = {weight_of(graph, hook): q for hook, q in quantizers(net) if weight_of(graph, hook)}
    model = onnx.load(str(int8_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
              if n.op_type == "Constant"}
    checked = 0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0].endswith(".weight_quantized"):
            name = node.input[0].removeprefix("net.").removesuffix("_quantized")
            scale = {**inits, **consts}[node.input[1]].reshape(-1, *[1] * (inits[node.input[0]].ndim - 1))
            with torch.no_grad():
                expected = weight_quantizer[name](net.get_parameter(name)).numpy()
            np.testing.assert_allclose(inits[node.input[0]] * scale, expected, rtol=1e-5, atol=1e-7)
            checked += 1
    assert checked == len(weight_quantizer) > 0


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_reencodings_are_exact(int8_path, encoding):
    """As ONNX arithmetic (Q/DQ in float, no kernels involved), every encoding is the signed graph itself."""
    model = onnx.load(str(int8_path))
    feed = {"x_t": np.random.default_rng(1).standard_normal((1, 3, 16, 16), dtype=np.float32),
            "t": np.array([420.0], np.float32),
            "condition": np.random.default_rng(2).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)}
    run = lambda m: open_session(m.SerializeToString(), optimize=False).run(None, feed)[0]
    u8 = reencode(model, encoding)
    types = {numpy_helper.to_array(i).dtype for i in u8.graph.initializer}
    assert np.dtype(np.uint8) in types and (np.dtype(np.int8) in types) == (encoding == "u8s8")
    np.testing.assert_allclose(run(u8), run(model), atol=1e-6)


def test_restorer_on_the_int8_graph_restores_like_any_other(student, int8_path):
    model = RestorerModel(student.config, net=OnnxNet(int8_path)).eval()
    cases = degrade_set(student.task, [("a", images(1, 40)[0])], size=None)
    out = model.restore(cases[0][2], seed=0)
    assert out.shape == cases[0][1].shape and np.isfinite(out).all()


def test_selectors_find_the_fragile_places(quantized):
    graph = quantized[1]
    named = {p: {layers.layer_name(graph, graph.get_node_by_name(n)) for n in nodes}
             for p, nodes in layers.resolve(graph, layers.DEFAULT_KEEP_FP).items()}
    assert {"conv_in", "pixel_unshuffle.0"} <= named["@first_conv"]
    assert {"conv_out", "pixel_shuffle.0"} <= named["@last_conv"]
    assert {"mid_attn.softmax.0", "mid_attn.matmul.0", "mid_attn.matmul.1"} == named["@attention_softmax"]
    assert {"sin.0", "cos.0"} <= named["@timestep_embedding"]
    assert "time_mlp.0" not in named["@timestep_embedding"]  # weight-only INT8, activations kept FP


def context(student, tmp_path) -> StageContext:
    cases = degrade_set(student.task, [(f"im{i}", im) for i, im in enumerate(images(2, 32, seed=5))], None)
    return StageContext(teacher=student, student=student, train_images=images(4), eval_cases=cases,
                        work_dir=tmp_path / "quantize")


@pytest.mark.slow
def test_stage_returns_an_evaluable_int8_restorer(student, tmp_path):
    settings = quantize.QuantizeSettings(subset_size=6, crop=16, max_psnr_drop=100, min_detail_kept=0)
    out = quantize.run(settings, context(student, tmp_path))
    assert (tmp_path / "quantize" / out.artifacts["int8_onnx"]).exists()
    assert out.info["calibration_timesteps"] == TIMESTEPS and out.info["gate"]["passed"]
    cases = context(student, tmp_path).eval_cases
    assert np.isfinite(out.model.restore(cases[0][2], seed=0)).all()


def test_unknown_keep_fp_pattern_is_a_config_error(student, tmp_path):
    settings = quantize.QuantizeSettings(subset_size=3, crop=16, keep_fp=["@first_conv", "no_such_layer*"])
    with pytest.raises(ConfigError, match="no_such_layer"):
        quantize.run(settings, context(student, tmp_path))


def broken_calibration(student, images, size, crop, seed=0, parts=("unet",)):
    """Calibration whose x_t carries NaN: every range it produces is NaN."""
    good = calibration_set(student, images, size, crop, seed)
    return {"unet": [(x.masked_fill(torch.rand_like(x) < 0.1, float("nan")), t, c) for x, t, c in good]}


def test_nan_gate_trips_on_broken_calibration(student, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "calibration_sets", broken_calibration)
    settings = quantize.QuantizeSettings(subset_size=6, crop=16, max_psnr_drop=100, min_detail_kept=0)
    with pytest.raises(QualityGateError, match="NaN/Inf") as err:
        quantize.run(settings, context(student, tmp_path))
    assert "suggested keep_fp" in str(err.value) and "\n" not in str(err.value)
    import json

    report = json.loads((tmp_path / "quantize" / quantize.REPORT).read_text())
    assert report["gate"]["nonfinite"] > 0 and not report["gate"]["passed"]
    assert report["sensitivity"][0][1] == float("-inf")  # the NaN ranges are found first
    assert report["suggested_keep_fp"][: len(layers.DEFAULT_KEEP_FP)] == layers.DEFAULT_KEEP_FP


def test_gate_counts_nonfinite_predictions(student):
    class Broken(torch.nn.Linear):
        def forward(self, x_t, t, cond):
            return torch.full_like(x_t, float("nan"))

    broken = RestorerModel(student.config, net=Broken(1, 1))
    cases = degrade_set(student.task, [("a", images(1, 16)[0])], None)
    result = quantize_gate.check(student, broken, cases, 0, max_psnr_drop=100, min_detail_kept=0)
    assert result.nonfinite == 3 * 16 * 16 * 3 and not result.passed and "NaN/Inf" in result.summary()


def test_the_cpu_re_encoding_without_onnx_is_one_clear_error(int8_path, monkeypatch):
    import builtins
    import sys

    from edgeir.errors import BackendError

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "edgeir.graphs.cpu_int8")
    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(BackendError, match="pip install onnx"):
        open_session(int8_path.read_bytes())
