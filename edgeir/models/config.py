"""The restorer's config: everything besides weights that is needed to rebuild and run it. Saved as
``config.json`` next to ``model.safetensors``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from edgeir.diffusion.latent import Condition, LatentSpace
from edgeir.diffusion.scheduler import DiffusersSchedule
from edgeir.diffusion.schedules import ScheduleConfig
from edgeir.diffusion.steps import Target
from edgeir.models.tiny_decoder import TinyDecoderConfig
from edgeir.models.unet import UNetConfig
from edgeir.tasks import Degraded, TaskConfig

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


Schedule = Annotated[ScheduleConfig | DiffusersSchedule, Field(discriminator="kind")]


class TinyDecoderSpec(_Strict):
    """A small decoder distilled from an autoencoder's (``edgeir.models.tiny_decoder``), in its place."""

    type: Literal["tiny"] = "tiny"
    config: TinyDecoderConfig


class AutoencoderSpec(_Strict):
    """A latent restorer's autoencoder: diffusers' ``VQModel`` ("vq") or ``AutoencoderKL`` ("kl") built from
    ``config``, its weights in the folder's ``autoencoder.safetensors``. The UNet samples
    ``(z - shift_factor) * scaling_factor`` for the encoder's ``z`` (LDM's VQ pipelines use the raw latent,
    scale 1). ``decoder`` replaces the autoencoder's decoder; ``graphs`` names ONNX graphs in the folder that run
    the encoder or decoder instead of torch (``edgeir.export.codec``'s)."""

    type: Literal["vq", "kl"]
    config: dict[str, Any]
    scaling_factor: float = Field(1.0, gt=0)
    shift_factor: float = 0.0
    condition: Condition = "latent"
    decoder: TinyDecoderSpec | None = None
    graphs: dict[Literal["encoder", "decoder"], Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+\.onnx$")]] = \
        Field(default_factory=dict)

    @property
    def space(self) -> LatentSpace:
        blocks = self.config.get("block_out_channels", (64,))
        return LatentSpace(factor=2 ** (len(blocks) - 1), channels=int(self.config.get("latent_channels", 3)),
                           condition=self.condition)


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
    schedule: Schedule = Field(default_factory=ScheduleConfig)
    task: TaskConfig
    # A latent restorer: the network samples in this autoencoder's latent space.
    autoencoder: AutoencoderSpec | None = None
    # What the network's clean sample is: "residual", (ground truth - the condition's base image) *
    # residual_scale, which has roughly unit scale (edgeir's own networks); or "image", the ground truth itself in
    # [-1, 1] (times residual_scale), as most published restorers are trained.
    target: Target = "residual"
    residual_scale: float = Field(1.0, gt=0)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _latent(self) -> RestorerConfig:
        if self.autoencoder is not None:
            problem = self.autoencoder.space.problem(self.task)
            if problem:
                raise ValueError(f"autoencoder: {problem}")
            if self.target != "image" or self.residual_scale != 1:
                raise ValueError('a latent restorer samples the latent of the image itself: target must be "image" '
                                 "and residual_scale 1")
        return self

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
        return self.schedule.timesteps(steps or self.sampler.steps)

    @property
    def latent(self) -> LatentSpace | None:
        return self.autoencoder.space if self.autoencoder else None

    def condition(self, degraded: Degraded):
        """HxWxC float32 in [-1, 1], what the restorer is conditioned on before any encoder: the task's
        condition at output resolution, or a latent restorer's (``LatentSpace.condition_input``)."""
        latent = self.latent
        return latent.condition_input(self.task, degraded) if latent else self.task.condition(degraded)

    @property
    def torch_network(self) -> EdgeUNetSpec | DiffusersUNetSpec | ExternalNetSpec:
        """The torch architecture: the network itself, or the one an ONNX network was exported from."""
        return self.network.source if isinstance(self.network, OnnxNetSpec) else self.network

    @property
    def multiple_of(self) -> int:
        """What output image sides must be multiples of: the network's own multiple, times the latent factor."""
        spec = self.torch_network
        if isinstance(spec, EdgeUNetSpec):
            own = spec.config.multiple_of
        elif isinstance(spec, ExternalNetSpec):
            own = spec.multiple_of
        else:
            own = 2 ** (len(spec.config.get("block_out_channels", (0,))) - 1)
        return own * (self.latent.factor if self.latent else 1)

    @property
    def sample_channels(self) -> int:
        """Channels of the sample the network denoises: the image's 3, or the latent space's."""
        return self.latent.channels if self.latent else 3

    @property
    def unet_cond_channels(self) -> int:
        """Channels of the condition the network itself takes."""
        return self.latent.unet_cond_channels if self.latent else self.task.cond_channels


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
