"""The prune stage (being written: settings fields and run() are filled in by the prune work)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from edgeir.compress.stage import StageContext, StageOutput


class PruneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["prune"] = "prune"


def run(settings: PruneSettings, ctx: StageContext) -> StageOutput:
    raise NotImplementedError("prune stage not implemented yet")
