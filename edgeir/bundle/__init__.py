"""The bundle: the deployable folder (or ``.edgeir`` zip) that ``edgeir.export`` writes and ``edgeir.runtime``
loads, its manifest schema and the verified reading and writing of it. Torch-free and onnx-free, so both sides
and an independent client stand on the same definition (docs/BUNDLE.md)."""

from edgeir.bundle.io import MANIFEST, SUFFIX, Bundle, load_bundle, write_bundle
from edgeir.bundle.manifest import Manifest, Variant, make_variant

__all__ = ["MANIFEST", "SUFFIX", "Bundle", "Manifest", "Variant", "load_bundle", "make_variant", "write_bundle"]
