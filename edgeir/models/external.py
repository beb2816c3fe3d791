"""Networks edgeir does not define, rebuilt from a config by a function the user names (``ExternalNetSpec``).

A model's config is data that travels with its weights, so it must not be able to run code of its choosing:
the named module is imported (running its top-level code, as any import does), but its function is called
only if its author marked it with ``@network_factory``. Otherwise ``"subprocess:run"`` with ``{"args": ...}``
in a downloaded config.json would be a command run by ``load_restorer``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from edgeir.models.config import ExternalNetSpec

F = TypeVar("F", bound=Callable[..., nn.Module])
_MARK = "__edgeir_network_factory__"


def network_factory(fn: F) -> F:
    """Marks ``fn`` as a function that ``ExternalNetSpec.factory`` may name: called with the spec's ``kwargs``,
    it returns a fresh network ``(x_t, t, condition) -> prediction``. It may be called on the meta device
    (to count parameters before anything is allocated), so it should only build modules."""
    setattr(fn, _MARK, True)
    return fn


def build_external(spec: ExternalNetSpec) -> nn.Module:
    module_name, _, name = spec.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(f"factory {spec.factory}: cannot import {module_name} ({e})") from None
    fn: Any = getattr(module, name, None)
    if fn is None:
        raise ValueError(f"factory {spec.factory}: {module_name} has no {name}")
    if not getattr(fn, _MARK, False):
        raise ValueError(f"factory {spec.factory} is not marked @edgeir.models.external.network_factory, so it "
                         "is not called")
    net = fn(**spec.kwargs)
    if not isinstance(net, nn.Module):
        raise TypeError(f"factory {spec.factory} returned a {type(net).__name__}, not a torch module")
    return net
