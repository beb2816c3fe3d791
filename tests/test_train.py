import numpy as np
import torch
from conftest import tiny_config

from edgeir.load import load_restorer
from edgeir.tasks import InpaintTask
from edgeir.train.data import PairStream, make_pair
from edgeir.train.teacher import STATE, train_teacher


def images(rng):
    return [rng.uniform(0, 1, (40, 40, 3)).astype(np.float32) for _ in range(2)]


def test_training_pairs_reconstruct_ground_truth(rng):
    cfg = tiny_config()
    gt = rng.uniform(0, 1, (32, 32, 3)).astype(np.float32)
    target, cond = make_pair(gt, cfg, rng)
    np.testing.assert_allclose(cond[..., :3] + target / cfg.residual_scale, gt * 2 - 1, atol=1e-5)


def test_training_resumes_where_it_stopped(tmp_path, rng):
    cfg = tiny_config()
    kw = {"batch": 2, "patch": 16, "workers": 0, "log_every": 1000, "images": images(rng)}
    train_teacher(cfg, tmp_path / "a", tmp_path / "work", iters=3, **kw)
    assert torch.load(tmp_path / "work" / STATE, weights_only=True)["step"] == 3
    r = train_teacher(cfg, tmp_path / "a", tmp_path / "work", iters=5, **kw)
    assert r.config.provenance["iterations"] == 5
    assert load_restorer(tmp_path / "a").config.provenance["iterations"] == 5


def test_inpainting_loss_concentrates_on_holes(tmp_path, rng):
    cfg = tiny_config(InpaintTask())
    cond = torch.zeros(1, 4, 4, 4)
    cond[:, 3, :2] = 1.0  # top half missing
    w = cfg.task.loss_weight(cond)
    assert torch.all(w[:, :, :2] == 1.1) and torch.all(w[:, :, 2:] == 0.1)
    r = train_teacher(cfg, tmp_path / "m", tmp_path / "w", iters=2, batch=2, patch=16, workers=0,
                      images=images(rng))
    assert r.config.task.name == "inpaint"


def test_pair_stream_without_workers_ignores_the_process_torch_seed(rng):
    """The prune stage streams pairs in the main process; its batches must not depend on torch's per-process
    seed, or the same recipe gives a different pruned model in every fresh process."""
    images = [rng.random((48, 48, 3), dtype=np.float32) for _ in range(2)]

    def first_pairs(torch_seed: int):
        torch.manual_seed(torch_seed)
        stream = iter(PairStream(images, tiny_config(), patch=32, seed=5))
        return [next(stream) for _ in range(3)]

    a, b = first_pairs(1), first_pairs(2)
    assert all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
