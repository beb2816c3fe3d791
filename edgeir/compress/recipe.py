"""Recipes: what ``edgeir compress`` does, as a YAML file validated at the edge.

A recipe names the teacher and its task, the data (training images for the stages, held-out ground truth for
the gates), the stages in order with each stage's own settings and quality gates, and the target budgets::

    name: sr4x-quick
    teacher: sr4x                 # a shipped teacher's name or a model folder
    task: sr                      # must match the teacher's task
    seed: 0
    data: {train: builtin, eval: builtin, eval_size: 64, eval_images: 2}
    stages:
      - kind: distill
        method: direct
        steps: 1
        gates: {min_detail_kept: 0.5, max_psnr_drop: 1.0}
    targets: {latency_ms: 50}

Paths are relative to the current directory. Any mistake is reported as one line naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeir.compress.decoder import DecoderSettings
from edgeir.compress.distill import DistillSettings
from edgeir.compress.gates import Gates
from edgeir.compress.prune import PruneSettings
from edgeir.compress.quantize import QuantizeSettings
from edgeir.configfile import read_yaml
from edgeir.errors import ConfigError, validation_message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Strict):
    # "builtin" (the photographs the teachers learned from), "builtin-wide" (those and the other photographs
    # installed packages ship: distillation needs no ground truth, so it can learn from pictures the teacher
    # never saw) or a folder of images
    train: str = "builtin"
    eval: str = "builtin"  # "builtin" (the held-out photographs) or a folder of ground-truth images
    eval_size: int = Field(128, ge=16, le=4096)  # centre crop of each evaluation image, in output pixels
    eval_images: int | None = Field(None, ge=1)  # only the first N evaluation images


class Targets(_Strict):
    """Budgets the final model should meet; reported, not enforced (the gates are what stop a run)."""

    latency_ms: float | None = Field(None, gt=0)  # per image at the eval size, as the pipeline measures it
    size_mb: float | None = Field(None, gt=0)  # smallest deployable file the last stage produced


class _Gated(BaseModel):
    gates: Gates = Field(default_factory=Gates)


# Each recipe stage is the stage's own settings plus the gates its output must pass.
class DistillStage(DistillSettings, _Gated):
    pass


class PruneStage(PruneSettings, _Gated):
    pass


class QuantizeStage(QuantizeSettings, _Gated):
    pass


class DecoderStage(DecoderSettings, _Gated):
    pass


Stage = Annotated[DistillStage | PruneStage | QuantizeStage | DecoderStage, Field(discriminator="kind")]


class Recipe(_Strict):
    name: str = Field(min_length=1)
    teacher: str = Field(min_length=1)
    task: Literal["sr", "deblur", "inpaint"]
    seed: int = 0
    data: DataSettings = Field(default_factory=DataSettings)
    stages: list[Stage] = Field(min_length=1)
    targets: Targets = Field(default_factory=Targets)


def parse_recipe(raw: object, source: str = "recipe") -> Recipe:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of recipe fields, got {type(raw).__name__}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {validation_message(e)}") from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such recipe file")
    return parse_recipe(read_yaml(path, "recipe"), str(path))
