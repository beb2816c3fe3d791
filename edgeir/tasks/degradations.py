"""Named degradations: what happened to a picture before a model sees it.

``clean`` is each task's own ``degrade`` (super-resolution: bicubic downsampling, plus the noise and JPEG its
config names), what every model made so far was trained and measured on. ``real`` imitates what real
photographs go through, after Real-ESRGAN's second-order pipeline (Wang et al., 2021): blur (isotropic or
anisotropic Gaussian, or motion), a resize by a random factor and resample method, Gaussian or Poisson noise
(per channel or the same on all three), JPEG at a random quality; then all of it again, milder, with the
final resize to the low resolution and the last JPEG in random order. Its strengths are milder than
Real-ESRGAN's (whose first resize goes down to 0.15x and whose noise up to 30/255): the teachers are small and
the held-out crops are 256 pixels, so the low-resolution input is 64.

Everything is drawn from the ``np.random.Generator`` passed in, so a seed fixes the whole pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgeir.tasks.base import jpeg, resize
from edgeir.tasks.deblur import blur, motion_kernel

RESAMPLE = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Order:
    """The strengths of one pass of the pipeline (sigmas and noise on a 0-1 scale)."""

    blur_prob: float
    blur_sigma: tuple[float, float]
    resize: tuple[float, float]  # factor range; 0.2 of the draws upsample, 0.7 downsample, 0.1 keep the size
    noise_sigma: tuple[float, float]
    poisson_scale: tuple[float, float]
    jpeg_quality: tuple[int, int]


FIRST = Order(1.0, (0.2, 3.0), (0.5, 1.5), (1 / 255, 20 / 255), (0.05, 2.0), (40, 95))
SECOND = Order(0.8, (0.2, 1.5), (0.7, 1.2), (1 / 255, 10 / 255), (0.05, 1.0), (60, 95))


def anisotropic_gaussian_kernel(sigma_x: float, sigma_y: float, angle_rad: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` (odd) Gaussian with standard deviations ``sigma_x``, ``sigma_y`` along axes rotated
    by ``angle_rad``; equal sigmas give the isotropic one."""
    r = size // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    u, v = c * x + s * y, -s * x + c * y
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def random_kernel(rng: np.random.Generator, sigma: tuple[float, float]) -> np.ndarray:
    """Isotropic Gaussian (40%), anisotropic Gaussian (40%) or linear motion (20%), 7 to 21 pixels wide."""
    size = int(rng.choice(np.arange(7, 22, 2)))
    kind = rng.choice(3, p=[0.4, 0.4, 0.2])
    if kind == 0:
        s = rng.uniform(*sigma)
        return anisotropic_gaussian_kernel(s, s, 0.0, size)
    if kind == 1:
        return anisotropic_gaussian_kernel(rng.uniform(*sigma), rng.uniform(*sigma), rng.uniform(0, np.pi), size)
    return motion_kernel(int(rng.integers(3, size // 2 + 4)), float(rng.uniform(0, 180)))


def random_resize(image: np.ndarray, size_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Resize to ``size_hw`` with a resample method drawn from area, bilinear, bicubic and Lanczos: each leaves
    its own aliasing and ringing, which a model should not come to rely on."""
    return np.clip(resize(image, size_hw, RESAMPLE[int(rng.integers(len(RESAMPLE)))]), 0, 1)


def random_noise(image: np.ndarray, order: Order, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (half the time) or Poisson noise, per channel or, 40% of the time, the same on all three (as
    a sensor's luminance noise is)."""
    grey = rng.uniform() < 0.4
    if rng.uniform() < 0.5:
        noise = rng.normal(0, rng.uniform(*order.noise_sigma), image.shape[:2] + ((1,) if grey else (3,)))
    else:
        # Photon counts of an 8-bit sensor: variance proportional to intensity
        scale = rng.uniform(*order.poisson_scale)
        src = (image @ LUMA)[..., None] if grey else image
        noise = scale * (rng.poisson(np.clip(src, 0, 1) * 255) / 255 - src)
    return np.clip(image + noise, 0, 1).astype(np.float32)


def _scale_factor(order: Order, rng: np.random.Generator) -> float:
    kind = rng.choice(3, p=[0.2, 0.7, 0.1])
    lo, hi = order.resize
    return (rng.uniform(1, hi), rng.uniform(lo, 1), 1.0)[kind]


def _pass(image: np.ndarray, order: Order, size_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One order's blur, resize to ``size_hw`` times a random factor, and noise."""
    if rng.uniform() < order.blur_prob:
        image = np.clip(blur(image, random_kernel(rng, order.blur_sigma)), 0, 1)
    f = _scale_factor(order, rng)
    image = random_resize(image, (max(1, round(size_hw[0] * f)), max(1, round(size_hw[1] * f))), rng)
    return random_noise(image, order, rng)


def second_order(gt: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """``gt`` (HxWx3 in [0, 1], H and W multiples of ``scale``) -> its (H/scale)x(W/scale) low-resolution
    version, degraded twice."""
    lr_hw = (gt.shape[0] // scale, gt.shape[1] // scale)
    image = _pass(gt.astype(np.float32), FIRST, gt.shape[:2], rng)
    image = jpeg(image, int(rng.integers(FIRST.jpeg_quality[0], FIRST.jpeg_quality[1] + 1)))
    image = _pass(image, SECOND, lr_hw, rng)
    quality = int(rng.integers(SECOND.jpeg_quality[0], SECOND.jpeg_quality[1] + 1))
    if rng.uniform() < 0.5:
        return jpeg(random_resize(image, lr_hw, rng), quality)
    return random_resize(jpeg(image, quality), lr_hw, rng)


# name -> (ground truth, scale, rng) -> low-resolution image; "clean" is each task's own degrade
DEGRADATIONS = {"real": second_order}
NAMES = ("clean", *DEGRADATIONS)
