import numpy as np
import pytest
from pydantic import TypeAdapter
from skimage.restoration import inpaint_biharmonic

from edgeir.tasks import InpaintTask, TaskConfig
from edgeir.tasks.fill import biharmonic_fill, pyramid_fill


def _ramp_with_hole(n: int = 48):
    y, x = np.mgrid[0:n, 0:n] / n
    img = np.stack([x, y, 0.3 + 0.4 * x * y], -1).astype(np.float32)
    mask = np.zeros((n, n), bool)
    mask[12:30, 8:36] = True
    return img, mask


def test_biharmonic_fill_continues_gradients_where_the_pyramid_fill_flattens():
    img, mask = _ramp_with_hole()
    bi, pyr = biharmonic_fill(img, mask, iterations=64), pyramid_fill(img, mask)
    # a linear ramp solves Δ²u = 0, so a converged fill reproduces it; the membrane-like pyramid cannot
    assert np.abs(bi - img)[mask][:, :2].max() < 0.01
    assert np.abs(pyr - img)[mask][:, :2].max() > 5 * np.abs(bi - img)[mask][:, :2].max()
    for filled in (bi, pyr):
        assert filled.dtype == np.float32
        np.testing.assert_array_equal(filled[~mask], img[~mask])


def test_biharmonic_fill_matches_scikit_image_away_from_the_border(rng):
    y, x = np.mgrid[0:64, 0:64] / 64
    img = np.stack([np.sin(3 * x + 2 * y), np.cos(4 * y) * x, x * x - y], -1).astype(np.float32) * 0.4 + 0.5
    img += rng.uniform(0, 0.01, img.shape).astype(np.float32)
    mask = np.zeros((64, 64), bool)
    mask[20:34, 18:40] = True
    mask[44:48, 10:54] = True
    exact = inpaint_biharmonic(img, mask, channel_axis=-1)
    ours = biharmonic_fill(img, mask, iterations=32)
    assert np.abs(ours - exact)[mask].max() < 0.01
    assert np.abs(ours - exact)[mask].max() < 0.2 * np.abs(pyramid_fill(img, mask) - exact)[mask].max()


@pytest.mark.parametrize("fill", [pyramid_fill, biharmonic_fill])
def test_fills_handle_no_holes_all_holes_and_odd_sizes(fill, rng):
    img = rng.uniform(0, 1, (37, 23, 3)).astype(np.float32)
    np.testing.assert_array_equal(fill(img, np.zeros((37, 23), bool)), img)
    everything = fill(img, np.ones((37, 23), bool))
    assert everything.shape == img.shape and np.isfinite(everything).all()
    mask = rng.uniform(size=(37, 23)) < 0.3
    out = fill(img, mask)
    assert np.isfinite(out).all() and out[mask].min() >= 0 and out[mask].max() <= 1


def test_the_inpainting_condition_uses_the_fill_its_config_names(rng):
    img, _ = _ramp_with_hole()
    task = InpaintTask(fill="biharmonic")
    d = task.degrade(img, rng)
    np.testing.assert_array_equal(task.condition(d)[..., :3], biharmonic_fill(d.image, d.mask) * 2 - 1)
    np.testing.assert_array_equal(InpaintTask().condition(d)[..., :3], pyramid_fill(d.image, d.mask) * 2 - 1)
    # configs written before the field existed keep the fill their model was trained on
    parse = TypeAdapter(TaskConfig).validate_python
    assert parse({"name": "inpaint", "cond_channels": 4}).fill == "pyramid"
    assert parse(task.model_dump()).fill == "biharmonic"
