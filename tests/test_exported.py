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
    lr = (np.random.default_rng(0).uniform(0, 1, (40, 48, 3)) * 255).astype(np.uint8)
    out = r.restore(lr, seed=0)
    assert out.shape == (40 * s, 48 * s, 3) and out.dtype == np.uint8
    assert r.describe()["precision"] == "int8"


def test_sr4x_ships():
    assert (EXPORTED / "sr4x" / "manifest.json").exists()
