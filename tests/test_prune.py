"""The prune stage: real channel removal with torch-pruning, configs that describe the result, recovery."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_diffusers_unet
from safetensors.torch import load_file, save_file

from edgeir.compress.cost import macs, params
from edgeir.compress.importance import taylor_gradients
from edgeir.compress.prune import PruneSettings, prune_network, prune_restorer, run
from edgeir.compress.recover import RecoverySettings, recover
from edgeir.compress.stage import StageContext
from edgeir.errors import ConfigError
from edgeir.evaluate import degrade_set
from edgeir.load import load_restorer, save_restorer
from edgeir.models.config import EdgeUNetSpec, RestorerConfig, SamplerConfig
from edgeir.models.restorer import RestorerModel
from edgeir.models.unet import UNetConfig
from edgeir.tasks import SRTask

MAGNITUDE = {"importance": "magnitude"}


def small(seed: int = 0, **unet) -> RestorerModel:
    cfg = UNetConfig(unshuffle=2, channels=(16, 32), norm_groups=4, attention_heads=2, time_embed_dim=16, **unet)
    torch.manual_seed(seed)
    return RestorerModel(RestorerConfig(task=SRTask(scale=2), network=EdgeUNetSpec(config=cfg), residual_scale=4.0,
                                   sampler=SamplerConfig(steps=4))).eval()


def inputs(size: tuple[int, int], batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, *size, generator=g), torch.tensor([900.0, 20.0][:batch]),
            torch.randn(batch, 3, *size, generator=g))


def pairs(n: int, batch: int = 4, size: int = 16, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, size, size, generator=g), torch.randn(batch, 3, size, size, generator=g))
            for _ in range(n)]


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_pruned_unet_removes_channels_and_keeps_io_shapes(ratio):
    r = small()
    p, _ = prune_restorer(r, PruneSettings(ratio=ratio, **MAGNITUDE))
    assert params(p) < params(r) * (1 - ratio) ** 2 * 1.3
    assert macs(p, 64, 64) < macs(r, 64, 64) * (1 - ratio) ** 2 * 1.3  # attention matmuls included
    net, ref = p.denoiser.net, r.denoiser.net
    assert net.conv_out.out_channels == ref.conv_out.out_channels  # the output convolution keeps its outputs
    assert net.conv_in.in_channels == ref.conv_in.in_channels  # nor the input
    with torch.no_grad():
        for size in [(8, 8), (8, 16), (24, 16), (32, 32)]:
            x, t, c = inputs(size)
            out = p.denoiser(x, t, c)
            assert out.shape == (2, 3, *size) and torch.isfinite(out).all()
    # the config alone describes every layer
    assert RestorerModel(p.config).denoiser.net.state_dict().keys() == net.state_dict().keys()
    assert all(a.shape == b.shape for a, b in zip(RestorerModel(p.config).state_dict().values(),
                                                  p.state_dict().values()))


@pytest.mark.slow
def test_pruned_checkpoint_loads_in_a_fresh_process_without_torch_pruning(tmp_path):
    p, _ = prune_restorer(small(), PruneSettings(ratio=0.5, **MAGNITUDE))
    save_restorer(p, tmp_path / "m")
    x, t, c = inputs((16, 24))
    save_file({"x": x, "t": t, "c": c}, str(tmp_path / "in.safetensors"))
    code = (
        "import sys; sys.modules['torch_pruning'] = None  # any import of it now fails\n"
        "import torch; from safetensors.torch import load_file, save_file\n"
        "from edgeir.load import load_restorer\n"
        f"r = load_restorer({str(tmp_path / 'm')!r}); d = load_file({str(tmp_path / 'in.safetensors')!r})\n"
        "with torch.no_grad(): y = r.denoiser(d['x'], d['t'], d['c'])\n"
        f"save_file({{'y': y}}, {str(tmp_path / 'out.safetensors')!r}); print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip() == "ok", out.stderr
    with torch.no_grad():  # (thread counts differ between the processes: float sums may too, slightly)
        assert torch.allclose(load_file(str(tmp_path / "out.safetensors"))["y"], p.denoiser(x, t, c), atol=1e-6)
    loaded = load_restorer(tmp_path / "m")
    assert loaded.config == p.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), p.state_dict().values()))


def test_attention_prunes_q_and_k_together_per_head_and_keeps_the_kept_channels_exact():
    """Zero some head dimensions of q/k/v (and out's matching inputs): pruning exactly those must not change
    the output. It would if q lost other channels than k, if heads were re-split, or if the softmax scale
    (read from q's width) were not corrected."""
    r = small()
    net = r.denoiser.net
    attn = net.mid_attn
    gone = [0, 3, 5, 16, 19, 21]  # three of each head's 16 dimensions, the same ones in both heads
    with torch.no_grad():
        for conv in (attn.q, attn.k, attn.v):
            conv.weight[gone] = 0
            conv.bias[gone] = 0
        attn.out.weight[:, gone] = 0
        before = net(*inputs((16, 16)))
    ratios = {name: 0.0 for name in net.config.width_layers()}
    ratios["mid_attn.q"] = ratios["mid_attn.v"] = 0.2  # 32 -> 25.6 -> 26 (a multiple of 2 heads)
    names = {net.get_submodule(layer): n for n, (layer, _) in net.config.width_layers().items()}
    res = prune_network(net, inputs((16, 16)), 0.0, ratios, names)
    assert attn.q.out_channels == attn.k.out_channels == attn.v.out_channels == attn.out.in_channels == 26
    assert attn.active_heads == 2
    for conv in ("q", "k", "v"):
        assert set(range(32)) - set(res.kept[f"mid_attn.{conv}"].tolist()) == set(gone)
    with torch.no_grad():
        assert torch.allclose(net(*inputs((16, 16))), before, atol=1e-5)
    assert {k: v for k, v in res.widths.items() if v[0] != v[1]} == {"mid_attn.q/mid_attn.v": (32, 26)}


def test_groupnorm_breaking_ratios_are_adjusted_or_refused():
    r = small()
    p, res = prune_restorer(r, PruneSettings(ratio=0.3, round_to=1, **MAGNITUDE))  # 11.2 of 16: 3 per group
    assert any(a.startswith("down.0: 11.2 -> 12 channels (a multiple of 4)") for a in res.adjusted)
    for m in p.modules():
        if isinstance(m, torch.nn.GroupNorm):
            assert m.num_groups == 4 and m.num_channels % 4 == 0
    with pytest.raises(ConfigError, match=r"ratio 0.9 would leave \S+ 1.6 of its 16 channels, but it needs a "
                                          r"multiple of 4.*at most 0.75") as e:
        prune_restorer(r, PruneSettings(ratio=0.9, **MAGNITUDE))
    assert "\n" not in str(e.value)
    _, res = prune_restorer(r, PruneSettings(ratio=0.3, **MAGNITUDE))  # round_to=8 where GroupNorm allows it
    assert any(a.startswith("down.0: 11.2 -> 8 channels (a multiple of 8)") for a in res.adjusted)
    with pytest.raises(ConfigError, match="unknown width.*down.7"):
        prune_restorer(r, PruneSettings(layer_ratios={"down.7": 0.5}, **MAGNITUDE))
    with pytest.raises(ConfigError, match="share their channels"):
        prune_restorer(r, PruneSettings(layer_ratios={"mid_attn.q": 0.5, "mid_attn.v": 0.25}, **MAGNITUDE))
    with pytest.raises(ValueError, match="unknown width"):
        UNetConfig(channels=(16, 32), norm_groups=4, widths={"up.9": 8})


def test_taylor_importance_follows_the_denoising_loss_at_the_visited_timesteps():
    """Hidden channels that feed nothing but have large time-embedding weights: magnitude keeps them, Taylor
    (zero gradient through them) removes them."""
    r = small()
    block = r.denoiser.net.down[0][0]
    dead = [1, 5, 9, 13]  # the same position in each of the 4 GroupNorm groups
    with torch.no_grad():
        block.conv1.weight[dead] = 0
        block.conv2.weight[:, dead] = 0
        block.emb.weight[dead] *= 50
        block.emb.weight[[c + 16 for c in dead]] *= 50
    seen = []
    hook = r.denoiser.net.register_forward_pre_hook(lambda m, a: seen.extend(a[1].tolist()))
    taylor_gradients(r, pairs(1))
    hook.remove()
    assert sorted(set(seen), reverse=True) == r.config.timesteps()
    settings = {"ratio": 0.0, "layer_ratios": {"down.0.0.conv1": 0.25}, "round_to": 1}  # 16 -> 12
    _, by_magnitude = prune_restorer(r, PruneSettings(**settings, importance="magnitude"))
    _, by_taylor = prune_restorer(r, PruneSettings(**settings, importance="taylor"), pairs(2))
    assert set(dead) <= set(by_magnitude.kept["down.0.0.conv1"].tolist())
    assert not set(dead) & set(by_taylor.kept["down.0.0.conv1"].tolist())


def test_diffusers_unet2d_prunes_with_attention_and_keeps_io_shapes():
    pytest.importorskip("diffusers")
    from edgeir.models.diffusers_unet import DiffusersUNet

    unet = tiny_diffusers_unet()
    net = DiffusersUNet(unet).eval()
    before = sum(p.numel() for p in net.parameters())
    res = prune_network(net, inputs((16, 16), batch=1), 0.5)
    assert sum(p.numel() for p in net.parameters()) < 0.35 * before
    assert unet.conv_out.weight.shape == (3, 8, 3, 3) and unet.conv_in.in_channels == 6
    attns = [m for m in unet.modules() if hasattr(m, "to_q")]
    assert attns and all(a.to_q.out_features == a.to_k.out_features == 16 and a.heads == 4 for a in attns)
    assert res.widths["unet.conv_in"] == (16, 8)
    with torch.no_grad():
        for size in [(16, 16), (32, 16)]:
            x, t, c = inputs(size)
            out = net(x, t, c)
            assert out.shape == (2, 3, *size) and torch.isfinite(out).all()


def test_diffusers_attention_pruning_keeps_the_kept_channels_exact():
    """As for our attention: diffusers' SDPA processor scales logits by the current head width, so pruning
    exactly the zeroed head dimensions changes nothing only if the scale change is folded into to_q."""
    pytest.importorskip("diffusers")
    from edgeir.models.diffusers_unet import DiffusersUNet

    unet = tiny_diffusers_unet()
    net = DiffusersUNet(unet).eval()
    attn = unet.down_blocks[1].attentions[0]  # 4 heads of 8 dimensions
    gone = [h * 8 + d for h in range(4) for d in (1, 5)]
    with torch.no_grad():
        for lin in (attn.to_q, attn.to_k, attn.to_v):
            lin.weight[gone] = 0
            lin.bias[gone] = 0
        attn.to_out[0].weight[:, gone] = 0
        before = net(*inputs((16, 16)))
    group = "unet.down_blocks.1.attentions.0.to_v"
    res = prune_network(net, inputs((16, 16)), 0.0, {group: 0.25})
    assert attn.to_q.out_features == attn.to_k.out_features == attn.to_v.out_features == 24 and attn.heads == 4
    assert {k: v for k, v in res.widths.items() if v[0] != v[1]} == {group: (32, 24)}
    with torch.no_grad():
        assert torch.allclose(net(*inputs((16, 16))), before, atol=1e-5)


@pytest.mark.slow
def test_stage_prunes_and_recovers_towards_the_unpruned_model(tmp_path):
    teacher = small()
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32, 3), dtype=np.float32) for _ in range(3)]
    cases = degrade_set(teacher.task, [("a", images[0])], None)  # sizes the latency measurement
    ctx = StageContext(teacher=teacher, student=teacher, train_images=images, eval_cases=cases, work_dir=tmp_path)
    settings = PruneSettings(ratio=0.5, taylor_batches=1, latency_runs=2,
                             recovery=RecoverySettings(steps=0, batch=4, patch=16, lr=2e-3, feature_weight=0.1))
    unrecovered = run(settings, ctx).model
    out = run(settings.model_copy(update={"recovery": settings.recovery.model_copy(update={"steps": 40})}), ctx)
    assert out.info["params"][1] < out.info["params"][0] / 2
    assert out.info["macs_256x256"][1] < out.info["macs_256x256"][0] / 2
    ort = out.info["unet_ms_onnxruntime"]  # measured, not compared: timing is not a test
    assert ort["size"] == [32, 32] and ort["before"] > 0 and ort["after"] > 0
    assert out.model.config.provenance["pruned_by"]["settings"]["ratio"] == 0.5
    x, t, c = inputs((16, 16))
    with torch.no_grad():
        goal = teacher.denoiser(x, t, c)

        def gap(m: RestorerModel) -> float:
            return (m.denoiser(x, t, c) - goal).pow(2).mean().item()

        assert gap(out.model) < 0.7 * gap(unrecovered)
    save_restorer(out.model, tmp_path / "m")  # what the pipeline does with a stage's output
    assert load_restorer(tmp_path / "m").config == out.model.config


def test_recovery_with_several_crop_sizes_takes_turns_between_them(tmp_path, monkeypatch):
    from edgeir.compress import prune

    teacher = small()
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32, 3), dtype=np.float32) for _ in range(3)]
    ctx = StageContext(teacher=teacher, student=teacher, train_images=images, eval_cases=[], work_dir=tmp_path)
    seen = []

    def record(student, teacher, pairs, settings, *rest):
        seen.extend(next(pairs)[0].shape[-1] for _ in range(4))
        return [0.0]

    monkeypatch.setattr(prune, "recover", record)
    rec = RecoverySettings(steps=4, batch=2, patch=[16, 32])
    run(PruneSettings(ratio=0.5, taylor_batches=1, latency_runs=0, recovery=rec), ctx)
    assert seen == [32, 16, 32, 16]  # the Taylor batch took the first 16 px one
    with pytest.raises(ConfigError, match="no training image is at least 48x48"):
        run(PruneSettings(ratio=0.5, recovery=rec.model_copy(update={"patch": [16, 48]})), ctx)


def _recover_on_rank(rank: int, port: int, folder: str) -> None:
    import torch.distributed as dist

    from edgeir.train import ddp

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    teacher = small()
    student, _ = prune_restorer(teacher, PruneSettings(ratio=0.5, **MAGNITUDE))
    recover(ddp.wrap(student.denoiser), teacher, pairs(3), RecoverySettings(steps=3, lr=1e-3), seed=0)
    if rank == 0:
        save_file(student.denoiser.net.state_dict(), f"{folder}/ddp.safetensors")
    dist.destroy_process_group()


@pytest.mark.slow
def test_recovery_under_ddp_takes_the_steps_one_process_takes(tmp_path):
    """Two processes with half a batch each end where one process with the whole batch ends."""
    import torch.multiprocessing as mp

    teacher = small()
    student, _ = prune_restorer(teacher, PruneSettings(ratio=0.5, **MAGNITUDE))
    recover(student.denoiser, teacher, pairs(3), RecoverySettings(steps=3, lr=1e-3), seed=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_recover_on_rank, args=(port, str(tmp_path)), nprocs=2)
    ddp_state = load_file(str(tmp_path / "ddp.safetensors"))
    start = prune_restorer(teacher, PruneSettings(ratio=0.5, **MAGNITUDE))[0].denoiser.net.state_dict()
    for k, v in student.denoiser.net.state_dict().items():
        assert torch.allclose(ddp_state[k], v, atol=1e-5), k
    assert any(not torch.equal(v, start[k]) for k, v in ddp_state.items())
