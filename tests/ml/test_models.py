import math

import numpy as np
import pytest
import torch

from ml.device import autocast, pick_device
from ml.models import ArcMarginHead, create_model


@pytest.mark.parametrize("head", ["arcface", "softmax"])
def test_shapes_and_l2_norm(head):
    torch.manual_seed(0)
    model = create_model("resnet18", embedding_dim=32, num_classes=7, head=head)
    model.eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.inference_mode():
        emb = model.embed(x)
        logits = model(x)
    assert emb.shape == (3, 32)
    assert emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert logits.shape == (3, 7)
    assert model.backbone.conv1.in_channels == 1


def test_arcface_margin_lowers_target_logit():
    torch.manual_seed(0)
    head = ArcMarginHead(16, 5, s=30.0, m=0.5)
    emb = torch.randn(8, 16)
    labels = torch.arange(8) % 5
    plain = head(emb)
    margin = head(emb, labels)
    idx = torch.arange(8)
    assert torch.all(margin[idx, labels] < plain[idx, labels])
    # non-target logits untouched
    mask = torch.ones_like(plain, dtype=torch.bool)
    mask[idx, labels] = False
    assert torch.allclose(margin[mask], plain[mask])


def test_arcface_margin_monotone_past_pi():
    """For theta + m > pi the target logit must keep decreasing as theta grows (no wrap-around)."""
    head = ArcMarginHead(2, 1, s=1.0, m=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
    thetas = torch.linspace(0.0, math.pi, 50)
    emb = torch.stack([torch.cos(thetas), torch.sin(thetas)], dim=1)
    out = head(emb, torch.zeros(50, dtype=torch.long))[:, 0]
    assert torch.all(out[1:] <= out[:-1] + 1e-6)
    # exact cos(theta + m) in the normal region
    assert torch.isclose(out[10], torch.cos(thetas[10] + 0.5), atol=1e-5)


def test_easy_margin_keeps_obtuse_cosines():
    head = ArcMarginHead(2, 1, s=1.0, m=0.5, easy_margin=True)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0]]))
    emb = torch.tensor([[-1.0, 0.2]])
    assert torch.allclose(head(emb, torch.zeros(1, dtype=torch.long)), head(emb))


def test_init_weights_local_file(tmp_path):
    torch.manual_seed(1)
    src = create_model("resnet18", embedding_dim=32, num_classes=4, head="arcface")
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    torch.manual_seed(2)
    dst = create_model("resnet18", embedding_dim=32, num_classes=9, head="arcface", init_weights=str(path))
    assert torch.equal(dst.embedding.weight, src.embedding.weight)
    assert torch.equal(dst.backbone.conv1.weight, src.backbone.conv1.weight)
    # head shape differs -> skipped and reported as missing
    assert "head.weight" in dst.init_report["missing"]


def test_init_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        create_model("resnet18", embedding_dim=8, num_classes=2, init_weights=str(tmp_path / "nope.pt"))


def test_device_cpu_fallback():
    dev = pick_device()
    assert dev.type in ("cpu", "cuda")
    assert pick_device("cpu").type == "cpu"
    with autocast(torch.device("cpu")):
        y = torch.ones(2) * 2
    assert y.dtype == torch.float32


def test_bf16_embeddings_are_fp32_unit_vectors_close_to_fp32_ones():
    """What a CUDA worker computes (bf16 autocast), checked through the CPU's autocast."""
    from ml.models import embed_crops

    torch.manual_seed(0)
    model = create_model("resnet18", embedding_dim=16, num_classes=3)
    crops = [np.random.default_rng(i).standard_normal((64, 64)).astype(np.float32) for i in range(4)]
    full = embed_crops(model, crops, torch.device("cpu"), precision="fp32")
    half = embed_crops(model, crops, torch.device("cpu"), precision="bf16")
    assert half.dtype == np.float32 and np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    assert (full * half).sum(axis=1).min() > 0.98  # bf16 rounding, same directions
    with autocast(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision"):
        autocast("cpu", "fp16x")


@pytest.mark.parametrize("pooling", ["avg", "gem", "grid"])
def test_poolings_give_unit_embeddings(pooling):
    torch.manual_seed(0)
    model = create_model("resnet18", embedding_dim=16, num_classes=3, pooling=pooling).eval()
    with torch.inference_mode():
        emb = model.embed(torch.randn(2, 1, 64, 64))
    assert emb.shape == (2, 16) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    # grid pooling keeps each 2x2 cell's 512 channels apart: where on the fluke a mark is
    assert model.embedding.in_features == 512 * (4 if pooling == "grid" else 1)
    with pytest.raises(ValueError, match="unknown pooling"):
        create_model("resnet18", embedding_dim=16, num_classes=3, pooling="max")
