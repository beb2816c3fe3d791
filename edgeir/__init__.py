"""edgeir: take a trained diffusion image restorer, make it small and fast, ship it to edge GPUs.

The package reads in pipeline order: ``load`` -> ``compress`` -> ``export`` -> ``runtime``. Importing the
top-level package pulls in no torch so that ``edgeir.runtime`` stays usable on devices without it.
"""

__version__ = "0.1.0"
