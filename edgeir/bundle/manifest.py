"""The bundle manifest: everything besides the graphs that a device needs to run a restorer (docs/BUNDLE.md is
the specification an independent client follows).

A bundle holds one or more *variants* of the same restorer, each a graph of one of three kinds with a fixed I/O
contract:

* ``restore``: the whole restore of a frame in one graph, what the runtime runs. Inputs ``image`` (1, h, w, 3)
  NHWC at input resolution, uint8 or float32 in [0, 1] (``pixels``) -- inpainting adds ``mask`` (1, H, W, 1)
  uint8 (1 = hole), ``holes`` (N,) int64 flat indices of the holes and ``fill`` (N, 3) float32, their values
  from the host's hole fill; ``noise`` (1, 3K, H, W) float32 standard
  normal at output resolution, where K = 1 + the number of stochastic steps; ``rows`` / ``cols`` (tiles along
  the axis, tile length) int64 and ``row_weights`` / ``col_weights`` float32 of the same shapes, the tiling
  maps of ``edgeir.graphs.layout`` for ``tile``. Output ``restored`` (1, H, W, 3) NHWC, ``pixels`` again.
  ``overlap`` is built in.
* ``sampler``: the sampler loop alone. Inputs ``condition`` (B, C, H, W) in [-1, 1] and ``noise`` (B, 3K, H,
  W); output ``image`` (B, 3, H, W) in [0, 1].
* ``unet``: one network evaluation. Inputs ``x_t`` (B, 3, H, W), ``t`` (B,) float32 training timestep,
  ``condition``; output ``prediction`` (``eps``, ``v`` or ``x0``), driven by the step coefficients recorded
  here (``edgeir.diffusion``). Restore graphs are composed from it, on any machine, without torch.

A latent restorer's bundle (``latent``) samples in its autoencoder's latent space, ``factor`` times smaller: its
noise is latent-sized with the latent's channels per chunk; ``rows`` / ``cols`` index the latent frame and
``row_weights`` / ``col_weights`` weigh the decoded tiles' output pixels (``edgeir.graphs.layout.latent_maps``),
and a UNet conditioned on a latent adds ``pixel_rows`` / ``pixel_cols``, the output-pixel maps its encoder's
tiles are cut by. The bundle carries the autoencoder's graphs, from which restore graphs are composed anew.

Sampler and UNet inputs' H and W must be multiples of ``multiple_of`` (a latent UNet's: of ``multiple_of`` /
``factor``). Validated with pydantic, like every other
config in edgeir; every number must be finite and in its range, since a NaN coefficient gives a black image.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeir.diffusion.latent import LatentSpace
from edgeir.diffusion.steps import Prediction, Sampling, Step, Target, noise_channels
from edgeir.graphs.layout import check as check_layout
from edgeir.tasks import TaskConfig

FORMAT = "edgeir.bundle/3"
GraphKind = Literal["restore", "sampler", "unet"]
Precision = Literal["fp32", "fp16", "int8"]
Pixels = Literal["uint8", "float32"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TensorSpec(_Strict):
    name: str
    # "tiles": (tiles along an axis, tile) index maps; "holes": (holes,) or (holes, channels), one per hole
    layout: Literal["NCHW", "NHWC", "N", "tiles", "holes"]
    channels: int | None = None
    dtype: Literal["float32", "uint8", "int64"] = "float32"
    range: tuple[float, float] | None = None  # None: unbounded (noise, network predictions)


def io_specs(kind: GraphKind, task: str, cond_channels: int, noise: int, pixels: Pixels | None = None,
             sample_channels: int = 3, pixel_maps: bool = False) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The fixed inputs and outputs of a graph of ``kind`` (see the module docstring); ``pixel_maps``: a latent
    restore graph's encoder maps."""
    cond = TensorSpec(name="condition", layout="NCHW", channels=cond_channels, range=(-1.0, 1.0))
    noise_spec = TensorSpec(name="noise", layout="NCHW", channels=noise)
    if kind == "restore":
        px = {"dtype": pixels, "range": (0.0, 255.0) if pixels == "uint8" else (0.0, 1.0)}
        frame = [TensorSpec(name="image", layout="NHWC", channels=3, **px)]
        if task == "inpaint":
            frame += [TensorSpec(name="mask", layout="NHWC", channels=1, dtype="uint8", range=(0.0, 1.0)),
                      TensorSpec(name="holes", layout="holes", dtype="int64"),
                      TensorSpec(name="fill", layout="holes", channels=3, range=(0.0, 1.0))]
        maps = [TensorSpec(name=n, layout="tiles", dtype=t) for n, t in
                (("rows", "int64"), ("cols", "int64"), ("row_weights", "float32"), ("col_weights", "float32"),
                 *((("pixel_rows", "int64"), ("pixel_cols", "int64")) if pixel_maps else ()))]
        return [*frame, noise_spec, *maps], [TensorSpec(name="restored", layout="NHWC", channels=3, **px)]
    if kind == "sampler":
        return ([cond, noise_spec], [TensorSpec(name="image", layout="NCHW", channels=3, range=(0.0, 1.0))])
    return ([TensorSpec(name="x_t", layout="NCHW", channels=sample_channels), TensorSpec(name="t", layout="N"), cond],
            [TensorSpec(name="prediction", layout="NCHW", channels=sample_channels)])


class Variant(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    graph: str  # file inside the bundle
    kind: GraphKind
    format: Literal["onnx", "tensorrt"] = "onnx"
    precision: Precision = "fp32"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # The sampler: sampler and restore graphs have these baked in; a unet graph is driven by them.
    steps: list[Step] = Field(min_length=1, max_length=1000)
    prediction: Prediction = "x0"
    temperature: float = Field(1.0, gt=0, le=2)
    residual_scale: float = Field(1.0, gt=0, le=1000)
    target: Target = "residual"  # the sample is the residual over the condition's base image, or the image
    clip: float | None = Field(None, gt=0)  # the x0 estimate clipped to [-clip, clip]
    sample_channels: int = Field(3, ge=1, le=64)  # channels of the sample denoised: 3, or a latent space's
    # Restore graphs: their tiling (edgeir.graphs.layout) and pixel type, baked in.
    tile: int | None = Field(None, ge=1, le=4096)
    overlap: int | None = Field(None, ge=0)
    pixels: Pixels | None = None
    # INT8 UNet graphs only: per sampler step, activation scales calibrated at that step's timestep (scale
    # constant -> value, edgeir.compress.step_scales); restore graphs are composed from copies of ``graph``
    # holding them, while ``graph`` itself keeps the scales shared by all steps.
    step_scales: list[dict[str, float]] | None = None

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.steps, self.prediction, self.temperature, self.residual_scale, self.target, self.clip)

    @property
    def noise_channels(self) -> int:
        """Initial noise plus fresh noise for each stochastic step, drawn once per frame."""
        return noise_channels(self.steps, self.sample_channels)

    @property
    def cond_channels(self) -> int:
        """The network's condition channels: a restore graph builds them from its frame (and mask)."""
        return next((s.channels or 0 for s in self.inputs if s.name == "condition"),
                    sum(s.channels or 0 for s in self.inputs if s.name in ("image", "mask")))

    @model_validator(mode="after")
    def _check(self) -> Variant:
        for s in self.steps:
            numbers = (s.sqrt_ab, s.sqrt_1mab, s.c_x, s.c_x0, s.sigma)
            if not all(math.isfinite(v) for v in numbers) or s.t < 0 or not (0 <= s.sqrt_ab <= 1 and
                                                                          0 <= s.sqrt_1mab <= 1 and s.sigma >= 0):
                raise ValueError(f"step at t={s.t} has coefficients out of range: {numbers}")
        ts = [s.t for s in self.steps]
        if any(b >= a for a, b in pairwise(ts)):
            raise ValueError(f"step timesteps must be strictly descending, got {ts}")
        given = [v is not None for v in (self.tile, self.overlap, self.pixels)]
        if (self.kind == "restore" and not all(given)) or (self.kind != "restore" and any(given)):
            raise ValueError("tile, overlap and pixels are set for restore graphs, and only for them")
        if self.step_scales is not None and (self.kind != "unet" or self.precision != "int8"
                                             or len(self.step_scales) != len(self.steps)
                                             or not all(v > 0 for d in self.step_scales for v in d.values())):
            raise ValueError(f"variant {self.name}: step_scales are for INT8 UNet graphs, positive, one set per "
                             "step")
        return self

    def check_io(self, task: str, pixel_maps: bool = False) -> None:
        """Its inputs and outputs are the fixed ones of its kind."""
        expected = io_specs(self.kind, task, self.cond_channels, self.noise_channels, self.pixels,
                            self.sample_channels, pixel_maps and self.kind == "restore")
        if (self.inputs, self.outputs) != expected:
            def show(specs):
                return ", ".join(f"{s.name}[{s.dtype} {s.channels or '-'}]" for s in specs)

            raise ValueError(f"variant {self.name}: a {self.kind} graph must map {show(expected[0])} -> "
                             f"{show(expected[1])}, not {show(self.inputs)} -> {show(self.outputs)}")


class LatentGraphFiles(_Strict):
    """A latent restorer's space and the graphs of its autoencoder the bundle carries (``edgeir.export.codec``'s
    I/O): the decoder, and the encoder where the UNet is conditioned on a latent."""

    space: LatentSpace
    decoder: str
    encoder: str | None = None

    @model_validator(mode="after")
    def _check(self) -> LatentGraphFiles:
        if (self.encoder is not None) != (self.space.condition == "latent"):
            raise ValueError("an encoder graph comes with a UNet conditioned on a latent, and only with one")
        return self

    @property
    def files(self) -> list[str]:
        return [f for f in (self.encoder, self.decoder) if f is not None]


class Manifest(_Strict):
    format: Literal["edgeir.bundle/1", "edgeir.bundle/2", "edgeir.bundle/3"] = FORMAT
    task: TaskConfig
    multiple_of: int = Field(ge=1, le=1024)  # graph inputs' H and W must be multiples of this
    min_size: int = Field(ge=1)  # smallest output side the runtime accepts
    tile: int = Field(ge=1, le=4096)  # recommended output tile side (a multiple of multiple_of)
    overlap: int = Field(ge=0)  # recommended overlap between neighbouring tiles, in output pixels
    variants: list[Variant] = Field(min_length=1, max_length=64)  # first = best quality; planning walks them
    producer: dict[str, Any] = Field(default_factory=dict)  # edgeir version, command, source model, ...
    files: dict[str, str] = Field(default_factory=dict)  # bundle-relative path -> sha256 (hex), filled by
    # write_bundle
    latent: LatentGraphFiles | None = None  # a latent restorer's space and autoencoder graphs

    @model_validator(mode="before")
    @classmethod
    def _drop_stale(cls, raw: Any) -> Any:
        """An edgeir.bundle/2 inpainting restore graph took a condition built on the host, which the runtime no
        longer builds: such a bundle keeps its UNet graph, from which ``edgeir export`` composes new ones."""
        if (isinstance(raw, dict) and raw.get("format") == "edgeir.bundle/2" and isinstance(raw.get("task"), dict)
                and raw["task"].get("name") == "inpaint" and isinstance(raw.get("variants"), list)):
            raw = {**raw, "variants": [v for v in raw["variants"] if not (isinstance(v, dict)
                                                                          and v.get("kind") == "restore")]}
        return raw

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if self.tile % self.multiple_of:
            raise ValueError(f"tile {self.tile} is not a multiple of multiple_of {self.multiple_of}")
        if not 0 <= 2 * self.overlap <= self.tile:  # as edgeir.graphs.layout.check allows a restore graph's
            raise ValueError(f"overlap {self.overlap} must be at most half the tile ({self.tile})")
        if self.format == "edgeir.bundle/1" and any(v.kind == "restore" for v in self.variants):
            raise ValueError("an edgeir.bundle/1 manifest has no restore graphs (and no digest to cover them)")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        space = self.latent.space if self.latent else None
        if space is not None and (space.problem(self.task) or self.multiple_of % space.factor):
            raise ValueError(space.problem(self.task) or f"multiple_of {self.multiple_of} is not a multiple of the "
                             f"latent factor {space.factor}")
        for v in self.variants:
            v.check_io(self.task.name, pixel_maps=space is not None and space.condition == "latent")
            cond = space.unet_cond_channels if space and v.kind == "unet" else self.task.cond_channels
            if v.cond_channels != cond:
                raise ValueError(f"variant {v.name}: condition channels differ from the network's {cond}")
            if v.sample_channels != (space.channels if space else 3):
                raise ValueError(f"variant {v.name}: samples {v.sample_channels} channels, not the "
                                 f"{'latent' if space else 'image'}'s {space.channels if space else 3}")
            if v.kind == "restore":
                check_layout(v.tile, v.overlap, self.multiple_of)  # type: ignore[arg-type]
        return self

    @property
    def graphs(self) -> list[str]:
        """Every graph file it names: its variants' and its autoencoder's."""
        return [*(v.graph for v in self.variants), *(self.latent.files if self.latent else [])]

    def variant(self, name: str | None = None) -> Variant:
        """The named variant, or the first the runtime can run."""
        for v in self.variants:
            if v.name == name or (name is None and v.kind == "restore"):
                return v
        raise KeyError(name)


def make_variant(name: str, graph: str, kind: GraphKind, task: str, cond_channels: int, sampling: Sampling,
                 precision: Precision = "fp32", format: Literal["onnx", "tensorrt"] = "onnx",
                 tile: int | None = None, overlap: int | None = None, pixels: Pixels | None = None,
                 latent: LatentSpace | None = None) -> Variant:
    """A variant with the standard I/O of its kind; exporters call this with the restorer's sampling (and a
    latent restorer's space)."""
    channels = latent.channels if latent else 3
    inputs, outputs = io_specs(kind, task, cond_channels, noise_channels(sampling.steps, channels), pixels,
                               channels, latent is not None and latent.condition == "latent")
    return Variant(name=name, graph=graph, kind=kind, format=format, precision=precision, inputs=inputs,
                   outputs=outputs, steps=list(sampling.steps), prediction=sampling.prediction,
                   temperature=sampling.temperature, residual_scale=sampling.residual_scale, target=sampling.target,
                   clip=sampling.clip, sample_channels=channels, tile=tile, overlap=overlap, pixels=pixels)
