"""The built-in dataset: photographs that scikit-image ships inside its wheel, so training and evaluation
work with no download. The split is fixed and documented in the README:

* held out (evaluation only): chelsea, coffee, rocket, camera
* training: everything else listed in ``TRAIN``.

Synthetic images (checkerboard, logo, colour wheel) are left out: they teach nothing about photographs.
"""

from __future__ import annotations

import numpy as np

HELDOUT = ("chelsea", "coffee", "rocket", "camera")
TRAIN = ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
         "motorcycle_right", "brick", "grass", "gravel", "clock", "coins", "moon", "page", "text", "cell")


def _load(name: str) -> np.ndarray:
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        arr = left if name.endswith("left") else right
    else:
        arr = getattr(data, name)()
    arr = np.asarray(arr, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    return arr[..., :3]


def builtin_images(split: str) -> list[tuple[str, np.ndarray]]:
    """``split`` is "train" or "heldout"; images are float32 HxWx3 in [0, 1]."""
    names = {"train": TRAIN, "heldout": HELDOUT}[split]
    return [(n, _load(n)) for n in names]
