"""Restoration tasks: how an image is degraded, how the network's condition is built from the degraded image,
and what the naive baseline is. numpy + Pillow only, so the runtime builds conditions exactly as training did."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edgeir.tasks.base import Degraded, Task
from edgeir.tasks.deblur import DeblurTask
from edgeir.tasks.inpaint import InpaintTask
from edgeir.tasks.sr import SRTask

TaskConfig = Annotated[SRTask | DeblurTask | InpaintTask, Field(discriminator="name")]

__all__ = ["DeblurTask", "Degraded", "InpaintTask", "SRTask", "Task", "TaskConfig"]
