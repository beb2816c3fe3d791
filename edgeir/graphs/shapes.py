"""Shape ranges for dynamic graph inputs: what a TensorRT optimisation profile is built from and what the
readiness check holds every dynamic dimension to.

Our graphs name their dynamic dimensions (``batch``, ``height``, ``width``), so a profile is one
``min:opt:max`` range per name, and every input's min/opt/max shapes follow from the graph itself.
"""

from __future__ import annotations

import onnx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeir.errors import ConfigError

Shape = tuple[int, ...]


class DimRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(ge=1)
    opt: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> DimRange:
        if not self.min <= self.opt <= self.max:
            raise ValueError(f"need min <= opt <= max, got {self.min}:{self.opt}:{self.max}")
        return self

    @classmethod
    def parse(cls, text: str, what: str) -> DimRange:
        """``"N"`` (fixed) or ``"MIN:OPT:MAX"``."""
        parts = text.split(":")
        try:
            values = [int(p) for p in parts]
            if len(values) == 1:
                values *= 3
            if len(values) != 3:
                raise ValueError("expected N or MIN:OPT:MAX")
            return cls(min=values[0], opt=values[1], max=values[2])
        except ValueError as e:
            msg = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)
            raise ConfigError(f"{what} {text!r}: {msg.removeprefix('Value error, ')}") from None


ShapeProfile = dict[str, DimRange]


def image_profile(batch: DimRange, size: DimRange) -> ShapeProfile:
    """The profile of every edgeir graph: height and width share one range (tiles are square)."""
    return {"batch": batch, "height": size, "width": size}


def with_latent(profile: ShapeProfile, factor: int) -> ShapeProfile:
    """``profile`` (in output pixels) with a latent restorer's latent sides, ``factor`` times smaller."""
    if factor == 1:
        return profile
    sides = {k: DimRange(min=-(-r.min // factor), opt=-(-r.opt // factor), max=-(-r.max // factor))
             for k, r in profile.items() if k in ("height", "width")}
    return {**profile, **{f"latent_{k}": r for k, r in sides.items()}}


def multiple_problems(profile: ShapeProfile, multiple_of: int) -> list[str]:
    """Spatial ranges the network cannot take (its inputs must be multiples of ``multiple_of``)."""
    return [f"profile {name} {r.min}:{r.opt}:{r.max} has sizes that are not multiples of {multiple_of}"
            for name, r in profile.items() if name in ("height", "width")
            and any(v % multiple_of for v in (r.min, r.opt, r.max))]


def dynamic_dims(model: onnx.ModelProto) -> dict[str, list[str | None]]:
    """Per graph input, each dimension's name if it is dynamic (None for an unnamed dynamic one) or '' if
    it is fixed."""
    out = {}
    initializers = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        out[inp.name] = ["" if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
                         for d in dims]
    return out


def unbounded(model: onnx.ModelProto, profile: ShapeProfile) -> list[str]:
    """Dynamic input dimensions that ``profile`` does not bound."""
    problems = []
    for name, dims in dynamic_dims(model).items():
        for axis, dim in enumerate(dims):
            if dim is None:
                problems.append(f"input {name} axis {axis} is dynamic and unnamed: no profile can bound it")
            elif dim and dim not in profile:
                problems.append(f"input {name} axis {axis} ({dim}) is dynamic with no optimisation profile range")
    return problems


def input_shapes(model: onnx.ModelProto, profile: ShapeProfile) -> dict[str, tuple[Shape, Shape, Shape]]:
    """min/opt/max shapes of every graph input under ``profile``."""
    problems = unbounded(model, profile)
    if problems:
        raise ConfigError(problems[0])
    shapes = {}
    for inp in model.graph.input:
        if inp.name not in dynamic_dims(model):
            continue
        dims = inp.type.tensor_type.shape.dim
        shapes[inp.name] = tuple(
            tuple(getattr(profile[d.dim_param], k) if d.dim_param else d.dim_value for d in dims)
            for k in ("min", "opt", "max"))
    return shapes  # type: ignore[return-value]


def frame_profile(scale: int, tile: int, overlap: int, multiple_of: int, frame: DimRange, factor: int = 1
                  ) -> ShapeProfile:
    """The named dimensions of a restore graph (``edgeir.graphs.restore``) for output frames whose sides range
    over ``frame``: input sides, output sides, tile counts and tile lengths, inpainting's hole count; a latent
    restorer's (``factor`` > 1) adds the latent's sides and its decoded tiles' lengths."""
    from edgeir.graphs.layout import span

    def side(f) -> DimRange:
        return DimRange(min=f(frame.min), opt=f(frame.opt), max=f(frame.max))

    def latent(s: int) -> int:
        return -(-s // factor)

    inputs = side(lambda s: -(-s // scale))
    tiles, lengths = (side(lambda s, i=i: span(latent(s), tile // factor, overlap // factor,
                                               multiple_of // factor)[i]) for i in (0, 1))
    # Inpainting's holes: at least one (a frame without holes gets one that keeps its pixel), at most all.
    holes = DimRange(min=1, opt=max(1, frame.opt * frame.opt // 16), max=frame.max * frame.max)
    profile = {"height": frame, "width": frame, "in_height": inputs, "in_width": inputs, "tiles_y": tiles,
               "tiles_x": tiles, "tile_height": lengths, "tile_width": lengths, "holes": holes}
    if factor > 1:
        pixels = DimRange(min=lengths.min * factor, opt=lengths.opt * factor, max=lengths.max * factor)
        sides = side(latent)
        profile.update(latent_height=sides, latent_width=sides, pixel_tile_height=pixels, pixel_tile_width=pixels)
    return profile
