import numpy as np
import pytest
from scipy.ndimage import correlate, gaussian_filter

from edgeir.data.builtin import builtin_images
from edgeir.metrics import detail_ratio, haarpsi, measure, psnr_y, ssim_y
from edgeir.metrics.fidelity import rgb_to_y


@pytest.fixture(scope="module")
def photo():
    return builtin_images("heldout")[1][1][:128, :160]  # coffee


def test_y_channel_follows_bt601():
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.ones((1, 1, 3)))[0, 0] == pytest.approx(235.0)


def test_psnr_of_a_known_error():
    gt = np.full((8, 8, 3), 100 / 255)
    out = np.full((8, 8, 3), 110 / 255)  # every Y value differs by exactly 10 * 219/255
    expected = 10 * np.log10(255**2 / (10 * 219 / 255) ** 2)
    assert psnr_y(out, gt) == pytest.approx(expected, abs=1e-9)
    assert psnr_y(gt, gt) == float("inf")


def reference_ssim(a, b):
    """Wang et al.'s MATLAB ssim as BasicSR ports it: 11x11 Gaussian (1.5), 'valid' filtering, 8-bit range."""
    k = np.exp(-(np.arange(11) - 5) ** 2 / (2 * 1.5**2))
    w = np.outer(k, k) / np.outer(k, k).sum()
    f = lambda x: correlate(x, w, mode="constant")[5:-5, 5:-5]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    return (((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean()


def test_ssim_matches_the_reference_implementation(photo, rng):
    noisy = np.clip(photo + rng.normal(0, 0.05, photo.shape), 0, 1)
    assert ssim_y(noisy, photo) == pytest.approx(reference_ssim(rgb_to_y(noisy), rgb_to_y(photo)), abs=1e-9)
    assert ssim_y(photo, photo) == pytest.approx(1.0)


def test_haarpsi_is_one_for_identical_images_and_falls_with_distortion(photo, rng):
    assert haarpsi(photo, photo) == pytest.approx(1.0, abs=1e-9)
    scores = [haarpsi(np.clip(photo + rng.normal(0, s, photo.shape), 0, 1), photo) for s in (0.01, 0.05, 0.2)]
    assert 1 > scores[0] > scores[1] > scores[2] > 0
    assert haarpsi(gaussian_filter(photo, (2, 2, 0)), photo) < 0.9


def test_detail_separates_blur_from_detail(photo, rng):
    assert detail_ratio(photo, photo) == pytest.approx(1.0)
    assert detail_ratio(gaussian_filter(photo, (1.5, 1.5, 0)), photo) < 0.1
    assert detail_ratio(np.clip(photo + rng.normal(0, 0.1, photo.shape), 0, 1), photo) > 1.5


def test_blur_raises_psnr_over_noise_but_loses_detail(photo, rng):
    """The trap the brief warns about: a blurry mean can beat a detailed sample on PSNR, never on detail."""
    detailed = np.clip(photo + rng.normal(0, 0.08, photo.shape), 0, 1)
    blurry = gaussian_filter(detailed, (1.2, 1.2, 0))
    m_detailed, m_blurry = measure(detailed, photo), measure(blurry, photo)
    assert m_blurry["psnr"] > m_detailed["psnr"]
    assert m_blurry["detail"] < 0.5 < m_detailed["detail"]


def test_measure_crops_the_border(photo):
    out = photo.copy()
    out[:2] = 0
    assert measure(out, photo, crop=2)["psnr"] == float("inf")
