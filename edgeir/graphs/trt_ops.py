"""The ONNX operators TensorRT's ONNX parser supports, with the restrictions that matter to edgeir graphs.

Written from onnx-tensorrt's ``docs/operators.md`` at its 10.1 GA release (commit 96e7811, June 2024): every
operator marked "Y" (the 10.0 matrix is the same less DeformConv). JetPack 6 ships TensorRT 10.3, and 10.x
releases add operators without removing any, so a graph that passes here parses on JetPack 6 and on current
releases alike. The matrix covers opsets 9 to 20.
"""

from __future__ import annotations

OPSET_RANGE = (9, 20)

_MATRIX = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample GroupNormalization GRU HardSigmoid HardSwish Hardmax Identity If ImageScaler
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN
LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg
NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal
RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink
Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
"""
SUPPORTED = frozenset(_MATRIX.split())

# "`axes` must be an initializer" (or a Constant): input index of ``axes`` per operator, opset 13+ form.
CONSTANT_AXES = {"Pad": 3, "Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "CumSum": 1,
                 **{op: 1 for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                     "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")}}

# The matrix lists nearest and linear; the parser's Resize importer at the same release also maps "cubic" (with
# cubic_coeff_a and exclude_outside) onto IResizeLayer's kCUBIC, for the last two axes only.
RESIZE_MODES = frozenset({"nearest", "linear", "cubic"})
RESIZE_TRANSFORMS = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                               "align_corners"})
RESIZE_NEAREST = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})

# Seeds are ignored: a graph with these is not deterministic given its inputs.
RANDOM = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"})
