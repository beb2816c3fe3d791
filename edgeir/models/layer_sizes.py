"""Per-layer sizes a network's own config cannot express (a pruned diffusers UNet2DModel's), as plain data
that a config can carry: ``{module path: {size attribute: value}}``, listing only what differs from the
network the config builds.

Sizes are a module's integer attributes, compared generically, so the plain attributes that diffusers'
forward() relies on (attention ``heads``, the resamplers' ``channels``) are recorded with the layers' widths.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

Resized = dict[str, dict[str, int]]


def _conv(m: nn.Conv2d, s: Mapping[str, int]) -> nn.Conv2d:
    sizes = {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups, **s}
    return nn.Conv2d(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                     bias=m.bias is not None, padding_mode=m.padding_mode, **sizes)


def _linear(m: nn.Linear, s: Mapping[str, int]) -> nn.Linear:
    return nn.Linear(**{"in_features": m.in_features, "out_features": m.out_features, **s},
                     bias=m.bias is not None)


def _group_norm(m: nn.GroupNorm, s: Mapping[str, int]) -> nn.GroupNorm:
    return nn.GroupNorm(**{"num_groups": m.num_groups, "num_channels": m.num_channels, **s}, eps=m.eps,
                        affine=m.affine)


# Layers whose parameters have the sizes' shapes, so they are built anew rather than given new attributes.
# Exact types: a subclass may take other constructor arguments.
_LAYERS: dict[type, Callable[[nn.Module, Mapping[str, int]], nn.Module]] = {
    nn.Conv2d: _conv, nn.Linear: _linear, nn.GroupNorm: _group_norm}


def _sizes(m: nn.Module) -> dict[str, int]:
    return {k: v for k, v in vars(m).items() if isinstance(v, int) and not isinstance(v, bool)}


def describe(net: nn.Module, reference: nn.Module) -> Resized:
    """The sizes in which ``net`` differs from ``reference``, a network of the same structure (e.g. freshly
    built from the config ``net`` was built from before pruning; it may live on the meta device)."""
    resized = {}
    for path, m in net.named_modules():
        ref = _sizes(reference.get_submodule(path))
        changed = {k: v for k, v in _sizes(m).items() if ref.get(k) != v}
        if changed:
            resized[path] = changed
    return resized


def apply(net: nn.Module, resized: Mapping[str, Mapping[str, int]]) -> None:
    """Give ``net`` (freshly built, its weights still to be loaded) the sizes ``describe`` recorded."""
    for path, sizes in resized.items():
        try:
            m = net.get_submodule(path)
        except AttributeError:
            raise ValueError(f"resized names {path!r}, which the network does not have") from None
        if type(m) in _LAYERS:
            parent, _, name = path.rpartition(".")
            setattr(net.get_submodule(parent), name, _LAYERS[type(m)](m, sizes))
            continue
        for k, v in sizes.items():
            if k not in _sizes(m):
                raise ValueError(f"resized names {path}.{k}, which is not a size of {type(m).__name__}")
            setattr(m, k, v)
