"""The bundle manifest: everything besides the graphs that a device needs to run a restorer.

A bundle holds one or more *variants* of the same restorer (say an INT8 4-step and an FP16 8-step one), each a
graph of one of two kinds with a fixed I/O contract:

* ``sampler``: the whole sampler loop in one graph. Inputs ``condition`` (B, C, H, W) float32 in [-1, 1] at
  output resolution and ``noise`` (B, 3K, H, W) standard normal, where K = 1 + the number of stochastic steps
  (K = 1 for DDIM with eta = 0); output ``image`` (B, 3, H, W) in [0, 1].
* ``unet``: one network evaluation. Inputs ``x_t`` (B, 3, H, W), ``t`` (B,) float32 training timestep,
  ``condition``; output ``prediction`` (``eps``, ``v`` or ``x0``). The runtime runs the step loop in numpy
  from the step coefficients recorded here (``edgeir.diffusion``), exactly as the torch sampler does.

H and W must be multiples of ``multiple_of``. Validated with pydantic, like every other config in edgeir:
``edgeir.tasks`` (which the runtime needs to rebuild conditions exactly as training did) is pydantic already.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeir.diffusion.steps import Prediction, Step
from edgeir.tasks import TaskConfig

FORMAT = "edgeir.bundle/1"
GraphKind = Literal["sampler", "unet"]
Precision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str
    layout: str  # "NCHW" for images, "N" for the timestep
    channels: int | None = None
    range: tuple[float, float] | None = None  # None: unbounded (noise, network predictions)


def io_specs(kind: GraphKind, cond_channels: int, noise_channels: int = 3
             ) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The fixed inputs and outputs of a graph of ``kind`` (see the module docstring)."""
    cond = TensorSpec(name="condition", layout="NCHW", channels=cond_channels, range=(-1.0, 1.0))
    if kind == "sampler":
        return ([cond, TensorSpec(name="noise", layout="NCHW", channels=noise_channels)],
                [TensorSpec(name="image", layout="NCHW", channels=3, range=(0.0, 1.0))])
    return ([TensorSpec(name="x_t", layout="NCHW", channels=3), TensorSpec(name="t", layout="N"), cond],
            [TensorSpec(name="prediction", layout="NCHW", channels=3)])


class Variant(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    graph: str  # file inside the bundle
    kind: GraphKind
    format: Literal["onnx", "tensorrt"] = "onnx"
    precision: Precision = "fp32"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # The sampler: a sampler graph has these baked in; a unet graph is driven by them.
    steps: list[Step] = Field(min_length=1)
    prediction: Prediction = "x0"
    temperature: float = Field(1.0, gt=0)
    residual_scale: float = Field(1.0, gt=0)

    @property
    def noise_channels(self) -> int:
        """Initial noise plus fresh noise for each stochastic step, drawn once per image (see tiling)."""
        return 3 * (1 + sum(s.sigma > 0 for s in self.steps))

    @property
    def cond_channels(self) -> int:
        return next((s.channels or 0 for s in self.inputs if s.name == "condition"), 0)

    @model_validator(mode="after")
    def _check(self) -> Variant:
        expected = io_specs(self.kind, self.cond_channels, self.noise_channels)
        if (self.inputs, self.outputs) != expected:
            def show(specs):
                return ", ".join(f"{s.name}[{s.channels or '-'}]" for s in specs)

            raise ValueError(f"a {self.kind} graph must map {show(expected[0])} -> {show(expected[1])}, "
                             f"not {show(self.inputs)} -> {show(self.outputs)}")
        ts = [s.t for s in self.steps]
        if any(b >= a for a, b in pairwise(ts)):
            raise ValueError(f"step timesteps must be strictly descending, got {ts}")
        return self


class Manifest(_Strict):
    format: Literal["edgeir.bundle/1"] = FORMAT
    task: TaskConfig
    multiple_of: int = Field(ge=1)  # graph inputs' H and W must be multiples of this
    min_size: int = Field(ge=1)  # smallest output side the runtime accepts
    tile: int = Field(ge=1)  # recommended output tile side (a multiple of multiple_of)
    overlap: int = Field(ge=0)  # recommended overlap between neighbouring tiles, in output pixels
    variants: list[Variant] = Field(min_length=1)  # first = best quality; budget planning walks the list
    producer: dict[str, Any] = Field(default_factory=dict)  # edgeir version, command, source model, ...
    files: dict[str, str] = Field(default_factory=dict)  # bundle-relative path -> sha256 (hex), filled by
    # write_bundle

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if self.tile % self.multiple_of:
            raise ValueError(f"tile {self.tile} is not a multiple of multiple_of {self.multiple_of}")
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"overlap {self.overlap} must be below half the tile ({self.tile})")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        for v in self.variants:
            if v.cond_channels != self.task.cond_channels:
                raise ValueError(f"variant {v.name}: condition channels differ from the task's "
                                 f"{self.task.cond_channels}")
        return self

    def variant(self, name: str | None = None) -> Variant:
        if name is None:
            return self.variants[0]
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def make_variant(name: str, graph: str, kind: GraphKind, cond_channels: int, steps: list[Step],
                 prediction: Prediction = "x0", temperature: float = 1.0, residual_scale: float = 1.0,
                 precision: Precision = "fp32", format: Literal["onnx", "tensorrt"] = "onnx") -> Variant:
    """A variant with the standard I/O of its kind; exporters call this with the restorer's config values."""
    noise = 3 * (1 + sum(s.sigma > 0 for s in steps))
    inputs, outputs = io_specs(kind, cond_channels, noise)
    return Variant(name=name, graph=graph, kind=kind, format=format, precision=precision, inputs=inputs,
                   outputs=outputs, steps=steps, prediction=prediction, temperature=temperature,
                   residual_scale=residual_scale)
