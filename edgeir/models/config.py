"""The restorer's config: everything besides weights that is needed to rebuild and run it. Saved as
``config.json`` next to ``model.safetensors``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from edgeir.diffusion.schedules import ScheduleKind, spaced_timesteps
from edgeir.diffusion.steps import Target
from edgeir.models.unet import UNetConfig
from edgeir.tasks import TaskConfig

FORMAT = "edgeir.restorer/1"
# Deeper JSON than any real config needs; pydantic cannot write a config nested past ~250 levels back out.
MAX_NESTING = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EdgeUNetSpec(_Strict):
    type: Literal["edge_unet"] = "edge_unet"
    config: UNetConfig = Field(default_factory=UNetConfig)


class DiffusersUNetSpec(_Strict):
    """A diffusers ``UNet2DModel`` whose input is ``concat(x_t, condition)`` along channels."""

    type: Literal["diffusers_unet2d"] = "diffusers_unet2d"
    config: dict[str, Any]
    # A pruned network's layers whose sizes differ from what ``config`` builds (``edgeir.models.layer_sizes``), by
    # module path inside the UNet2DModel: diffusers' config has one width per block, pruning leaves one per layer.
    resized: dict[str, dict[str, int]] = Field(default_factory=dict)


class ExternalNetSpec(_Strict):
    """A network edgeir does not define: ``factory`` (``"package.module:function"``) called with ``kwargs``
    builds it, ``(x_t, t, condition) -> prediction`` (e.g. a ``CallAdapter`` around any torch module). Loading
    imports that module, and calls the function only if it is marked ``@network_factory``
    (``edgeir.models.external``), so a config cannot name an arbitrary function to call."""

    type: Literal["external"] = "external"
    factory: str = Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)  # JSON values only: they are saved in config.json
    multiple_of: int = Field(1, ge=1, le=1024)  # input height and width must be multiples of this


TorchNetworkSpec = Annotated[EdgeUNetSpec | DiffusersUNetSpec | ExternalNetSpec, Field(discriminator="type")]


class OnnxNetSpec(_Strict):
    """A network that is an ONNX graph in the model folder (the quantize stage's INT8 denoiser), run by
    onnxruntime. ``source`` is the architecture it was exported from: its size constraints and costs."""

    type: Literal["onnx"] = "onnx"
    graph: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.onnx$")  # a file name inside the folder, never a path
    source: TorchNetworkSpec


NetworkSpec = Annotated[EdgeUNetSpec | DiffusersUNetSpec | ExternalNetSpec | OnnxNetSpec,
                        Field(discriminator="type")]


class ScheduleConfig(_Strict):
    kind: ScheduleKind = "cosine"
    num_train_timesteps: int = Field(1000, ge=2)


class SamplerConfig(_Strict):
    kind: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(50, ge=1)
    eta: float = Field(0.0, ge=0, le=1)
    temperature: float = Field(1.0, gt=0, le=2)  # scale of the initial noise
    # A distilled student visits exactly these timesteps (descending); None means evenly spaced ``steps``.
    timesteps: list[int] | None = None

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.timesteps is not None and len(self.timesteps) != self.steps:
            raise ValueError(f"timesteps lists {len(self.timesteps)} entries but steps={self.steps}")
        return self


class RestorerConfig(_Strict):
    format: Literal["edgeir.restorer/1"] = FORMAT
    network: NetworkSpec = Field(default_factory=EdgeUNetSpec)
    prediction: Literal["eps", "v", "x0"] = "x0"
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    task: TaskConfig
    # What the network's clean sample is: "residual", (ground truth - the condition's base image) *
    # residual_scale, which has roughly unit scale (edgeir's own networks); or "image", the ground truth itself in
    # [-1, 1] (times residual_scale), as most published restorers are trained.
    target: Target = "residual"
    residual_scale: float = Field(1.0, gt=0)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shallow(cls, raw: Any) -> Any:
        if _nesting(raw) > MAX_NESTING:
            raise PydanticCustomError("nesting", f"nested more than {MAX_NESTING} levels deep")
        return raw

    def timesteps(self, steps: int | None = None) -> list[int]:
        """The timesteps the default sampler visits, or ``steps`` evenly spaced ones."""
        if steps is None and self.sampler.timesteps is not None:
            return list(self.sampler.timesteps)
        return spaced_timesteps(self.schedule.num_train_timesteps, steps or self.sampler.steps)

    @property
    def torch_network(self) -> EdgeUNetSpec | DiffusersUNetSpec | ExternalNetSpec:
        """The torch architecture: the network itself, or the one an ONNX network was exported from."""
        return self.network.source if isinstance(self.network, OnnxNetSpec) else self.network

    @property
    def multiple_of(self) -> int:
        spec = self.torch_network
        if isinstance(spec, EdgeUNetSpec):
            return spec.config.multiple_of
        if isinstance(spec, ExternalNetSpec):
            return spec.multiple_of
        n_down = len(spec.config.get("block_out_channels", (0,))) - 1
        return 2**n_down


def _nesting(obj: Any) -> int:
    """How deeply lists and dicts nest in ``obj``, found without recursion."""
    deepest, todo = 0, [(obj, 0)]
    while todo:
        x, depth = todo.pop()
        if isinstance(x, dict | list | tuple):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_NESTING:
                break
            todo += [(v, depth + 1) for v in (x.values() if isinstance(x, dict) else x)]
    return deepest
