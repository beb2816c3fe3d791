"""The torch-free runtime: same output as the torch pipeline, seamless tiling, channels and bit depths,
backends, and no torch import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from itertools import pairwise

import numpy as np
import pytest
import torch
from test_runtime_support import make_bundle, tiny_restorer

from edgeir.errors import BackendError, ConfigError, ImageError
from edgeir.runtime import Restorer
from edgeir.runtime.tiling import noise_field, restore_tiled
from edgeir.tasks import Degraded, InpaintTask, SRTask


@pytest.fixture(scope="module")
def sr(tmp_path_factory):
    restorer = tiny_restorer(SRTask(scale=2))
    return restorer, make_bundle(restorer, tmp_path_factory.mktemp("sr") / "sr", kinds=("sampler", "unet"))


@pytest.fixture(scope="module")
def inpaint(tmp_path_factory):
    restorer = tiny_restorer(InpaintTask(fill="biharmonic"))
    return restorer, make_bundle(restorer, tmp_path_factory.mktemp("inp") / "inp", kinds=("sampler", "unet"))


@pytest.mark.parametrize("variant", ["sampler", "unet"])
@pytest.mark.parametrize("case", ["sr", "inpaint"])
def test_matches_torch_pipeline_untiled(case, variant, request):
    torch_restorer, bundle = request.getfixturevalue(case)
    task = torch_restorer.task
    rng = np.random.default_rng(3)
    image = rng.random((22, 30, 3)).astype(np.float32)  # not a multiple of 4: exercises the padding too
    mask = rng.random((22, 30)) < 0.3 if task.name == "inpaint" else None
    degraded = Degraded(image, mask)
    cond = task.condition(degraded)
    noise = noise_field(7, 3, *cond.shape[:2])
    with torch.no_grad():
        ref = torch_restorer.restore_tensor(torch.from_numpy(cond).permute(2, 0, 1)[None],
                                            torch.from_numpy(noise)[None])
    ref = task.compose(ref[0].permute(1, 2, 0).numpy(), degraded)
    runtime = Restorer.load(bundle, backend="ort-cpu", variant=variant, tile=64)
    assert runtime.task == task  # the manifest carries the whole task, inpainting's hole fill included
    out = runtime.restore_rgb(image, seed=7, mask=mask)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-3
    assert np.abs(ref - (cond[..., :3] * 0.5 + 0.5)).mean() > 0.01  # the network really changed the image


@pytest.mark.parametrize("tile, overlap, batch", [(16, 4, 1), (32, 8, 3), (24, 0, 2), (64, 8, 1)])
def test_tiles_reassemble_the_image_exactly(tile, overlap, batch):
    """With a graph that returns its noise, tiling must give back the full noise field: every pixel's
    weights sum to one and every tile reads its own slice of the one field."""
    calls = []

    def run(cond, noise):
        calls.append(cond.shape)
        return noise[:, :3]

    cond = np.zeros((4, 50, 70), np.float32)
    noise = noise_field(1, 3, 50, 70)
    out = restore_tiled(run, cond, noise, tile, overlap, multiple=4, batch=batch)
    np.testing.assert_allclose(out, noise, atol=1e-6)
    # graph inputs are bounded by the tile, whatever the image size
    assert all(b <= batch and h <= tile and w <= tile for b, _, h, w in calls)


def test_batched_tiles_match_single_tiles(sr):
    _, bundle = sr
    image = (np.random.default_rng(0).random((40, 44, 3)) * 255).astype(np.uint8)
    one = Restorer.load(bundle, backend="ort-cpu", tile=32, batch=1).restore(image, seed=2)
    four = Restorer.load(bundle, backend="ort-cpu", tile=32, batch=4).restore(image, seed=2)
    assert np.abs(one.astype(int) - four.astype(int)).max() <= 1


def test_channels_and_bit_depths(sr, inpaint):
    runtime = Restorer.load(sr[1], backend="ort-cpu")
    rng = np.random.default_rng(0)
    for shape, dtype in [((12, 10), np.uint8), ((12, 10, 2), np.uint8), ((12, 10, 3), np.uint16),
                         ((12, 10, 4), np.uint8)]:
        image = (rng.random(shape) * np.iinfo(dtype).max).astype(dtype)
        out = runtime.restore(image)
        assert out.dtype == dtype and out.shape == (24, 20, *shape[2:])
    rgba = np.full((12, 10, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[:6, :, 3] = 0
    alpha = runtime.restore(rgba)[..., 3]
    assert alpha[:10].max() < 5 and alpha[14:].min() > 250  # alpha upsampled with the image, not restored
    holes = Restorer.load(inpaint[1], backend="ort-cpu")
    out = holes.restore(rgba)  # transparent pixels are the holes; the filled result is opaque
    assert out.shape == (12, 10, 3)
    np.testing.assert_array_equal(out[6:], rgba[6:, :, :3])  # known pixels are kept
    with pytest.raises(ImageError, match="needs a mask"):
        holes.restore(rgba[..., :3])


def test_hostile_arrays_refused(sr, monkeypatch):
    runtime = Restorer.load(sr[1], backend="ort-cpu")
    with pytest.raises(ImageError, match="zero size"):
        runtime.restore(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="uint8 or uint16"):
        runtime.restore(np.zeros((8, 8, 3), np.float64))
    with pytest.raises(ImageError, match="C in 1..4"):
        runtime.restore(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        runtime.restore(np.zeros((1, 8, 3), np.uint8))
    monkeypatch.setattr("edgeir.runtime.restorer.MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="pixel limit"):
        runtime.restore(np.zeros((20, 20, 3), np.uint8))


def test_backends_say_which_and_refuse_clearly(sr):
    runtime = Restorer.load(sr[1])
    assert runtime.backend == "ort-cpu"  # the only one on a CPU machine
    assert any(n.startswith("tensorrt:") for n in runtime.notes)  # and it says why the better ones were skipped
    for backend, message in [("ort-cuda", "no CUDAExecutionProvider"), ("tensorrt", "not installed"),
                             ("gpu", "unknown backend")]:
        with pytest.raises(BackendError, match=message) as e:
            Restorer.load(sr[1], backend=backend)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="multiple of"):
        Restorer.load(sr[1], tile=30)
    with pytest.raises(ConfigError, match="no variant 'int8'"):
        Restorer.load(sr[1], variant="int8")


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy", "skimage", "matplotlib"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
"""


def test_runtime_runs_with_torch_blocked(sr):
    script = BLOCKER + textwrap.dedent(f"""
        import numpy as np
        from edgeir.runtime import Restorer
        import edgeir.commands.restore, edgeir.commands.bench, edgeir.cli
        out = Restorer.load({str(sr[1])!r}, variant="unet").restore(np.full((8, 8, 3), 99, np.uint8))
        assert out.shape == (16, 16, 3)
        print("ok", sorted(m for m in ("torch", "scipy", "skimage") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok []"


@pytest.mark.slow
def test_tiled_restore_has_no_seam(tmp_path):
    """A real teacher (sr4x, 4 steps) restores 256x256 outputs whole and in 128-pixel tiles. Content makes
    raw PSNR differ between regions, so each region's PSNR is compared with the untiled restore of the same
    pixels: bands across the seams must lose no more to tiling than tile interiors do."""
    from edgeir.data.builtin import builtin_images
    from edgeir.load import load_restorer
    from edgeir.runtime.tiling import tile_starts

    teacher = load_restorer("sr4x")
    bundle = make_bundle(teacher, tmp_path / "sr4x", tile=128, overlap=32, steps=4)
    whole, tiled = (Restorer.load(bundle, backend="ort-cpu", tile=t) for t in (256, 128))
    starts = tile_starts(256, 128, tiled.overlap, 16)
    assert len(starts) == 3
    seams = [(a + 128 + b) // 2 for a, b in pairwise(starts)]
    dist = np.min([np.abs(np.arange(256) - s) for s in seams], 0)
    border = (dist < 6)[:, None] | (dist < 6)[None, :]
    interior = (dist >= 16)[:, None] & (dist >= 16)[None, :]
    def psnr(out, gt, region):
        return 10 * np.log10(1 / ((out - gt) ** 2).mean(-1)[region].mean())

    images = dict(builtin_images("heldout"))
    for gt in (images["chelsea"][:256, 100:356], images["rocket"][100:356, 100:356]):
        low = teacher.task.degrade(gt, np.random.default_rng(0)).image
        a, b = whole.restore_rgb(low, seed=0), tiled.restore_rgb(low, seed=0)
        seam_cost = psnr(a, gt, border) - psnr(b, gt, border)
        interior_cost = psnr(a, gt, interior) - psnr(b, gt, interior)
        assert seam_cost <= interior_cost + 0.25, (seam_cost, interior_cost)
