"""Which operations of a denoiser stay in floating point when it is quantized.

Layers are named the way a user sees the network: an operation with a weight by its module path
(``conv_in``, ``down.1.0.conv1``, ``mid_attn.q``), any other operation by NNCF's op name with dots
(``mid_attn.softmax.0``). A keep-in-FP list holds fnmatch patterns over these names and selectors for the
places diffusion UNets are known to be fragile, found from the graph itself so they work for any network:

* ``@first_conv``, ``@last_conv``: the convolution that reads the raw image/noise, with every op before it,
  and the one that writes the prediction, with every op after it (e.g. a pixel shuffle that would otherwise
  quantize the prediction itself to 256 levels);
* ``@timestep_embedding``: every activation that depends on the timestep alone (t itself, its sinusoid, the
  time MLP's and per-block projections' values) and the ops where it enters the image path (scale/shift).
  Quantizing these bins t itself. The linear layers' weights on that path are still stored in INT8
  (weight-only): per-channel weight rounding costs nothing measurable and keeps the file small;
* ``@attention_softmax``: softmax and the activation-by-activation matmuls around it (q@k, attn@v).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from nncf.common.graph import NNCFGraph, NNCFNode
from nncf.torch.graph import operator_metatypes as om

CONVS = (om.PTConv1dMetatype, om.PTConv2dMetatype, om.PTConv3dMetatype)
NOOPS = (om.PTInputNoopMetatype, om.PTOutputNoopMetatype, om.PTConstNoopMetatype)
SELECTORS = ("@first_conv", "@last_conv", "@timestep_embedding", "@attention_softmax")
DEFAULT_KEEP_FP = list(SELECTORS)


def weight_name(graph: NNCFGraph, node: NNCFNode) -> str | None:
    """The parameter name (``down.1.0.conv1.weight``) of an op's weight, if it has one."""
    for prev in graph.get_previous_nodes(node):
        if prev.metatype is om.PTConstNoopMetatype and prev.node_name.endswith(".weight"):
            return prev.node_name
    return None


def layer_name(graph: NNCFGraph, node: NNCFNode) -> str:
    weight = weight_name(graph, node)
    return weight.removesuffix(".weight") if weight else node.node_name.strip("/").replace("/", ".")


def operations(graph: NNCFGraph) -> list[NNCFNode]:
    """Every real operation in topological order (inputs, outputs and constants left out)."""
    return [n for n in graph.topological_sort() if not issubclass(n.metatype, NOOPS)]


def _reachable(graph: NNCFGraph, starts: list[NNCFNode], forward: bool = True) -> set[str]:
    seen: set[str] = set()
    stack = list(starts)
    step = graph.get_next_nodes if forward else graph.get_previous_nodes
    while stack:
        for nxt in step(stack.pop()):
            if nxt.node_name not in seen:
                seen.add(nxt.node_name)
                stack.append(nxt)
    return seen


def timestep_only(graph: NNCFGraph, timestep_input: str = "t") -> set[str]:
    """Names of the ops whose output depends on the timestep input alone."""
    inputs = graph.get_input_nodes()
    from_t = _reachable(graph, [n for n in inputs if n.node_name == timestep_input])
    return from_t - _reachable(graph, [n for n in inputs if n.node_name != timestep_input])


def select(graph: NNCFGraph, selector: str) -> list[NNCFNode]:
    """The ops a selector leaves entirely in floating point (for ``@timestep_embedding``: all but the linear
    layers, whose activations ``timestep_only`` keeps in floating point instead)."""
    ops = operations(graph)
    t_only = timestep_only(graph)
    from_inputs = _reachable(graph, graph.get_input_nodes())
    image_ops = [n for n in ops if n.node_name in from_inputs and n.node_name not in t_only]
    convs = [n for n in image_ops if issubclass(n.metatype, CONVS)]
    if selector == "@first_conv":
        before = _reachable(graph, convs[:1], forward=False)
        return [n for n in image_ops if n.node_name in before] + convs[:1]
    if selector == "@last_conv":
        after = _reachable(graph, convs[-1:])
        return convs[-1:] + [n for n in image_ops if n.node_name in after]
    if selector == "@timestep_embedding":
        joins = [n for n in image_ops if any(p.node_name in t_only for p in graph.get_previous_nodes(n))]
        return [n for n in ops if n.node_name in t_only and weight_name(graph, n) is None] + joins
    if selector == "@attention_softmax":
        act_matmul = [n for n in image_ops if n.metatype is om.PTMatMulMetatype and weight_name(graph, n) is None]
        attention = [n for n in image_ops if n.metatype in (om.PTSoftmaxMetatype,
                                                            om.PTScaledDotProductAttentionMetatype)]
        return act_matmul + attention if attention else []
    raise ValueError(f"unknown selector {selector!r} (known: {', '.join(SELECTORS)})")


def resolve(graph: NNCFGraph, patterns: list[str]) -> dict[str, list[str]]:
    """Pattern -> NNCF node names it keeps in floating point (possibly none)."""
    ops = operations(graph)
    out = {}
    for pattern in patterns:
        if pattern.startswith("@"):
            out[pattern] = [n.node_name for n in select(graph, pattern)]
        else:
            out[pattern] = [n.node_name for n in ops if fnmatchcase(layer_name(graph, n), pattern)]
    return out
