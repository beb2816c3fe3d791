"""Step 1 of the pipeline: load a restorer (our folder format, a diffusers UNet2DModel folder, a shipped
teacher by name, or any torch module through an adapter). Never unpickles untrusted files."""

from edgeir.load.checkpoint import load_restorer, save_restorer
from edgeir.load.zoo import TEACHERS, resolve

__all__ = ["TEACHERS", "load_restorer", "resolve", "save_restorer"]
