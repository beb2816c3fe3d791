"""The built-in dataset: photographs that installed packages ship inside their wheels, so training and
evaluation work with no download. The split is fixed and documented in the README:

* held out (evaluation only): chelsea, coffee, rocket, camera
* training: everything else scikit-image ships that is listed in ``TRAIN``; the teachers learned from these.
* extra: the photographs scikit-learn and matplotlib ship (``EXTRA``). No teacher saw them. Distillation
  needs only the teacher's inputs, never ground truth, so it can learn the teacher's behaviour on pictures
  the teacher was not trained on (recipe data ``train: builtin-wide`` = training + extra).

Synthetic images (checkerboard, logo, colour wheel) are left out: they teach nothing about photographs.
"""

from __future__ import annotations

import numpy as np

from edgeir.errors import ConfigError

HELDOUT = ("chelsea", "coffee", "rocket", "camera")
TRAIN = ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "motorcycle_left",
         "motorcycle_right", "brick", "grass", "gravel", "clock", "coins", "moon", "page", "text", "cell")
EXTRA = ("china", "flower", "grace_hopper")
SPLITS = {"train": TRAIN, "heldout": HELDOUT, "extra": EXTRA, "wide": TRAIN + EXTRA}
# The training splits a recipe's data.train may name; anything else there is a folder of images.
BUILTIN_TRAIN = {"builtin": "train", "builtin-wide": "wide"}


def _pixels(name: str):
    if name in ("china", "flower"):
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            raise ConfigError(f"the built-in photograph {name!r} is scikit-learn's: "
                              "pip install scikit-learn (edgeir[compress] has it)") from None
        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
            return im.convert("RGB")
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(data, name)()


def _load(name: str) -> np.ndarray:
    arr = np.asarray(_pixels(name), dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    return arr[..., :3]


def builtin_images(split: str) -> list[tuple[str, np.ndarray]]:
    """``split`` is "train", "heldout", "extra" or "wide" (train + extra); images are float32 HxWx3 in
    [0, 1]."""
    return [(n, _load(n)) for n in SPLITS[split]]
