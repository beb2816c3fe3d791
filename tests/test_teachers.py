"""The shipped teachers load from inside the package and restore images."""

import numpy as np
import pytest

from edgeir.data.builtin import builtin_images
from edgeir.evaluate import degrade_set
from edgeir.load import TEACHERS, load_restorer


@pytest.mark.parametrize("name", TEACHERS)
def test_shipped_teacher_loads_and_runs(name):
    r = load_restorer(name)
    cfg = r.config
    assert cfg.provenance["iterations"] > 0 and cfg.sampler.steps >= 20
    assert 1e6 < sum(p.numel() for p in r.parameters()) < 5e6  # "a few MB"
    (_, gt, d), = degrade_set(cfg.task, builtin_images("heldout")[:1], size=64)
    out = r.restore(d, seed=0, schedule=r.steps(2))
    assert out.shape == gt.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert np.abs(out - gt).mean() < 0.1  # a trained restorer, not noise


def test_builtin_split_is_disjoint_and_fixed():
    from edgeir.data.builtin import EXTRA, HELDOUT, SPLITS, TRAIN

    assert not set(HELDOUT) & set(TRAIN) and not set(HELDOUT) & set(EXTRA) and not set(TRAIN) & set(EXTRA)
    assert HELDOUT == ("chelsea", "coffee", "rocket", "camera")
    assert SPLITS["wide"] == TRAIN + EXTRA


def test_the_extra_photographs_load_from_the_packages_that_ship_them():
    images = dict(builtin_images("extra"))
    assert set(images) == {"china", "flower", "grace_hopper"}
    for name, im in images.items():
        assert im.dtype == np.float32 and im.ndim == 3 and im.shape[2] == 3 and min(im.shape[:2]) >= 400, name
        assert 0 <= im.min() and im.max() <= 1 and im.std() > 0.1, name  # a photograph, not a blank
