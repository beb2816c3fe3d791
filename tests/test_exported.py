"""The shipped bundles in exported/ load (checksums verified) and restore on a fresh clone."""

from pathlib import Path

import numpy as np
import pytest

from edgeir.runtime import Restorer

EXPORTED = Path(__file__).resolve().parents[1] / "exported"


@pytest.mark.parametrize("name", sorted(p.name for p in EXPORTED.iterdir() if (p / "manifest.json").exists()))
def test_shipped_bundle_restores(name):
    r = Restorer.load(EXPORTED / name, backend="ort-cpu")
    s = r.task.scale
    rng = np.random.default_rng(0)
    lr = (rng.uniform(0, 1, (40, 48, 3)) * 255).astype(np.uint8)
    mask = np.zeros((40, 48), bool)
    mask[10:20, 5:30] = True
    out = r.restore(lr, seed=0, mask=mask if r.task.name == "inpaint" else None)
    assert out.shape == (40 * s, 48 * s, 3) and out.dtype == np.uint8
    assert r.describe()["precision"] == "int8"
    if r.task.name == "inpaint":
        assert np.array_equal(out[~mask], lr[~mask])


def test_every_task_ships():
    assert {p.name for p in EXPORTED.iterdir() if (p / "manifest.json").exists()} == {"sr4x", "deblur", "inpaint"}
