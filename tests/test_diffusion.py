"""Sampler maths against closed forms. With Gaussian data x0 ~ N(0, s^2) the exact x0-denoiser is
E[x0 | x_t] = sqrt(ab) s^2 / (ab s^2 + 1 - ab) * x_t and the probability-flow ODE keeps x_t / std(x_t) fixed."""

import numpy as np
import pytest

from edgeir.diffusion.sample import sample
from edgeir.diffusion.schedules import alphas_cumprod, spaced_timesteps
from edgeir.diffusion.steps import apply_step, ddim_steps, to_x0

S = 0.5  # data standard deviation


def gaussian_denoiser(x, step):
    ab = step.sqrt_ab**2
    return step.sqrt_ab * S**2 / (ab * S**2 + 1 - ab) * x


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_with_all_steps_follows_the_ode(kind):
    ab = alphas_cumprod(kind, 1000)
    x_T = np.random.default_rng(0).standard_normal(10_000)
    out = sample(gaussian_denoiser, x_T, ddim_steps(ab, list(range(999, -1, -1)), eta=0.0))
    # ODE solution: x0 = x_T * std(x_0) / std(x_T)
    expected = x_T * S / np.sqrt(ab[999] * S**2 + 1 - ab[999])
    np.testing.assert_allclose(out, expected, rtol=2e-3, atol=2e-3)


def test_ddim_is_exact_for_a_point_mass_at_any_step_count():
    ab = alphas_cumprod("cosine", 1000)
    x = np.random.default_rng(1).standard_normal(100)
    for n in (1, 2, 7, 50):
        out = sample(lambda x_t, st: np.full_like(x_t, 0.3), x, ddim_steps(ab, spaced_timesteps(1000, n)))
        np.testing.assert_allclose(out, 0.3, atol=1e-12)


def test_eta1_over_all_steps_matches_ddpm_statistics():
    ab = alphas_cumprod("linear", 1000)
    rng = np.random.default_rng(2)
    steps = ddim_steps(ab, list(range(999, -1, -1)), eta=1.0)
    betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])
    # DDPM's posterior variance beta-tilde_t = beta_t (1 - ab_{t-1}) / (1 - ab_t)
    for st in steps[:-1]:
        t = st.t
        tilde = betas[t] * (1 - ab[t - 1]) / (1 - ab[t])
        assert st.sigma**2 == pytest.approx(tilde, rel=1e-9)
    out = sample(gaussian_denoiser, rng.standard_normal(40_000), steps, lambda x: rng.standard_normal(x.shape))
    assert out.std() == pytest.approx(S, rel=0.03)
    assert abs(out.mean()) < 0.02


def test_spaced_timesteps_are_trailing_and_descending():
    assert spaced_timesteps(1000, 1) == [999]
    assert spaced_timesteps(1000, 4) == [999, 749, 499, 249]
    ts = spaced_timesteps(1000, 50)
    assert ts[0] == 999 and len(set(ts)) == 50 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError):
        spaced_timesteps(1000, 0)


def test_ddim_steps_reject_unordered_timesteps():
    with pytest.raises(ValueError):
        ddim_steps(alphas_cumprod("cosine"), [10, 20])


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_prediction_types_convert_to_the_same_x0(prediction):
    rng = np.random.default_rng(3)
    x0, eps = rng.standard_normal(5), rng.standard_normal(5)
    a, s = 0.6, 0.8
    x_t = a * x0 + s * eps
    pred = {"x0": x0, "eps": eps, "v": a * eps - s * x0}[prediction]
    np.testing.assert_allclose(to_x0(pred, x_t, a, s, prediction), x0, atol=1e-12)


def test_stochastic_step_needs_noise():
    st = ddim_steps(alphas_cumprod("cosine"), [999, 500], eta=1.0)[0]
    with pytest.raises(ValueError):
        apply_step(st, np.zeros(2), np.zeros(2), None)
