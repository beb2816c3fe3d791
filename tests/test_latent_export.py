"""A latent restorer's separate graphs equal the torch modules they come from: the UNet on latent-shaped inputs
(sample and condition channels, latent sides) within 1e-4, the decoder on a latent and the encoder on an image
within 1e-4, each at two batch sizes and sizes from one export (dynamic shapes for real); the encoder only
where the UNet is conditioned on a latent. The codec's parity gate has teeth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeir.errors import QualityGateError
from edgeir.export import checks, codec
from edgeir.export.unet import export_unet, unet_feeds, unet_multiple, unet_reference
from edgeir.graphs.ort import open_session
from edgeir.load import load_restorer

pytest.importorskip("diffusers")
import pipelines  # tests/pipelines.py: needs diffusers

PARITY = 1e-4
PIPELINES = {"ldm_sr": pipelines.ldm_sr, "kl_restorer": pipelines.kl_restorer}


@pytest.fixture(scope="module", params=list(PIPELINES))
def restorer(request, tmp_path_factory):
    folder = PIPELINES[request.param](tmp_path_factory.mktemp(request.param) / "pipe")
    return load_restorer(folder).eval()


def sizes(m: int) -> list[tuple[int, int, int]]:
    """(batch, height, width) in units of ``m``, unlike the export's example (batch 2, 2m x 3m)."""
    return [(1, 3 * m, 2 * m), (2, 5 * m, 4 * m)]


def test_unet_graph_takes_latent_inputs(restorer, tmp_path):
    cfg = restorer.config
    m = unet_multiple(cfg)
    assert m == cfg.multiple_of // cfg.latent.factor
    sess = open_session(export_unet(restorer, tmp_path / "unet.onnx"))
    rng = np.random.default_rng(0)
    for b, h, w in sizes(m):
        cond = rng.uniform(-1, 1, (b, cfg.unet_cond_channels, h, w)).astype(np.float32)
        feeds = unet_feeds(restorer, cond, rng)
        assert feeds["x_t"].shape == (b, cfg.sample_channels, h, w)
        out = checks.run(sess, feeds)
        assert out.shape == (b, cfg.sample_channels, h, w)
        assert np.abs(out - unet_reference(restorer, feeds)).max() < PARITY


def test_codec_graphs_equal_torch(restorer, tmp_path):
    cfg = restorer.config
    paths = codec.export_codec(restorer, tmp_path)
    expected = {"decoder", "encoder"} if cfg.latent.condition == "latent" else {"decoder"}
    assert set(paths) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.onnx" for n in expected)
    rng = np.random.default_rng(1)
    f, s = cfg.latent.factor, unet_multiple(cfg)
    for name, (module, (inp, _), _) in codec.codec_parts(restorer).items():
        sess = open_session(paths[name].path)
        for b, h, w in sizes(s):
            shape = (b, cfg.sample_channels, h, w) if name == "decoder" else (b, 3, h * f, w * f)
            x = codec.codec_feeds(inp, shape, rng)
            out = checks.run(sess, {inp: x})
            out_shape = (b, 3, h * f, w * f) if name == "decoder" else (b, cfg.sample_channels, h, w)
            assert out.shape == out_shape
            assert np.abs(out - codec.codec_reference(module, x)).max() < PARITY


class Shifted(nn.Module):
    """``module``'s output, off by more than the gate: a graph that does not compute what torch does."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x) + 1e-3


def test_codec_parity_gate_has_teeth(restorer, tmp_path, monkeypatch):
    export = codec.onnx_export
    monkeypatch.setattr(codec, "onnx_export", lambda module, *args: export(Shifted(module), *args))
    with pytest.raises(QualityGateError, match=r"^decoder graph: onnxruntime differs from torch by 1\.0\de-03"):
        codec.export_codec(restorer, tmp_path)


def test_codec_graphs_and_a_tiny_decoder_ride_in_our_format(tmp_path):
    """A restorer whose encoder and decoder run as their exported graphs (``AutoencoderSpec.graphs``) saves with
    its graphs and loads back to the same samples, within the graphs' parity of the torch codec; a distilled
    ``TinyDecoder`` in the decoder's place saves as ``decoder.safetensors`` and loads back exactly."""
    from edgeir.load import save_restorer
    from edgeir.models.codec import DECODER_IO, ENCODER_IO, LatentCodec
    from edgeir.models.config import TinyDecoderSpec
    from edgeir.models.onnx_net import OnnxNet
    from edgeir.models.restorer import RestorerModel
    from edgeir.models.tiny_decoder import TinyDecoder, TinyDecoderConfig
    from edgeir.tasks import Degraded

    r = load_restorer(pipelines.kl_restorer(tmp_path / "pipe"))
    graphs = codec.export_codec(r, tmp_path / "graphs")
    spec = r.config.autoencoder.model_copy(update={"graphs": {k: g.path.name for k, g in graphs.items()}})
    onnx_codec = LatentCodec(spec, r.codec.autoencoder, OnnxNet(graphs["encoder"].path, inputs=ENCODER_IO[:1]),
                             OnnxNet(graphs["decoder"].path, inputs=DECODER_IO[:1]))
    on_graphs = RestorerModel(r.config.model_copy(update={"autoencoder": spec}), r.denoiser.net, onnx_codec)
    d = Degraded(np.random.default_rng(0).random((16, 20, 3), dtype=np.float32))
    expected = r.restore(d, seed=1)
    save_restorer(on_graphs, tmp_path / "on-graphs")
    saved = {p.name for p in (tmp_path / "on-graphs").iterdir()}
    assert {"encoder.onnx", "decoder.onnx", "autoencoder.safetensors"} <= saved
    loaded = load_restorer(tmp_path / "on-graphs")
    assert isinstance(loaded.codec.decoder, OnnxNet) and isinstance(loaded.codec.encoder, OnnxNet)
    assert np.abs(loaded.restore(d, seed=1) - expected).max() < PARITY

    cfg = r.config
    tiny_cfg = TinyDecoderConfig(latent_channels=cfg.latent.channels, factor=cfg.latent.factor, channels=(8, 6))
    tiny_spec = cfg.autoencoder.model_copy(update={"decoder": TinyDecoderSpec(config=tiny_cfg)})
    tiny = RestorerModel(cfg.model_copy(update={"autoencoder": tiny_spec}), r.denoiser.net,
                         LatentCodec(tiny_spec, r.codec.autoencoder, decoder=TinyDecoder(tiny_cfg)))
    save_restorer(tiny, tmp_path / "tiny")
    assert (tmp_path / "tiny" / "decoder.safetensors").is_file()
    back = load_restorer(tmp_path / "tiny")
    assert isinstance(back.codec.decoder, TinyDecoder)
    assert np.array_equal(back.restore(d, seed=1), tiny.restore(d, seed=1))
    assert back.digest() == tiny.digest()
