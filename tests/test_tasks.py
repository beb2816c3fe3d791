import numpy as np
import pytest

from edgeir.tasks import DeblurTask, InpaintTask, SRTask
from edgeir.tasks.deblur import gaussian_kernel, motion_kernel
from edgeir.tasks.fill import pyramid_fill


@pytest.fixture
def gt(rng):
    y, x = np.mgrid[0:64, 0:48] / 64
    return np.clip(np.stack([y, x, (x + y) / 2], -1) + rng.uniform(0, 0.05, (64, 48, 3)), 0, 1).astype(np.float32)


@pytest.mark.parametrize("task", [SRTask(scale=2), SRTask(scale=4), SRTask(scale=4, noise_sigma=0.05,
                                                                             jpeg_quality=70)])
def test_sr_shapes_and_ranges(task, gt, rng):
    d = task.degrade(gt, rng)
    assert d.image.shape == (64 // task.scale, 48 // task.scale, 3) and d.image.dtype == np.float32
    assert 0 <= d.image.min() and d.image.max() <= 1
    cond = task.condition(d)
    assert cond.shape == (64, 48, 3) and -1.1 <= cond.min() and cond.max() <= 1.1  # bicubic overshoots a little
    assert task.baseline(d).shape == (64, 48, 3)


def test_sr_crops_ground_truth_to_the_scale(rng):
    d = SRTask(scale=4).degrade(np.zeros((66, 50, 3), np.float32), rng)
    assert d.image.shape == (16, 12, 3)


@pytest.mark.parametrize("kernel", ["gaussian", "motion", "mixed"])
def test_deblur_shapes_ranges_and_blur(kernel, gt, rng):
    task = DeblurTask(kernel=kernel)
    d = task.degrade(gt, rng)
    assert d.image.shape == gt.shape and 0 <= d.image.min() and d.image.max() <= 1
    np.testing.assert_allclose(task.baselines()["blurred input"](d), d.image, atol=1e-6)
    assert np.abs(d.image - gt).mean() > 0.002  # it really blurred
    assert task.baseline(d).shape == gt.shape and d.kernel is not None  # the deconvolution knows the kernel


def test_blur_kernels_are_normalised():
    for k in (gaussian_kernel(0.7), gaussian_kernel(2.5), motion_kernel(5, 0), motion_kernel(12, 33)):
        assert k.sum() == pytest.approx(1.0) and k.shape[0] % 2 == 1


def test_inpaint_condition_mask_and_composition(gt, rng):
    task = InpaintTask()
    d = task.degrade(gt, rng)
    assert d.mask.shape == gt.shape[:2] and 0 < d.mask.mean() <= task.max_coverage
    cond = task.condition(d)
    assert cond.shape == (64, 48, 4)
    np.testing.assert_array_equal(cond[..., 3] > 0, d.mask)
    np.testing.assert_allclose(cond[~d.mask, :3], gt[~d.mask] * 2 - 1, atol=1e-6)
    composed = task.compose(np.zeros_like(gt), d)
    np.testing.assert_array_equal(composed[~d.mask], gt[~d.mask])
    assert (composed[d.mask] == 0).all()
    base = task.baseline(d)
    assert base.shape == gt.shape and np.abs(base - gt)[d.mask].mean() < 0.1


def test_pyramid_fill_reproduces_smooth_images():
    y, x = np.mgrid[0:40, 0:40] / 40
    img = np.stack([x, y, x * 0 + 0.5], -1).astype(np.float32)
    mask = np.zeros((40, 40), bool)
    mask[10:20, 15:30] = True
    filled = pyramid_fill(img, mask)
    assert np.abs(filled - img)[mask].max() < 0.15  # smooth content is filled closely
    np.testing.assert_array_equal(filled[~mask], img[~mask])


def test_degradations_are_reproducible(gt):
    for task in (SRTask(), DeblurTask(), InpaintTask()):
        a = task.degrade(gt, np.random.default_rng(5))
        b = task.degrade(gt, np.random.default_rng(5))
        np.testing.assert_array_equal(a.image, b.image)
