import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from edgeir.errors import ConfigError
from edgeir.metrics import psnr_y
from edgeir.tasks import DeblurTask, Degraded, InpaintTask, SRTask
from edgeir.tasks.base import add_noise, jpeg, resize
from edgeir.tasks.deblur import blur, deconvolve, gaussian_kernel, motion_kernel
from edgeir.tasks.degradations import anisotropic_gaussian_kernel, second_order
from edgeir.tasks.sr import denoise


@pytest.fixture
def smooth():
    """A smooth colour ramp: whatever fine structure a degradation leaves on it, the degradation made."""
    y, x = np.mgrid[0:128, 0:128] / 128
    return (np.stack([y, x, (x + y) / 2], -1) * 0.8 + 0.1).astype(np.float32)


@pytest.fixture
def photo():
    from edgeir.data.builtin import builtin_images

    return builtin_images("heldout")[0][1][100:196, 100:196]


def high_frequency(img):
    return float(np.std(img - gaussian_filter(img, (1.5, 1.5, 0))))


def blockiness(img):
    """Mean jump across JPEG's 8-pixel block edges over the mean jump elsewhere: 1 without blocks."""
    d = np.abs(np.diff(img.mean(-1), axis=1))
    edge = np.arange(d.shape[1]) % 8 == 7
    return d[:, edge].mean() / d[:, ~edge].mean()


def test_real_is_deterministic_under_a_seed(photo):
    a, b, c = (second_order(photo, 4, np.random.default_rng(s)) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (24, 24, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, c)


def test_clean_is_the_old_degradation(photo):
    """Bit for bit what SRTask and DeblurTask did before degradations had names, from the same generator."""
    for task in (SRTask(), SRTask(noise_sigma=0.03, jpeg_quality=70)):
        rng = np.random.default_rng(1)
        lr = add_noise(np.clip(resize(photo, (24, 24)), 0, 1), task.noise_sigma, rng)
        lr = jpeg(lr, task.jpeg_quality) if task.jpeg_quality else lr
        np.testing.assert_array_equal(task.degrade(photo, np.random.default_rng(1)).image, lr)
    task = DeblurTask(noise_sigma=0.01)
    rng = np.random.default_rng(2)
    kernel = task.sample_kernel(rng)
    old = add_noise(np.clip(blur(photo, kernel), 0, 1), 0.01, rng)
    d = task.degrade(photo, np.random.default_rng(2))
    np.testing.assert_array_equal(d.image, old)
    np.testing.assert_array_equal(d.kernel, kernel)


def test_configs_without_the_field_load_as_clean():
    for task in (SRTask.model_validate({"name": "sr", "scale": 4, "cond_channels": 3, "noise_sigma": 0.0,
                                        "jpeg_quality": None}),
                 DeblurTask.model_validate({"name": "deblur"}), InpaintTask.model_validate({"name": "inpaint"})):
        assert task.degradation == "clean"


def test_real_adds_noise_and_jpeg_blocks(smooth):
    clean = SRTask(scale=2).degrade(smooth, np.random.default_rng(0)).image
    real = [SRTask(scale=2, degradation="real").degrade(smooth, np.random.default_rng(s)).image for s in range(8)]
    assert all(high_frequency(r) > 3 * high_frequency(clean) for r in real)
    assert blockiness(clean) < 1.02 and np.mean([blockiness(r) for r in real]) > 1.15


def test_unknown_or_inapplicable_degradation_is_one_clear_error():
    with pytest.raises(ConfigError, match="no degradation 'nope' .*clean, real"):
        SRTask().with_degradation("nope")
    with pytest.raises(ConfigError, match="deblur task has no degradation 'real'"):
        DeblurTask().with_degradation("real")
    assert SRTask().with_degradation("real").degradation == "real"


def test_kernels_are_normalised_and_oriented():
    k = anisotropic_gaussian_kernel(3.0, 0.5, 0.0, 15)
    assert k.sum() == pytest.approx(1.0) and k.shape == (15, 15)
    assert k[7].sum() > 3 * k[:, 7].sum()  # long along x
    np.testing.assert_allclose(anisotropic_gaussian_kernel(3.0, 0.5, np.pi / 2, 15), k.T, atol=1e-12)


@pytest.mark.parametrize("kernel", [gaussian_kernel(2.0), motion_kernel(9, 0), motion_kernel(9, 30)])
def test_deconvolution_with_the_known_kernel_beats_the_blurred_input(photo, kernel):
    blurred = np.clip(blur(photo, kernel), 0, 1)
    for method in ("wiener", "richardson_lucy"):
        # oblique motion gains least: the mirrored copies Wiener tiles with were blurred by mirrored kernels
        assert psnr_y(deconvolve(blurred, kernel, method), photo) > psnr_y(blurred, photo) + 0.1, method
    task = DeblurTask()
    d = Degraded(blurred, kernel=kernel)
    np.testing.assert_array_equal(task.baseline(d), deconvolve(blurred, kernel, "wiener"))
    # as the runtime builds it, without a kernel: nothing to invert, the blurred image is the baseline
    np.testing.assert_allclose(task.baseline(Degraded(blurred)), blurred, atol=1e-6)


def test_sr_baseline_denoises_only_noisy_inputs(photo, smooth):
    noisy = np.clip(smooth + np.random.default_rng(0).normal(0, 0.03, smooth.shape), 0, 1).astype(np.float32)
    assert high_frequency(denoise(noisy, "nl_means")) < 0.5 * high_frequency(noisy)
    d = SRTask().degrade(photo, np.random.default_rng(0))
    np.testing.assert_array_equal(SRTask().baseline(d), SRTask().baselines()["bicubic"](d))
    real = SRTask(degradation="real")
    assert list(real.baselines()) == ["bicubic + NL-means", "bicubic"]
    np.testing.assert_array_equal(real.baseline(d), denoise(real.bicubic(d), "nl_means"))
