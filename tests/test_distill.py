import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from edgeir.compress import distill
from edgeir.compress.distill import DistillSettings, with_timesteps
from edgeir.compress.gates import Gates, judge, measure_model
from edgeir.compress.stage import StageContext
from edgeir.data.builtin import builtin_images
from edgeir.diffusion.schedules import spaced_timesteps
from edgeir.evaluate import degrade_set
from edgeir.load import load_restorer, save_restorer
from edgeir.tasks import Degraded
from edgeir.train import loop
from edgeir.train.data import make_pair


def visited(model, cond_hw=(8, 8)) -> list[float]:
    seen = []
    hook = model.denoiser.net.register_forward_pre_hook(lambda m, args: seen.append(float(args[1][0])))
    model.restore(Degraded(np.full((*cond_hw, 3), 0.5, np.float32)), seed=0)
    hook.remove()
    return seen


def test_the_sampler_visits_exactly_the_students_timesteps(tiny_restorer, tmp_path):
    student = with_timesteps(tiny_restorer, [999, 620, 37], {"distilled_by": "test"})
    assert visited(student) == [999, 620, 37]
    save_restorer(student, tmp_path / "s")
    loaded = load_restorer(tmp_path / "s")
    assert loaded.config.sampler.timesteps == [999, 620, 37] and loaded.config.sampler.steps == 3
    assert visited(loaded) == [999, 620, 37]
    assert loaded.config.provenance["history"][-1] == tiny_restorer.config.provenance
    # The teacher it was made from is untouched: still evenly spaced over its own 4 steps.
    assert tiny_restorer.config.sampler.timesteps is None
    assert visited(tiny_restorer) == spaced_timesteps(1000, 4)


def context(teacher, tmp_path, seed=0) -> StageContext:
    rng = np.random.default_rng(seed)
    images = [rng.uniform(0, 1, (40, 40, 3)).astype(np.float32) for _ in range(3)]
    (tmp_path / "work").mkdir(exist_ok=True)
    return StageContext(teacher=teacher, student=teacher, train_images=images, eval_cases=[],
                        work_dir=tmp_path / "work", seed=seed)


def held_out(model, n=4, patch=16):
    rng = np.random.default_rng(123)
    conds = [make_pair(rng.uniform(0, 1, (patch, patch, 3)).astype(np.float32), model.config, rng)[1]
             for _ in range(n)]
    cond = torch.from_numpy(np.stack(conds)).permute(0, 3, 1, 2)
    return cond, torch.randn(n, 3, patch, patch, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def gap(model, teacher, teacher_steps, steps=None) -> float:
    """Mean squared distance between ``model``'s sampler and the teacher's deterministic DDIM."""
    cond, noise = held_out(teacher)
    goal = teacher.sample(cond, noise, teacher.steps(teacher_steps, eta=0.0))
    return float(((model.sample(cond, noise, steps) - goal) ** 2).mean())


def test_direct_distillation_regresses_the_teachers_output(tiny_restorer, tmp_path):
    s = DistillSettings(method="direct", steps=1, iterations=40, batch=4, patch=16, pairs=16, lr=2e-3)
    out = distill.run(s, context(tiny_restorer, tmp_path))
    student = out.model
    assert student.config.sampler.timesteps == [999] and out.info["teacher_steps"] == 4
    pairs = load_file(str(next((tmp_path / "work").glob("pairs-4steps-16x16px-seed0-*.safetensors"))))
    cond, noise, goal = pairs["cond"], pairs["noise"], pairs["target"]
    with torch.no_grad():
        torch.testing.assert_close(goal, tiny_restorer.sample(cond, noise, tiny_restorer.steps(4, eta=0.0)))
        before = float(((tiny_restorer.sample(cond, noise, tiny_restorer.steps(1)) - goal) ** 2).mean())
        after = float(((student.sample(cond, noise) - goal) ** 2).mean())
    assert after < 0.5 * before, (before, after)


def test_other_training_images_never_reuse_a_work_folders_outputs_or_checkpoints(tiny_restorer, tmp_path):
    s = DistillSettings(method="direct", steps=1, iterations=3, batch=2, patch=16, pairs=4, save_every=1)
    first = context(tiny_restorer, tmp_path, seed=0)
    distill.run(s, first)
    other = context(tiny_restorer, tmp_path, seed=0)
    other.train_images = [np.ascontiguousarray(im[::-1]) for im in other.train_images]  # same sizes, new pixels
    distill.run(s, other)
    work = tmp_path / "work"
    assert len(list(work.glob("pairs-*.safetensors"))) == 2 and len(list(work.glob("direct-1-*.state"))) == 2
    conds = [load_file(str(p))["cond"] for p in work.glob("pairs-*.safetensors")]
    assert not torch.equal(*conds)
    # The same images find their own outputs again.
    key = lambda images: distill._key(s, tiny_restorer, images)
    assert key(first.train_images) != key(other.train_images)
    assert key(first.train_images) == key([im.copy() for im in first.train_images])


def test_other_starting_weights_or_teachers_never_reuse_a_work_folders_checkpoints(tiny_restorer, tmp_path):
    s = DistillSettings(method="direct", steps=1, iterations=3, batch=2, patch=16, pairs=4, save_every=1)
    work = tmp_path / "work"
    ctx = context(tiny_restorer, tmp_path)
    distill.run(s, ctx)
    # The next stage of a chain (2 steps, then 1): same settings and teacher, the 2-step student's weights.
    ctx.student = distill.run(s.model_copy(update={"steps": 2}), ctx).model
    distill.run(s, ctx)
    assert len(list(work.glob("direct-1-*.state"))) == 2
    assert len(list(work.glob("pairs-*.safetensors"))) == 1  # one teacher: its outputs are shared
    other = copy.deepcopy(tiny_restorer)
    with torch.no_grad():
        next(other.parameters()).add_(0.1)
    distill.run(s, context(other, tmp_path))
    assert len(list(work.glob("pairs-*.safetensors"))) == 2 and len(list(work.glob("direct-1-*.state"))) == 3


def test_a_finished_student_comes_back_exactly_without_training(tiny_restorer, tmp_path, monkeypatch):
    s = DistillSettings(method="direct", steps=1, iterations=3, batch=2, patch=16, pairs=4, save_every=2)
    first = distill.run(s, context(tiny_restorer, tmp_path)).model
    monkeypatch.setattr(loop, "ema_update", lambda *args: pytest.fail("the finished student was retrained"))
    again = distill.run(s, context(tiny_restorer, tmp_path)).model
    assert again.digest() == first.digest()


def test_several_patch_sizes_alternate_batch_by_batch(tiny_restorer, tmp_path, monkeypatch):
    seen = []
    real = distill._loss
    monkeypatch.setattr(distill, "_loss", lambda pred, goal, *rest: seen.append(pred.shape[-1]) or
                        real(pred, goal, *rest))
    direct = DistillSettings(method="direct", steps=1, iterations=4, batch=2, patch=[16, 32], pairs=3)
    student = distill.run(direct, context(tiny_restorer, tmp_path)).model
    assert seen == [16, 32, 16, 32]
    assert student.config.provenance["patch"] == [16, 32]
    for size in (16, 32):  # each size has its own teacher outputs, made at that size
        pairs = load_file(str(next((tmp_path / "work").glob(f"pairs-4steps-3x{size}px-*.safetensors"))))
        assert pairs["target"].shape == (3, 3, size, size)
    seen.clear()
    progressive = DistillSettings(method="progressive", steps=1, teacher_steps=2, iterations=4, batch=2,
                                  patch=[16, 32])
    distill.run(progressive, context(tiny_restorer, tmp_path))
    assert seen == [16, 32, 16, 32]


def test_the_psnr_loss_weights_every_crop_alike():
    goal = torch.zeros(2, 3, 8, 8)
    pred = torch.stack([torch.full((3, 8, 8), 1.0), torch.full((3, 8, 8), 0.01)])
    mse, psnr = DistillSettings(loss="mse"), DistillSettings(loss="psnr")
    assert float(distill._loss(pred, goal, 1.0, mse)) == pytest.approx((1 + 1e-4) / 2)
    assert float(distill._loss(pred, goal, 1.0, psnr)) == pytest.approx(np.log(1e-4) / 2, rel=1e-5)
    # Halving the smooth crop's error gains the psnr loss as much as halving the textured one's; under mse
    # the smooth crop hardly counts.
    gain = {}
    for name, s in (("mse", mse), ("psnr", psnr)):
        base = float(distill._loss(pred, goal, 1.0, s))
        gain[name] = [base - float(distill._loss(pred * torch.tensor([a, b])[:, None, None, None], goal, 1.0, s))
                      for a, b in ((0.5, 1.0), (1.0, 0.5))]
    assert gain["psnr"][0] == pytest.approx(gain["psnr"][1], rel=1e-4)
    assert gain["mse"][1] < 1e-3 * gain["mse"][0]


def test_progressive_distillation_halves_the_steps_round_by_round(tiny_restorer, tmp_path):
    s = DistillSettings(method="progressive", steps=1, teacher_steps=4, iterations=30, batch=4, patch=16,
                        lr=2e-3)
    out = distill.run(s, context(tiny_restorer, tmp_path))
    assert out.info["rounds"] == ["4->2", "2->1"] and out.model.config.sampler.timesteps == [999]
    two = load_restorer(next(p for p in (tmp_path / "work").glob("round-2-*") if p.is_dir()))
    assert two.config.sampler.timesteps == spaced_timesteps(1000, 4)[0::2] == [999, 499]
    before = gap(tiny_restorer, tiny_restorer, 4, tiny_restorer.steps(1))
    assert gap(out.model, tiny_restorer, 4) < before


def test_progressive_must_start_from_the_steps_a_distilled_model_has(tiny_restorer, tmp_path):
    from edgeir.errors import ConfigError

    student = with_timesteps(tiny_restorer, [999, 499], {})
    ctx = context(tiny_restorer, tmp_path)
    ctx.student = student
    with pytest.raises(ConfigError, match="already samples in exactly 2 steps"):
        distill.run(DistillSettings(method="progressive", steps=1, teacher_steps=4, patch=16), ctx)
    with pytest.raises(ConfigError, match="patch: 18 is not a multiple"):
        distill.run(DistillSettings(steps=1, patch=18), ctx)
    with pytest.raises(ConfigError, match="patch: 18 is not a multiple"):
        distill.run(DistillSettings(steps=1, patch=[16, 18]), ctx)
    with pytest.raises(ConfigError, match="no training image is 48 pixels or larger"):
        distill.run(DistillSettings(steps=1, patch=[16, 48]), ctx)


def test_gates_judge_against_the_teacher():
    teacher = {"psnr": 28.0, "ssim": 0.80, "haarpsi": 0.81, "detail": 0.75}
    noisy = {"psnr": 27.9, "ssim": 0.79, "haarpsi": 0.80, "detail": 1.2, "psnr_vs_teacher": 30.0}
    verdicts = judge(Gates(max_psnr_drop=0.3, min_detail_kept=0.9, max_detail_kept=1.3,
                           min_psnr_vs_teacher=35), noisy, teacher)
    assert {v.gate: v.passed for v in verdicts} == {"max_psnr_drop": True, "min_detail_kept": True,
                                                    "max_detail_kept": False, "min_psnr_vs_teacher": False}
    assert [v.line() for v in verdicts if not v.passed] == ["detail_kept 1.6 > 1.3", "psnr_vs_teacher 30 < 35"]


@pytest.mark.slow
def test_gates_catch_a_collapse_to_the_blurry_mean():
    """The shipped teacher's one-step prediction from pure noise is its conditional mean: higher PSNR than
    its 50-step samples and far less detail. Fidelity gates alone would wave it through."""
    teacher = load_restorer("sr4x")
    cases = degrade_set(teacher.config.task, builtin_images("heldout")[:2], 64, 0)
    reference, outputs = measure_model(teacher, cases, seed=0)
    mean, _ = measure_model(with_timesteps(teacher, [999], {}), cases, seed=0, reference=outputs)
    assert mean["psnr"] > reference["psnr"]
    assert mean["detail"] < 0.6 * reference["detail"]
    verdicts = judge(Gates(max_psnr_drop=0.3, min_detail_kept=0.9), mean, reference)
    assert [v.gate for v in verdicts if not v.passed] == ["min_detail_kept"]
