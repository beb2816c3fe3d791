"""Step 4 of the pipeline: run an exported bundle on a device. Imports numpy, Pillow, pydantic and the chosen
backend only: never torch, so device apps can embed it."""

from edgeir.runtime.bundle import Bundle, load_bundle, write_bundle
from edgeir.runtime.manifest import Manifest, Variant, make_variant
from edgeir.runtime.restorer import Restorer

__all__ = ["Bundle", "Manifest", "Restorer", "Variant", "load_bundle", "make_variant", "write_bundle"]
