"""The TensorRT-readiness check runs anywhere and catches what TensorRT's parser would refuse: unsupported and
custom-domain operators, Q/DQ forms TensorRT does not run as INT8, and dynamic shapes no profile bounds."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
import torch
from conftest import tiny_config
from onnx import TensorProto, helper, numpy_helper

from edgeir.errors import ConfigError
from edgeir.export.unet import export_unet
from edgeir.graphs.readiness import check_tensorrt, random_ops
from edgeir.graphs.shapes import DimRange, image_profile, input_shapes
from edgeir.models.restorer import RestorerModel

PROFILE = image_profile(DimRange(min=1, opt=1, max=4), DimRange(min=8, opt=16, max=32))


@pytest.fixture(scope="module")
def unet_path(tmp_path_factory):
    torch.manual_seed(0)
    return export_unet(RestorerModel(tiny_config()).eval(), tmp_path_factory.mktemp("g") / "unet.onnx")


@pytest.fixture
def unet(unet_path) -> onnx.ModelProto:
    return onnx.load(str(unet_path))


def test_exported_unet_is_ready_with_a_profile(unet):
    assert check_tensorrt(unet, PROFILE, multiple_of=4) == []
    shapes = input_shapes(unet, PROFILE)
    assert shapes["x_t"] == ((1, 3, 8, 8), (1, 3, 16, 16), (4, 3, 32, 32))
    assert shapes["t"] == ((1,), (1,), (4,))


def test_unbounded_dynamic_shapes_are_caught(unet):
    problems = check_tensorrt(unet)
    assert "input x_t axis 0 (batch) is dynamic with no optimisation profile range" in problems
    assert len(problems) == 7  # batch/height/width of x_t and condition, batch of t
    partial = {"batch": PROFILE["batch"], "height": PROFILE["height"]}
    missing = "axis 3 (width) is dynamic with no optimisation profile range"
    assert check_tensorrt(unet, partial) == [f"input x_t {missing}", f"input condition {missing}"]
    with pytest.raises(ConfigError, match="width"):
        input_shapes(unet, partial)
    unet.graph.input[0].type.tensor_type.shape.dim[2].dim_param = ""
    assert any("unnamed" in p for p in check_tensorrt(unet, PROFILE))


def test_profile_sizes_must_fit_the_network(unet):
    bad = image_profile(DimRange(min=1, opt=1, max=4), DimRange(min=8, opt=18, max=32))
    assert check_tensorrt(unet, bad, multiple_of=4) == [
        "profile height 8:18:32 has sizes that are not multiples of 4",
        "profile width 8:18:32 has sizes that are not multiples of 4"]


def test_planted_unsupported_operator_is_caught(unet):
    out = unet.graph.output[0].name
    unet.graph.node.append(helper.make_node("Unique", [out], ["unique_values"], name="planted_unique"))
    unet.graph.node.append(helper.make_node("FusedConv", [out], ["fused"], name="planted_fused",
                                            domain="com.microsoft"))
    problems = check_tensorrt(unet, PROFILE)
    assert problems == [
        "Unique planted_unique: operator Unique is not supported by TensorRT's ONNX parser",
        "com.microsoft.FusedConv planted_fused: custom-domain operator (TensorRT reads standard ONNX)"]


def test_restricted_operator_forms_are_caught(unet):
    resize = next(n for n in unet.graph.node if n.op_type == "Resize")
    kept = [a for a in resize.attribute if a.name != "coordinate_transformation_mode"]
    del resize.attribute[:]
    resize.attribute.extend([*kept, helper.make_attribute("coordinate_transformation_mode", "half_pixel_symmetric")])
    unsqueeze = next(n for n in unet.graph.node if n.op_type == "Unsqueeze")
    unsqueeze.input[1] = unet.graph.input[1].name  # axes from a graph input: not a build-time constant
    unet.opset_import[0].version = 21
    problems = check_tensorrt(unet, PROFILE)
    assert problems[0] == "opset 21 is outside the 9..20 that TensorRT 10's parser supports"
    assert any(p.startswith("Resize") and "half_pixel_symmetric" in p for p in problems)
    assert any(p.startswith("Unsqueeze") and "axes are computed at run time" in p for p in problems)


def qdq_graph(zero_point: np.ndarray | None, scale: np.ndarray, axis: int | None = None,
              weight: bool = True) -> onnx.ModelProto:
    """x -> [Q] -> DQ -> Conv: a weight (or activation) quantized in the given form."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8 if weight else np.float32), "w")
    inits = [w, numpy_helper.from_array(scale.astype(np.float32), "scale")]
    qargs = ["w" if weight else "x", "scale"]
    if zero_point is not None:
        inits.append(numpy_helper.from_array(zero_point, "zp"))
        qargs.append("zp")
    kw = {} if axis is None else {"axis": axis}
    nodes = []
    if not weight:
        nodes.append(helper.make_node("QuantizeLinear", qargs, ["xq"], name="q", **kw))
        qargs = ["xq", *qargs[1:]]
    nodes.append(helper.make_node("DequantizeLinear", qargs, ["wd"], name="dq", **kw))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8] if weight else [1, 4, 3, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    conv_in = ["x", "wd"] if weight else ["wd", "x"]
    nodes.append(helper.make_node("Conv", conv_in, ["y"], name="conv"))
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])


def test_qdq_forms_tensorrt_accepts():
    per_channel = np.array([0.1, 0.2, 0.3, 0.4])
    assert check_tensorrt(qdq_graph(np.zeros(4, np.int8), per_channel, axis=0)) == []
    assert check_tensorrt(qdq_graph(np.int8(0), np.array(0.1), weight=False)) == []


@pytest.mark.parametrize("zero_point, scale, axis, weight, problem", [
    (np.zeros(4, np.int8), np.array([0.1, 0.2, 0.3, 0.4]), 1, True, "per-channel weights along axis 1"),
    (np.zeros(4, np.int8), np.array([0.1, 0.2, 0.3, 0.4]), None, True, "per-channel weights along axis 1"),
    (np.uint8(128), np.array(0.1), None, False, "quantizes to uint8"),
    (np.int8(3), np.array(0.1), None, False, "asymmetric (zero point != 0)"),
    (None, np.array(0.1), None, False, "no constant zero point"),
    (np.int8(0), np.array(-0.1), None, False, "non-positive"),
    (np.zeros(4, np.int8), np.array([0.1, 0.2, 0.3, 0.4]), 1, False, "per-channel quantization of an activation"),
], ids=["axis-1", "default-axis", "uint8", "asymmetric", "no-zero-point", "negative-scale", "per-channel-act"])
def test_qdq_forms_tensorrt_refuses(zero_point, scale, axis, weight, problem):
    problems = check_tensorrt(qdq_graph(zero_point, scale, axis, weight))
    assert problems and all(problem in p for p in problems), problems


def test_onnxruntime_qdq_quantization_readiness(unet_path, tmp_path, caplog):
    """A real quantizer's output: onnxruntime's QDQ quantize_static with symmetric INT8 and unquantized biases
    is TensorRT-ready; its asymmetric default is flagged."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Calibration(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.feeds = iter([{"x_t": rng.standard_normal((1, 3, 16, 16)).astype(np.float32),
                                "t": np.array([500.0], np.float32),
                                "condition": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)}
                               for _ in range(2)])

        def get_next(self):
            return next(self.feeds, None)

    caplog.set_level(logging.ERROR)  # the quantizer warns about every GroupNorm bias
    symmetric = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    quantize_static(str(unet_path), str(tmp_path / "sym.onnx"), Calibration(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    extra_options=symmetric)
    model = onnx.load(str(tmp_path / "sym.onnx"))
    assert sum(n.op_type == "DequantizeLinear" for n in model.graph.node) > 20
    assert check_tensorrt(model, PROFILE, 4) == []
    quantize_static(str(unet_path), str(tmp_path / "asym.onnx"), Calibration(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, per_channel=True)
    problems = check_tensorrt(str(tmp_path / "asym.onnx"), PROFILE, 4)
    assert any("quantizes to uint8" in p for p in problems)
    assert any("quantizes to int32" in p for p in problems)  # INT32 biases: not INT8 Q/DQ


def test_random_operators_are_found(unet):
    out = unet.graph.output[0].name
    unet.graph.node.append(helper.make_node("RandomNormalLike", [out], ["r"], name="planted_random"))
    assert random_ops(unet) == ["RandomNormalLike"]


def test_cubic_resize_is_ready_only_on_the_last_two_axes():
    """The restore graph's bicubic upsampling (TensorRT's parser maps it to IResizeLayer's cubic mode, for the
    last two axes only)."""
    def graph(scales):
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", cubic_coeff_a=-0.5,
                                exclude_outside=1)
        g = helper.make_graph([node], "r", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(scales, np.float32), "scales")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    assert check_tensorrt(graph([1, 1, 4, 4])) == []
    assert check_tensorrt(graph([1, 2, 4, 4]))[0].endswith("cubic resize needs constant scales on the last two "
                                                           "axes only")
