"""Writing ONNX graphs by running ordinary Python over symbolic tensors.

``Sym`` behaves like an array under ``+ - * /`` with numbers and other ``Sym``s and under ``.clip``; every
operation appends an ONNX node to its ``GraphBuilder``. So the sampler loop and step maths of
``edgeir.diffusion`` run unchanged over ``Sym`` inputs and leave behind the graph that computes them, the same
way ``torch.onnx`` traces them for the torch sampler: one definition of the maths, three executors.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper


class GraphBuilder:
    def __init__(self, opset: int = 17):
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._names = itertools.count()
        self._constants: dict[tuple, str] = {}

    def name(self, hint: str = "t") -> str:
        return f"{hint}_{next(self._names)}"

    def op(self, op_type: str, *inputs: str | Sym, outputs: int = 1, name: str | None = None, **attrs
           ) -> Sym | list[Sym]:
        """Append one node; returns its output (or outputs)."""
        outs = [name or self.name(op_type.lower())] + [self.name(op_type.lower()) for _ in range(outputs - 1)]
        self.nodes.append(helper.make_node(op_type, [str(i) for i in inputs], outs, **attrs))
        syms = [Sym(self, o) for o in outs]
        return syms[0] if outputs == 1 else syms

    def const(self, value, dtype=np.float32) -> Sym:
        """An initializer holding ``value`` (shared with every other use of the same value and type)."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.name("const")
            self.initializers[name] = numpy_helper.from_array(array, name)
            self._constants[key] = name
        return Sym(self, self._constants[key])

    def model(self, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto],
              name: str = "edgeir") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, list(inputs), list(outputs), list(self.initializers.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="edgeir")
        model.ir_version = 8  # what onnxruntime >= 1.15 and TensorRT 10 read
        return model


class Sym:
    """A named tensor in a ``GraphBuilder``'s graph."""

    def __init__(self, builder: GraphBuilder, name: str):
        self.b, self.name = builder, name

    def __str__(self) -> str:
        return self.name

    def _other(self, x) -> Sym:
        return x if isinstance(x, Sym) else self.b.const(x)

    def __add__(self, x) -> Sym:
        return self.b.op("Add", self, self._other(x))

    __radd__ = __add__

    def __sub__(self, x) -> Sym:
        return self.b.op("Sub", self, self._other(x))

    def __rsub__(self, x) -> Sym:
        return self.b.op("Sub", self._other(x), self)

    def __mul__(self, x) -> Sym:
        return self.b.op("Mul", self, self._other(x))

    __rmul__ = __mul__

    def __truediv__(self, x) -> Sym:
        return self.b.op("Div", self, self._other(x))

    def __neg__(self) -> Sym:
        return self.b.op("Neg", self)

    def clip(self, lo: float, hi: float) -> Sym:
        return self.b.op("Clip", self, self.b.const(lo), self.b.const(hi))
