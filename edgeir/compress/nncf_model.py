"""NNCF post-training quantization of a denoiser network, shaped for TensorRT-style INT8.

``nncf.quantize`` inserts fake-quantizers as hooks on the network's operations (on an op's inputs, its
weight among them, or on its output) and calibrates them. Two of its choices are undone afterwards because
deployment cannot use them:

* NNCF's hardware config also quantizes normalisation weights (GroupNorm's affine vectors). They save nothing
  and come out per-tensor and unsigned, which TensorRT does not take, so those quantizers are removed;
* activations that calibrated as non-negative get unsigned (uint8) quantizers; TensorRT only takes signed
  INT8 with zero point 0, so they are made signed with the same scale (one bit of range given up).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import nncf
import onnx
import torch
from nncf.common.graph import NNCFGraph, NNCFNode
from nncf.common.logging import nncf_logger
from nncf.common.quantization.quantizer_propagation.structs import QuantizationTrait
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
from nncf.quantization.range_estimator import RangeEstimatorParametersSet
from nncf.torch.function_hook import wrap_model
from nncf.torch.function_hook.hook_storage import decode_hook_name
from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph
from nncf.torch.function_hook.wrapper import get_hook_storage
from nncf.torch.graph import operator_metatypes as om
from nncf.torch.quantization.default_quantization import DEFAULT_PT_QUANT_TRAIT_TO_OP_DICT
from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode, SymmetricQuantizer
from torch import nn

from edgeir.compress.calibration import Sample
from edgeir.compress.int8_onnx import fold_weights
from edgeir.compress.layers import layer_name
from edgeir.export.codec import export_part
from edgeir.export.unet import export_unet
from edgeir.files import atomic_path
from edgeir.models.restorer import RestorerModel

Preset = Literal["performance", "mixed"]
ActivationRange = Literal["minmax", "mean_minmax", "histogram"]
# Ops that only move values (reshape, concat, ...): a quantizer before them quantizes what comes after.
_PASS_THROUGH = tuple(DEFAULT_PT_QUANT_TRAIT_TO_OP_DICT[QuantizationTrait.QUANTIZATION_AGNOSTIC]
                      + DEFAULT_PT_QUANT_TRAIT_TO_OP_DICT[QuantizationTrait.CONCAT])


def network_graph(net: nn.Module, example: Sample) -> NNCFGraph:
    """NNCF's graph of ``net``; its node names are what quantizer hooks and ``IgnoredScope`` refer to."""
    return build_nncf_graph(wrap_model(copy.deepcopy(net)), example)


def quantize_network(net: nn.Module, samples: Sequence[Sample], graph: NNCFGraph, keep_fp: list[str],
                     float_outputs: set[str], preset: Preset, subset_size: int,
                     activation_range: ActivationRange) -> nn.Module:
    """A quantized copy of ``net`` calibrated on ``samples``. ``keep_fp`` are NNCF node names left entirely in
    FP; the outputs of the ops in ``float_outputs`` are not quantized even where a quantized op reads them."""
    # OverflowFix halves the first layers' weight range for old x86 int8 units; edge GPUs have no such issue.
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.DISABLE,
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet, activation_range.upper()))
    device = next(net.parameters()).device
    dataset = nncf.Dataset(list(samples), lambda sample: tuple(x.to(device) for x in sample))
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)  # its INFO lines list every op it skips; our progress bars suffice
    try:
        # its progress bars go to stdout, where `--json` output must stand alone
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(net, dataset, preset=nncf.QuantizationPreset(preset), subset_size=subset_size,
                                      ignored_scope=nncf.IgnoredScope(names=keep_fp), advanced_parameters=advanced)
    finally:
        nncf_logger.setLevel(level)
    storage = get_hook_storage(quantized)
    for hook, q in list(quantizers(quantized)):
        weight = weight_of(graph, hook)
        if weight is not None and quantized.get_parameter(weight).dim() < 2 or \
                weight is None and quantized_tensor(graph, hook) in float_outputs:
            storage.delete_hook(hook)
        elif preset == "performance" and isinstance(q, SymmetricQuantizer) and not q.signed:
            q.signed = True
    return quantized.eval()


def quantizers(net: nn.Module) -> Iterator[tuple[str, BaseQuantizer]]:
    for name, module in get_hook_storage(net).named_hooks():
        if isinstance(module, BaseQuantizer):
            yield name, module


def _input_producer(graph: NNCFGraph, node: NNCFNode, port: int) -> NNCFNode | None:
    for edge in graph.get_input_edges(node):
        if edge.input_port_id == port:
            return edge.from_node
    return None


def quantized_tensor(graph: NNCFGraph, hook: str) -> str | None:
    """The op whose output an activation quantizer hook quantizes."""
    kind, op, port = decode_hook_name(hook)
    if kind == "post_hooks":
        return op
    producer = _input_producer(graph, graph.get_node_by_name(op), port)
    return producer.node_name if producer is not None else None


def weight_of(graph: NNCFGraph, hook: str) -> str | None:
    """The parameter a quantizer hook quantizes, or None for an activation quantizer."""
    kind, op, port = decode_hook_name(hook)
    if kind != "pre_hooks":
        return None
    producer = _input_producer(graph, graph.get_node_by_name(op), port)
    return producer.node_name if producer is not None and producer.metatype is om.PTConstNoopMetatype else None


def quantizers_by_layer(graph: NNCFGraph, net: nn.Module) -> dict[str, list[str]]:
    """Layer name -> the quantizer hooks that feed it: its weight's, those on its inputs and those on the
    outputs of the ops it reads from (through ops that only move values, like reshape or concat)."""
    pre: dict[str, list[str]] = {}
    post: dict[str, str] = {}
    for hook, _ in quantizers(net):
        kind, op, _port = decode_hook_name(hook)
        if kind == "pre_hooks":
            pre.setdefault(op, []).append(hook)
        else:
            post[op] = hook

    def feeding(node: NNCFNode, seen: set[str]) -> list[str]:
        found = []
        for prev in graph.get_previous_nodes(node):
            if prev.node_name in seen:
                continue
            seen.add(prev.node_name)
            if prev.node_name in post:
                found.append(post[prev.node_name])
            elif issubclass(prev.metatype, _PASS_THROUGH):
                found += feeding(prev, seen)
        return found

    units = {}
    for node in graph.get_all_nodes():
        hooks = pre.get(node.node_name, []) + feeding(node, set())
        if hooks:
            units[layer_name(graph, node)] = hooks
    return units


def set_qdq_export(net: nn.Module) -> None:
    """Make the quantizers trace as ONNX QuantizeLinear/DequantizeLinear pairs instead of NNCF's FakeQuantize."""
    for _, q in quantizers(net):
        q.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)


@torch.no_grad()
def switch_quantizers(net: nn.Module, enabled: Callable[[str], bool]) -> None:
    """Turn each quantizer on or off by its hook name (off: the op sees FP32 values)."""
    for name, q in quantizers(net):
        q.enable_quantization() if enabled(name) else q.disable_quantization()


def export_int8(net: nn.Module, like: RestorerModel, path: str | Path) -> Path:
    """Export a quantized ``net`` (with ``like``'s config) as a Q/DQ ONNX graph with INT8 weights, atomically."""
    path = Path(path)
    set_qdq_export(net)
    with atomic_path(path) as tmp:
        export_unet(RestorerModel(like.config, net=net, codec=like.codec), tmp)
        onnx.save(fold_weights(onnx.load(str(tmp))), str(tmp))
    return path


def export_int8_part(net: nn.Module, io: tuple[str, str], shape: tuple[int, ...], path: str | Path) -> Path:
    """``export_int8`` for a quantized autoencoder part (``edgeir.export.codec``'s graph of it)."""
    path = Path(path)
    set_qdq_export(net)
    with atomic_path(path) as tmp:
        export_part(net, io, shape, tmp)
        onnx.save(fold_weights(onnx.load(str(tmp))), str(tmp))
    return path
