"""The torch-free runtime: the restore graph computes what the torch model computes tile by tile, frames of any
size blend back exactly, channels and bit depths keep their form, streams prepare once, backends say which,
and no torch is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from test_runtime_support import host_reference, make_bundle, tiny_restorer

from edgeir.diffusion.schedules import alphas_cumprod
from edgeir.diffusion.steps import Sampling, ddim_steps
from edgeir.errors import BackendError, ConfigError, ImageError
from edgeir.graphs import layout
from edgeir.graphs.ort import open_session
from edgeir.graphs.restore import restore_graph
from edgeir.runtime import Restorer
from edgeir.runtime import restorer as runtime_module
from edgeir.runtime.backends import PREFERENCE
from edgeir.tasks import Degraded, InpaintTask, SRTask


@pytest.fixture(scope="module")
def sr(tmp_path_factory):
    restorer = tiny_restorer(SRTask(scale=2))
    return restorer, make_bundle(restorer, tmp_path_factory.mktemp("sr") / "sr")


@pytest.fixture(scope="module")
def inpaint(tmp_path_factory):
    restorer = tiny_restorer(InpaintTask(fill="biharmonic"))
    return restorer, make_bundle(restorer, tmp_path_factory.mktemp("inp") / "inp")


@pytest.mark.parametrize("case", ["sr", "inpaint"])
def test_the_runtime_restores_what_the_torch_model_restores_tile_by_tile(case, request):
    torch_restorer, bundle = request.getfixturevalue(case)
    task = torch_restorer.task
    rng = np.random.default_rng(3)
    image = (rng.random((22, 30, 3)) * 65535).astype(np.uint16)  # 16-bit: the float32 graph, no rounding
    mask = rng.random((22, 30)) < 0.3 if task.name == "inpaint" else None
    runtime = Restorer.load(bundle, backend="ort-cpu")
    assert runtime.task == task  # the manifest carries the whole task, inpainting's hole fill included
    out = runtime.restore(image, seed=7, mask=mask).astype(np.float64) / 65535
    d = Degraded(image.astype(np.float32) / np.float32(65535), mask)
    h, w = out.shape[:2]
    noise = np.random.default_rng(7).standard_normal((1, 3, h, w), dtype=np.float32)[0]
    ref = host_reference(torch_restorer, d, noise, runtime.variant.tile, runtime.variant.overlap)
    assert np.abs(out - ref).max() < 1e-3
    base = task.condition(d)[..., :3] * 0.5 + 0.5
    assert np.abs(ref - base).mean() > 0.01  # the network really changed the image


def fake_unet(cond_channels: int, returns: str) -> onnx.ModelProto:
    """A stand-in UNet graph predicting x0 = 0 (the restore is then the condition's base image) or x0 = x_t
    (the noise itself comes out)."""
    x, t, c = (helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
               (("x_t", ["b", 3, "h", "w"]), ("t", ["b"]), ("condition", ["b", cond_channels, "h", "w"])))
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    node = (helper.make_node("Mul", ["x_t", "zero"], ["prediction"]) if returns == "zero" else
            helper.make_node("Identity", ["x_t"], ["prediction"]))
    out = helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["b", 3, "h", "w"])
    model = helper.make_model(helper.make_graph([node], "u", [x, t, c], [out], [zero]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("tile, overlap", [(16, 4), (32, 8), (24, 0), (64, 32)])
@pytest.mark.parametrize("h, w", [(1, 1), (7, 50), (50, 70), (96, 33), (64, 64)])
def test_frames_of_any_size_blend_back_exactly(tile, overlap, h, w):
    """Through a restore graph whose network returns its input, a frame comes back as it went in (its base
    image, or its noise), so every pixel's weights sum to one, every tile reads its own place in the one noise
    field and the frame is cut back out where it was; and the host's numpy layout agrees."""
    steps = ddim_steps(alphas_cumprod("cosine", 1000), [999])
    rng = np.random.default_rng(0)
    image = rng.random((1, h, w, 3), dtype=np.float32)
    noise = rng.standard_normal((1, 3, h, w), dtype=np.float32)
    maps = layout.maps(h, w, tile, overlap, 4)
    grey = np.full_like(image, 0.5)  # a base image of 0: what comes out is the noise alone
    for returns, frame, expected in (("zero", image, image[0]),
                                     ("x_t", grey, np.clip(noise[0].transpose(1, 2, 0) * 0.5 + 0.5, 0, 1))):
        graph = restore_graph(fake_unet(3, returns), "deblur", 1, 3, Sampling(steps, "x0", 1.0, 1.0), overlap,
                              "float32")
        feeds = {"image": frame, "noise": noise, **maps}
        out = open_session(graph.SerializeToString()).run(None, feeds)[0][0]
        np.testing.assert_allclose(out, expected, atol=2e-6)
    tiles = layout.split(noise[0], maps["rows"], maps["cols"])
    blended = layout.blend(tiles, maps["row_weights"], maps["col_weights"], h, w, overlap)
    np.testing.assert_allclose(blended, noise[0], atol=2e-6)
    if max(h, w) <= tile:  # a frame within one tile costs one tile of its own size
        assert tiles.shape[0] == 1 and tiles.shape[2:] == (max(-(-h // 4) * 4, 2 * overlap),
                                                           max(-(-w // 4) * 4, 2 * overlap))


def scaled_unet(gain: float) -> onnx.ModelProto:
    """A stand-in UNet graph predicting x0 = gain * x_t + tanh(condition), its gain an initializer."""
    x, t, c = (helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
               (("x_t", ["b", 3, "h", "w"]), ("t", ["b"]), ("condition", ["b", 3, "h", "w"])))
    nodes = [helper.make_node("Mul", ["x_t", "gain"], ["scaled"]), helper.make_node("Tanh", ["condition"], ["c"]),
             helper.make_node("Add", ["scaled", "c"], ["prediction"])]
    out = helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["b", 3, "h", "w"])
    inits = [helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
             helper.make_tensor("unused_but_shared", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])]
    model = helper.make_model(helper.make_graph(nodes, "u", [x, t, c], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_each_step_may_run_its_own_unet_graph():
    """A restore graph composed from one UNet graph per step (INT8 scales calibrated per timestep, say) runs
    each at its own step, as the host loop does when it switches graphs by timestep; initializers equal in
    name and value are stored once, and one graph for every step composes exactly as a single graph."""
    from edgeir.graphs.reference import host_restore

    steps = ddim_steps(alphas_cumprod("cosine", 1000), [999, 666, 333])
    sampling = Sampling(steps, "x0", 1.0, 1.0)
    gains = {999: 0.9, 666: -0.4, 333: 0.2}
    nets = [scaled_unet(gains[s.t]) for s in steps]
    graph = restore_graph(nets, "deblur", 1, 3, sampling, 8, "float32")
    stored = [i.name for i in graph.graph.initializer]
    assert stored.count("unet/unused_but_shared") == 1 and sum("gain" in n for n in stored) == 3
    rng = np.random.default_rng(2)
    image = rng.random((1, 40, 36, 3), dtype=np.float32)
    noise = rng.standard_normal((1, 3, 40, 36), dtype=np.float32)
    maps = layout.maps(40, 36, 32, 8, 4)
    out = open_session(graph.SerializeToString()).run(None, {"image": image, "noise": noise, **maps})[0][0]
    sessions = {t: open_session(net.SerializeToString()) for t, net in zip(gains, nets)}
    cond = np.ascontiguousarray(image[0].transpose(2, 0, 1)) * 2 - 1
    expected = host_restore(lambda f: sessions[int(f["t"][0])].run(None, f)[0], cond, noise[0], sampling, 32, 8, 4)
    np.testing.assert_allclose(out, expected.transpose(1, 2, 0), atol=1e-5)
    single = restore_graph(nets[0], "deblur", 1, 3, sampling, 8, "float32")
    assert restore_graph([nets[0]] * 3, "deblur", 1, 3, sampling, 8, "float32") == single
    with pytest.raises(ValueError, match="2 UNet graphs for 3 sampler steps"):
        restore_graph(nets[:2], "deblur", 1, 3, sampling, 8, "float32")


def test_the_graphs_bicubic_is_the_training_condition():
    """Super-resolution's condition is built inside the graph: through a network that adds nothing, the output
    is the task's own (Pillow) bicubic upsampling of the input, to float rounding."""
    task = SRTask(scale=4)
    steps = ddim_steps(alphas_cumprod("cosine", 1000), [999])
    image = np.random.default_rng(1).random((1, 13, 21, 3), dtype=np.float32)
    graph = restore_graph(fake_unet(3, "zero"), "sr", 4, 3, Sampling(steps, "x0", 1.0, 1.0), 8, "float32")
    h, w = 52, 84
    feeds = {"image": image, "noise": np.zeros((1, 3, h, w), np.float32), **layout.maps(h, w, 32, 8, 4)}
    out = open_session(graph.SerializeToString()).run(None, feeds)[0][0]
    expected = np.clip(task.condition(Degraded(image[0])) * 0.5 + 0.5, 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_channels_and_bit_depths(sr, inpaint):
    runtime = Restorer.load(sr[1], backend="ort-cpu")
    rng = np.random.default_rng(0)
    for shape, dtype in [((12, 10), np.uint8), ((12, 10, 2), np.uint8), ((12, 10, 3), np.uint16),
                         ((12, 10, 4), np.uint8), ((12, 10, 3), np.uint8)]:
        image = (rng.random(shape) * np.iinfo(dtype).max).astype(dtype)
        out = runtime.restore(image)
        assert out.dtype == dtype and out.shape == (24, 20, *shape[2:])
    deep = runtime.restore((rng.random((12, 10, 3)) * 65535).astype(np.uint16))
    inside = deep[(deep > 0) & (deep < 65535)]  # the tiny random network saturates many pixels
    assert inside.size > 50 and np.mean(inside % 257 != 0) > 0.9  # an 8-bit path would give multiples of 257
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
    monkeypatch.setattr(runtime_module, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match="pixel limit"):
        runtime.restore(np.zeros((20, 20, 3), np.uint8))


def test_large_frames_go_in_bands_that_join_exactly(sr):
    """A frame over the per-call pixel budget is restored band by band; each band's kept rows come from the
    tiles the whole frame would use, so the result is the whole-frame result."""
    image = (np.random.default_rng(5).random((70, 20, 3)) * 255).astype(np.uint8)
    whole = Restorer.load(sr[1], backend="ort-cpu")
    banded = Restorer.load(sr[1], backend="ort-cpu", max_call_pixels=40 * 60)
    calls = []
    real = banded._graph
    banded._graph = lambda session, feeds: calls.append(feeds["image"].shape) or real(session, feeds)
    out = banded.restore(image, seed=1)
    assert len(calls) > 2 and all(h < 70 for _, h, _, _ in calls)
    assert np.abs(out.astype(int) - whole.restore(image, seed=1)).max() <= 1


def test_inpainting_holes_go_to_the_graph_by_index_whole_or_in_bands(inpaint):
    """The host hands the graph the frame, the mask and the fill near the holes: RGBA with transparent holes,
    RGB with a mask and a 16-bit frame all build the training condition; bands get the whole frame's fill
    (so they join exactly) renumbered; a frame without holes comes back as it went in."""
    torch_restorer, bundle = inpaint
    rng = np.random.default_rng(4)
    rgb = (rng.random((160, 20, 3)) * 255).astype(np.uint8)
    mask = np.zeros((160, 20), bool)
    mask[10:22, 3:9] = mask[120:130, 12:18] = True
    rgba = np.concatenate([rgb, np.where(mask, 0, 255).astype(np.uint8)[..., None]], -1)
    whole = Restorer.load(bundle, backend="ort-cpu")
    seen = []
    real = whole._graph
    whole._graph = lambda session, feeds: seen.append(feeds) or real(session, feeds)
    out = whole.restore(rgba, seed=2)
    (feeds,) = seen
    d = Degraded(rgb.astype(np.float32) / np.float32(255), mask)
    cond = torch_restorer.task.condition(d)
    np.testing.assert_array_equal(feeds["holes"], np.flatnonzero(mask))
    np.testing.assert_array_equal(feeds["fill"] * 2 - 1, cond[mask][:, :3])  # the training condition's holes
    np.testing.assert_array_equal(whole.restore(rgb, seed=2, mask=mask), out)
    deep = whole.restore(rgb.astype(np.uint16) * 257, seed=2, mask=mask)  # the float32 graph
    assert np.abs(deep.astype(int) // 257 - out).max() <= 1
    banded = Restorer.load(bundle, backend="ort-cpu", max_call_pixels=60 * 20)
    calls = []
    real_banded = banded._graph
    banded._graph = lambda session, feeds: calls.append(feeds) or real_banded(session, feeds)
    np.testing.assert_array_equal(banded.restore(rgba, seed=2), out)
    assert len(calls) > 2 and all(c["image"].shape[1] < 160 for c in calls)
    for c in calls:  # each band's holes are its own mask's, in its own numbering
        band_mask = c["mask"][0, ..., 0].astype(bool)
        if band_mask.any():
            np.testing.assert_array_equal(c["holes"], np.flatnonzero(band_mask))
    np.testing.assert_array_equal(whole.restore(np.concatenate([rgb, np.full((160, 20, 1), 255, np.uint8)], -1)),
                                  rgb)  # no holes: nothing to restore, and the stand-in hole changes nothing


def test_an_older_inpainting_bundle_is_told_to_compose_anew(inpaint, tmp_path):
    """edgeir.bundle/2 inpainting restore graphs took a condition built on the host: the runtime no longer
    builds it, so their restore graphs are ignored and the UNet graph they came from is used to make new
    ones."""
    import json
    import shutil

    from edgeir.bundle.io import manifest_digest

    old = tmp_path / "old"
    shutil.copytree(inpaint[1], old)
    raw = json.loads((old / "manifest.json").read_text())
    raw["format"] = "edgeir.bundle/2"
    for v in raw["variants"]:
        if v["kind"] == "restore":
            v["inputs"] = [{"name": "condition", "layout": "NHWC", "channels": 4, "dtype": "float32",
                            "range": [-1.0, 1.0]}] + [i for i in v["inputs"] if i["layout"] in ("NCHW", "tiles")]
    raw["digest"] = manifest_digest(raw)
    (old / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="no restore graph.*edgeir export"):
        Restorer.load(old, backend="ort-cpu")


def test_a_stream_prepares_once_and_restores_what_restore_does(sr, monkeypatch):
    runtime = Restorer.load(sr[1], backend="ort-cpu")
    made = []
    real = layout.positions
    monkeypatch.setattr(layout, "positions", lambda *a: made.append(a) or real(*a))
    frames = [(np.random.default_rng(i).random((16, 24, 3)) * 255).astype(np.uint8) for i in range(30)]
    streamed = list(runtime.stream(iter(frames), seed=4))
    assert len(made) == 2  # the noise field and the index maps of the one frame size, made once
    noise_fields = {id(b.static["noise"]) for plan in runtime._plans.values() for b in plan}
    assert len(runtime._plans) == 1 and len(noise_fields) == 1
    assert all(np.array_equal(s, runtime.restore(f, seed=4)) for s, f in zip(streamed, frames))
    assert len(made) == 2  # restore() of the same size reuses them too
    assert len(streamed) == 30 and not np.array_equal(streamed[0], streamed[1])


def test_backends_say_which_and_refuse_clearly(sr):
    """Whatever this machine has: auto takes the best backend that opens and says why it skipped better ones;
    one that is missing is refused in one line, and one that is present opens."""
    runtime = Restorer.load(sr[1])
    position = PREFERENCE.index(runtime.backend)
    assert len(runtime.notes) == position  # one reason per better backend it skipped
    for backend in PREFERENCE:
        try:
            chosen = Restorer.load(sr[1], backend=backend)
        except BackendError as e:
            assert PREFERENCE.index(backend) < position and "\n" not in str(e) and str(e).startswith(backend)
        else:
            assert chosen.backend == backend and PREFERENCE.index(backend) >= position
    with pytest.raises(BackendError, match="unknown backend"):
        Restorer.load(sr[1], backend="gpu")
    with pytest.raises(ConfigError, match="no variant 'int8'"):
        Restorer.load(sr[1], variant="int8")
    with pytest.raises(ConfigError, match="unet graph; the runtime runs restore graphs"):
        Restorer.load(sr[1], variant="unet-fp32")


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
        out = Restorer.load({str(sr[1])!r}).restore(np.full((8, 8, 3), 99, np.uint8))
        assert out.shape == (16, 16, 3)
        print("ok", sorted(m for m in ("torch", "scipy", "skimage", "onnx") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok []"  # an FP32 bundle needs not even onnx


@pytest.mark.slow
def test_tiles_leave_no_seam(tmp_path):
    """A real teacher (sr4x, 4 DDPM steps, so the noise matters at every step) restores 192x192 outputs in one
    tile and in 128-pixel tiles that overlap by 32. Away from the seams and across them alike, the tiled result
    must be the one-tile result to within about a level: tiles blend invisibly only if they agree. Tiles that
    abut with no overlap differ from it along the cut (seam bands off by ~3 levels where the rest is off by
    1-2), and tiles drawing their own noise differ everywhere (~4 levels): both fail here."""
    from edgeir.data.builtin import builtin_images
    from edgeir.load import load_restorer

    teacher = load_restorer("sr4x")
    teacher.config = teacher.config.model_copy(update={"sampler": teacher.config.sampler.model_copy(
        update={"kind": "ddpm"})})
    tiled, whole = (Restorer.load(make_bundle(teacher, tmp_path / f"t{t}", tile=t, overlap=32, steps=4),
                                  backend="ort-cpu") for t in (128, 256))
    v = tiled.variant  # seams where its tiles actually meet: the middle of each overlap
    seams = [j * (v.tile - v.overlap) + v.overlap / 2 for j in range(1, layout.span(192, v.tile, v.overlap, 16)[0])]
    band = np.min([np.abs(np.arange(192) + 0.5 - s) for s in seams], 0) < max(v.overlap / 2, 6)
    bands = band[:, None] | band[None, :]
    images = dict(builtin_images("heldout"))
    for gt in (images["chelsea"][:192, 100:292], images["rocket"][100:292, 100:292]):
        low = (teacher.task.degrade(gt, np.random.default_rng(0)).image * 255 + 0.5).astype(np.uint8)
        a, b = whole.restore(low, seed=0), tiled.restore(low, seed=0)
        diff = np.abs(a.astype(float) - b).mean(-1)
        assert diff.mean() < 2.0, diff.mean()
        assert diff[bands].mean() < diff[~bands].mean() + 0.5, (diff[bands].mean(), diff[~bands].mean())
