import numpy as np
import torch
from conftest import tiny_config

from edgeir.load import load_restorer
from edgeir.tasks import InpaintTask
from edgeir.train.data import Pairs, make_pair
from edgeir.train.teacher import STATE, train_teacher


def images(rng):
    return [rng.uniform(0, 1, (40, 40, 3)).astype(np.float32) for _ in range(2)]


def test_training_pairs_reconstruct_ground_truth(rng):
    cfg = tiny_config()
    gt = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
    target, cond = make_pair(gt, cfg, rng)
    np.testing.assert_allclose(cond[..., :3] + target / cfg.residual_scale, gt * 2 - 1, atol=1e-5)


def test_an_interrupted_training_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, rng):
    cfg = tiny_config()
    kw = {"batch": 2, "patch": 16, "workers": 0, "log_every": 1000, "images": images(rng)}
    whole = train_teacher(cfg, tmp_path / "whole", tmp_path / "w1", iters=5, **kw)
    part = train_teacher(cfg, tmp_path / "part", tmp_path / "w2", iters=3, **kw)
    assert torch.load(tmp_path / "w2" / STATE, weights_only=True)["iteration"] == 3
    resumed = train_teacher(cfg, tmp_path / "part", tmp_path / "w2", iters=5, **kw)
    assert resumed.config.provenance["iterations"] == 5
    saved = load_restorer(tmp_path / "part").state_dict()
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]) and torch.equal(value, saved[name]), name
    assert not torch.equal(part.state_dict()["denoiser.net.conv_in.weight"],
                           whole.state_dict()["denoiser.net.conv_in.weight"])  # the last two steps did train


def test_inpainting_loss_concentrates_on_holes(tmp_path, rng):
    cfg = tiny_config(InpaintTask())
    cond = torch.zeros(1, 4, 4, 4)
    cond[:, 3, :2] = 1.0  # top half missing
    w = cfg.task.loss_weight(cond)
    assert torch.all(w[:, :, :2] == 1.1) and torch.all(w[:, :, 2:] == 0.1)
    r = train_teacher(cfg, tmp_path / "m", tmp_path / "w", iters=2, batch=2, patch=16, workers=0,
                      images=images(rng))
    assert r.config.task.name == "inpaint"


def test_pairs_depend_on_their_index_alone(rng):
    """Pair i is the same whatever the process's torch seed, the worker that draws it or where a run starts,
    so a fresh process, a resumed run and a multi-worker run all see the same batches."""
    images = [rng.random((48, 48, 3), dtype=np.float32) for _ in range(2)]

    def batches(torch_seed: int, start: int, workers: int):
        torch.manual_seed(torch_seed)
        loader = iter(Pairs(images, tiny_config(), patch=32, seed=5).batches(start, 2, workers))
        return [next(loader) for _ in range(2)]

    a, b, c = batches(1, 0, 0), batches(2, 1, 0), batches(3, 0, 2)
    assert all(torch.equal(x, y) for x, y in zip(a[1], b[0]))
    assert all(torch.equal(x, y) for pa, pc in zip(a, c) for x, y in zip(pa, pc))
    assert not torch.equal(a[0][0], a[1][0])


def test_init_may_fine_tune_for_another_degradation_but_not_another_task(tmp_path, rng):
    """--init takes a model of the preset's network and task whatever degradation it was trained for (the
    shipped sr4x fine-tuned into sr4x-real), and refuses another task in one line."""
    import pytest

    from edgeir.errors import CheckpointError
    from edgeir.tasks import DeblurTask

    clean = tiny_config()
    kw = {"batch": 2, "patch": 16, "workers": 0, "log_every": 1000, "images": images(rng)}
    train_teacher(clean, tmp_path / "clean", tmp_path / "w1", iters=1, **kw)
    real = clean.model_copy(update={"task": clean.task.with_degradation("real")})
    tuned = train_teacher(real, tmp_path / "real", tmp_path / "w2", iters=1, init=tmp_path / "clean", **kw)
    assert tuned.config.task.degradation == "real"
    with pytest.raises(CheckpointError, match=r"--init .*: its task\.\w+ is .* where the preset's is "):
        train_teacher(tiny_config(DeblurTask()), tmp_path / "d", tmp_path / "w3", iters=1, init=tmp_path / "clean",
                      **kw)
