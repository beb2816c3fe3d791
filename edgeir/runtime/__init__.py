"""Step 4 of the pipeline: run an exported bundle on a device. Imports numpy, Pillow, pydantic and the chosen
backend only: never torch, so device apps can embed it."""

from edgeir.runtime.restorer import Restorer

__all__ = ["Restorer"]
