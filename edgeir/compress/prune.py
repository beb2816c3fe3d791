"""The prune stage: structured pruning that removes channels for real (smaller dense layers, no masks), then
recovery by distillation from the unpruned model.

torch-pruning's dependency graph finds which layers share channels: residual streams, skip concatenations,
GroupNorms, the timestep embedding's scale/shift split, and attention, whose q/k/v/out it couples through the
matmuls. This module decides how many channels each such group keeps (a multiple of its GroupNorm groups and
attention heads, so both keep their structure) and the importance criterion decides which.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

import torch
import torch_pruning as tp
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from edgeir.compress.cost import macs, params
from edgeir.compress.importance import Criterion, scorer, taylor_gradients
from edgeir.compress.latency import unet_latency_ms
from edgeir.compress.recover import RecoverySettings, recover
from edgeir.compress.stage import StageContext, StageOutput
from edgeir.errors import ConfigError
from edgeir.models import layer_sizes
from edgeir.models.config import DiffusersUNetSpec, EdgeUNetSpec, RestorerConfig
from edgeir.models.diffusers_unet import DiffusersUNet
from edgeir.models.restorer import RestorerModel
from edgeir.models.unet import Attention, EdgeUNet, UNetConfig
from edgeir.progress import console, no_progress
from edgeir.train import ddp
from edgeir.train.data import Pairs

DISTRIBUTED = True  # the pipeline runs this stage on every torchrun process
LAYERS = (nn.Conv2d, nn.Linear)  # the layers whose output channels pruning removes
# Rounding a narrow width to a multiple can prune far more or less than asked (round_to 16 takes a 32-channel
# block from 30% to 50%); beyond this many points the user is told, not only report.json.
WARN_POINTS = 0.10


class PruneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["prune"] = "prune"
    ratio: float = Field(0.3, ge=0, lt=1)  # fraction of every width's channels to remove (0: layer_ratios only)
    # Per-width ratios by name (``UNetConfig.width_layers``: "down.0", "up.1.0.conv1", "mid_attn.q", ...; for a
    # diffusers UNet the group's root layer path: "unet.conv_in", "unet.down_blocks.0.resnets.0.conv1", ...).
    layer_ratios: dict[str, float] = Field(default_factory=dict)
    importance: Criterion = "taylor"
    # Kept counts are also multiples of this where the width allows: SIMD units and tensor cores want 8. A
    # warning names every width that rounding takes more than WARN_POINTS from its ratio.
    round_to: int = Field(8, ge=1)
    taylor_batches: int = Field(2, ge=1)  # batches of recovery.batch crops, each at every visited timestep
    recovery: RecoverySettings = Field(default_factory=RecoverySettings)
    # onnxruntime rounds timing one UNet evaluation before and after, at the eval crops' size (0: skip): MACs do
    # not predict latency.
    latency_runs: int = Field(20, ge=0)

    @field_validator("layer_ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        for name, r in v.items():
            if not 0 <= r < 1:
                raise ValueError(f"{name}: a ratio must be in [0, 1), got {r}")
        return v


@dataclass
class Pruned:
    """What ``prune_network`` did, by group label (a width name, or the group's root layer path)."""

    widths: dict[str, tuple[int, int]] = field(default_factory=dict)  # before, after
    asked: dict[str, float] = field(default_factory=dict)  # the ratio asked of each group
    adjusted: list[str] = field(default_factory=list)  # counts rounded to a multiple of groups/heads/round_to
    kept: dict[str, torch.Tensor] = field(default_factory=dict)  # layer path -> output channels it kept

    def off_target(self, points: float) -> list[tuple[str, float, float]]:
        """(group, asked, actual) pruning ratios of the groups that rounding moved more than ``points`` away."""
        actual = {g: 1 - after / before for g, (before, after) in self.widths.items()}
        return [(g, self.asked[g], actual[g]) for g in self.widths if abs(actual[g] - self.asked[g]) > points]


@dataclass
class _Group:
    label: str
    names: list[str]  # width names in this group (several when the graph joins them)
    root: nn.Module
    width: int
    multiple: int


def _attention(m: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module, int] | None:
    """An attention layer's q, k and v projections and head count (ours or diffusers'), else None."""
    if isinstance(m, Attention):
        return m.q, m.k, m.v, m.active_heads
    if all(hasattr(m, a) for a in ("to_q", "to_k", "to_v", "heads")):
        return m.to_q, m.to_k, m.to_v, int(m.heads)
    return None


def attention_heads(net: nn.Module) -> dict[nn.Module, int]:
    """The q/k/v projections of every attention layer and their head counts."""
    return {proj: a[3] for m in net.modules() if (a := _attention(m)) for proj in a[:3]}


def _output_layers(net: nn.Module) -> list[nn.Module]:
    found = [m for n, m in net.named_modules() if n.rsplit(".", 1)[-1] == "conv_out"]
    if not found:
        raise ConfigError("prune: cannot find the network's output convolution (conv_out), which must not be pruned")
    return found


def _channel_groups(dg: tp.DependencyGraph, net: nn.Module, names: Mapping[nn.Module, str]) -> list[_Group]:
    heads = attention_heads(net)
    paths = {m: n for n, m in net.named_modules()}
    seen: set[nn.Module] = set()
    groups = []
    # Convolution roots first: a Linear root can be the timestep embedding's scale/shift projection, whose
    # index space is twice its group's channels, and torch-pruning would then split GroupNorm groups unevenly.
    for types in ([nn.Conv2d], [nn.Linear]):
        for group in dg.get_all_groups(ignored_layers=_output_layers(net), root_module_types=types):
            # A GroupNorm over a concatenation is in two groups; a layer's outputs are in exactly one.
            outs = [dep.target.module for dep, _ in group if dg.is_out_channel_pruning_fn(dep.handler)
                    and isinstance(dep.target.module, LAYERS)]
            if seen.intersection(outs):
                continue
            seen.update(outs)
            root = group[0].dep.target.module
            multiple = math.lcm(1, *(dep.target.module.num_groups for dep, _ in group
                                     if isinstance(dep.target.module, nn.GroupNorm)),
                                *(heads[m] for m in outs if m in heads))
            found = sorted(names[m] for m in outs if m in names)
            groups.append(_Group("/".join(found) or paths[root], found or [paths[root]], root,
                                 dg.get_out_channels(root), multiple))
    return groups


def _kept(g: _Group, ratio: float, round_to: int) -> tuple[int, int]:
    """Channels left at ``ratio`` and the multiple they were rounded to: the nearest multiple of ``round_to``
    that GroupNorm and attention heads also allow, else of what those require."""
    if g.width % g.multiple:
        return g.width, 1  # no even split exists: leave it whole
    exact = g.width * (1 - ratio)
    step = math.lcm(g.multiple, round_to)
    for m in ((step, g.multiple) if g.width % step == 0 else (g.multiple,)):
        kept = math.floor(exact / m + 0.5) * m
        if kept:
            return kept, m
    raise ConfigError(f"prune: ratio {ratio:g} would leave {g.label} {exact:.1f} of its {g.width} channels, "
                      f"but it needs a multiple of {g.multiple} (GroupNorm groups / attention heads); use a "
                      f"ratio of at most {1 - g.multiple / g.width:.3g} there")


def _query_widths(net: nn.Module) -> dict[nn.Module, int]:
    return {m: a[0].weight.shape[0] for m in net.modules() if (a := _attention(m))}


def _fold_attention_scale(net: nn.Module, before: dict[nn.Module, int]) -> None:
    """Both our attention and diffusers' default (SDPA) processor scale logits by head_dim ** -0.5 of the
    *current* width; fold the change into the query so the kept channels' logits are unchanged."""
    with torch.no_grad():
        for m, width in before.items():
            q, _, _, heads = _attention(m)
            now = q.weight.shape[0]
            if now != width:
                factor = math.sqrt((now // heads) / (width // heads))
                q.weight.mul_(factor)
                if q.bias is not None:
                    q.bias.mul_(factor)
                if hasattr(m, "scale") and isinstance(m.scale, float):  # diffusers' non-SDPA processors read it
                    m.scale = (now // heads) ** -0.5


def _sync_width_attributes(net: nn.Module) -> None:
    """diffusers' resamplers keep their width in a plain attribute that forward() asserts on."""
    for m in net.modules():
        conv = getattr(m, "conv", None)
        if isinstance(conv, nn.Conv2d) and hasattr(m, "channels") and hasattr(m, "out_channels"):
            m.channels, m.out_channels = conv.in_channels, conv.out_channels


def prune_network(net: nn.Module, example_inputs: tuple, ratio: float, layer_ratios: Mapping[str, float] = {},
                  names: Mapping[nn.Module, str] = {}, importance: tp.importance.Importance | None = None,
                  round_to: int = 1) -> Pruned:
    """Prune ``net`` in place: every channel group loses ``ratio`` of its channels (``layer_ratios`` by group
    name overrides it), the least important first; kept counts are multiples of the group's GroupNorm groups
    and attention heads (and of ``round_to`` where possible). ``names`` names the layers whose width a group is
    (groups without one are named by their root layer's path). The output convolution's outputs are never
    pruned, nor any network input."""
    importance = importance or scorer("magnitude")
    dg = tp.DependencyGraph().build_dependency(net, example_inputs=example_inputs)
    groups = _channel_groups(dg, net, names)
    known = {n for g in groups for n in g.names}
    unknown = sorted(set(layer_ratios) - known)
    if unknown:
        raise ConfigError(f"prune: layer_ratios names unknown width(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")

    plan = []
    result = Pruned()
    for g in groups:
        asked = {layer_ratios[n] for n in g.names if n in layer_ratios}
        if len(asked) > 1:
            raise ConfigError(f"prune: {' and '.join(g.names)} share their channels; give them one ratio")
        r = asked.pop() if asked else ratio
        kept, step = _kept(g, r, round_to)
        result.widths[g.label] = (g.width, kept)
        result.asked[g.label] = r
        if kept != math.floor(g.width * (1 - r) + 0.5) and kept != g.width:
            result.adjusted.append(f"{g.label}: {g.width * (1 - r):.1f} -> {kept} channels (a multiple of {step})")
        if kept == g.width:
            continue
        # Score all groups before removing any, as torch-pruning's own pruners do.
        prune_out = dg.get_pruner_of_module(g.root).prune_out_channels
        scores = importance(dg.get_pruning_group(g.root, prune_out, list(range(g.width))))
        per_split = scores.view(g.multiple, -1).mean(0)  # same positions in every GroupNorm group / head
        drop = torch.argsort(per_split)[: (g.width - kept) // g.multiple]
        split = g.width // g.multiple
        plan.append((g.root, prune_out, sorted(int(d) + k * split for k in range(g.multiple) for d in drop)))

    query_widths = _query_widths(net)
    paths = {m: n for n, m in net.named_modules()}
    for root, prune_out, idxs in plan:
        group = dg.get_pruning_group(root, prune_out, idxs)
        for dep, dep_idxs in group:
            if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, LAYERS):
                m = dep.target.module
                gone = {int(i) for i in dep_idxs}
                result.kept[paths[m]] = torch.tensor([i for i in range(m.weight.shape[0]) if i not in gone])
        group.prune()
    _fold_attention_scale(net, query_widths)
    _sync_width_attributes(net)
    return result


def _example_inputs(restorer: RestorerModel, batch: int = 1) -> tuple[torch.Tensor, ...]:
    size = 2 * restorer.config.multiple_of
    return tuple(v.cpu() for v in restorer.network_inputs(size, size, batch, torch.Generator().manual_seed(0)))


def _torch_net(restorer: RestorerModel) -> EdgeUNet | DiffusersUNet:
    net = restorer.denoiser.net
    if not isinstance(net, (EdgeUNet, DiffusersUNet)):
        raise ConfigError(f"prune: the prune stage needs an edge_unet or diffusers_unet2d network, not "
                          f"{type(net).__name__}")
    return net


def _pruned_spec(spec: EdgeUNetSpec | DiffusersUNetSpec, net: EdgeUNet | DiffusersUNet
                 ) -> EdgeUNetSpec | DiffusersUNetSpec:
    """The spec that builds ``net`` as pruned."""
    if isinstance(net, EdgeUNet):
        return EdgeUNetSpec(config=UNetConfig.model_validate({**net.config.model_dump(), "widths": net.widths()}))
    assert isinstance(spec, DiffusersUNetSpec)
    with torch.device("meta"):  # only its sizes are compared: no memory, no initialisation
        reference = DiffusersUNet.from_config(spec.config)
    return spec.model_copy(update={"resized": layer_sizes.describe(net.unet, reference.unet)})


def prune_restorer(restorer: RestorerModel, settings: PruneSettings,
                   pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None, seed: int = 0
                   ) -> tuple[RestorerModel, Pruned]:
    """A pruned copy of ``restorer``, rebuilt from its new config alone; Taylor importance needs ``pairs``
    (clean target, condition batches)."""
    net = copy.deepcopy(_torch_net(restorer))
    work = RestorerModel(restorer.config, net=net, codec=restorer.codec).eval()
    if settings.importance == "taylor":
        if not pairs:
            raise ConfigError("prune: Taylor importance needs training images")
        taylor_gradients(work, pairs, seed)
    # A diffusers UNet has no width names: its groups go by their root layer's path.
    names = ({net.get_submodule(layer): name for name, (layer, _) in net.config.width_layers().items()}
             if isinstance(net, EdgeUNet) else {})
    example = _example_inputs(restorer)
    pruned = prune_network(net, example, settings.ratio, settings.layer_ratios, names, scorer(settings.importance),
                           settings.round_to)
    net.zero_grad(set_to_none=True)

    config = restorer.config.model_copy(update={"network": _pruned_spec(restorer.config.torch_network, net)})
    out = RestorerModel(config, codec=restorer.codec).eval()
    out.denoiser.net.load_state_dict(net.state_dict())
    probe = _example_inputs(restorer, batch=2)
    with torch.no_grad():
        if not torch.allclose(out.denoiser(*probe), work.denoiser(*probe), atol=1e-5):
            raise RuntimeError("pruned network and its rebuild from config disagree (a width the config misses)")
    return out.to(next(restorer.parameters()).device), pruned


def feature_points(net: nn.Module, kept: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Feature-distillation points: every residual block's output, with the unpruned channels it kept."""
    return {path: kept.get(f"{path}.conv2", torch.arange(m.conv2.out_channels))
            for path, m in net.named_modules() if isinstance(getattr(m, "conv2", None), nn.Conv2d)}


def check(settings: PruneSettings, config: RestorerConfig) -> None:
    """The one-line error the stage would stop with on a model of ``config``, raised before any work."""
    if not isinstance(config.network, (EdgeUNetSpec, DiffusersUNetSpec)):
        raise ConfigError(f"prune: the prune stage needs an edge_unet or diffusers_unet2d network, not "
                          f"{config.network.type}")


def run(settings: PruneSettings, ctx: StageContext) -> StageOutput:
    source = ctx.student.to(ctx.device).eval()
    check(settings, source.config)
    _torch_net(source)
    rec = settings.recovery
    if rec.batch % ddp.world_size():
        raise ConfigError(f"prune.recovery.batch: {rec.batch} does not split over {ddp.world_size()} processes")
    # Every process draws the same global batches and trains on its own slice of them; with several crop
    # sizes, batches of each size take turns.
    streams = [Pairs(ctx.train_images, source.config, size, ctx.seed) for size in rec.sizes]
    if not all(s.images for s in streams):
        size = max(rec.sizes)
        raise ConfigError(f"prune: no training image is at least {size}x{size} (recovery.patch)")
    loader = chain.from_iterable(zip(*(s.batches(0, rec.batch) for s in streams)))
    taylor = [next(loader) for _ in range(settings.taylor_batches)] if settings.importance == "taylor" else None
    model, pruned = prune_restorer(source, settings, taylor, ctx.seed)
    if ddp.is_main():
        for group, asked, actual in pruned.off_target(WARN_POINTS):
            before, after = pruned.widths[group]
            console.print(f"warning: prune: {group} lost {actual:.0%} of its channels where {asked:.0%} was asked "
                          f"({before} -> {after}: counts are rounded to multiples of round_to {settings.round_to}, "
                          "GroupNorm groups and attention heads)", markup=False, highlight=False, soft_wrap=True)

    features = feature_points(model.denoiser.net, pruned.kept)
    losses = recover(ddp.wrap(model.denoiser), source, loader, rec, features, ctx.seed,
                     ctx.progress if ctx.progress and ddp.is_main() else no_progress)
    info = {"widths": {k: list(v) for k, v in pruned.widths.items() if v[0] != v[1]}, "adjusted": pruned.adjusted,
            "params": [params(source), params(model)],
            "macs_256x256": [macs(source, 256, 256), macs(model, 256, 256)],
            "recovery_loss": [losses[0], sum(losses[-20:]) / len(losses[-20:])] if losses else None}
    if settings.latency_runs and ctx.eval_cases and ddp.is_main():
        size = ctx.eval_cases[0][1].shape[:2]
        ms = unet_latency_ms({"before": source, "after": model}, size, settings.latency_runs)
        info["unet_ms_onnxruntime"] = {"size": list(size), "before": ms["before"], "after": ms["after"]}
    provenance = {**source.config.provenance, "pruned_by": {"stage": "edgeir.compress.prune",
                                                            "settings": settings.model_dump(mode="json")}}
    model.config = model.config.model_copy(update={"provenance": provenance})
    return StageOutput(model.eval(), info=info)
