"""The quantize stage (being written: settings fields and run() are filled in by the quantize work)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from edgeir.compress.stage import StageContext, StageOutput


class QuantizeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["quantize"] = "quantize"


def run(settings: QuantizeSettings, ctx: StageContext) -> StageOutput:
    raise NotImplementedError("quantize stage not implemented yet")
