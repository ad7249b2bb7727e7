"""FlukeNet: a ResNet backbone on 1-channel crops, an L2-normalised embedding, and a head.

Trained from scratch (no downloaded weights); ``init_weights`` lets an operator point at a
local state-dict file (for example an ImageNet ResNet saved earlier) to start from.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from ml.presets import HEADS, POOLINGS, SCRATCH_ARCHS

if TYPE_CHECKING:
    from ml.backbones import PretrainedFlukeNet

log = logging.getLogger(__name__)

GRID = (2, 2)  # "grid" pooling: average over each cell of a 2x2 grid, concatenated


class GeM(nn.Module):
    """Generalised-mean pooling (Happywhale 2022 1st place): ``(mean(x^p))^(1/p)``, p learnable
    (p=1: average pooling, p->inf: max pooling). Output (B, C)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class ArcMarginHead(nn.Module):
    """Additive angular margin (ArcFace): logits = s * cos(theta + m) for the target class.

    Without labels (inference) it returns s * cos(theta) for every class.
    """

    def __init__(self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.5, easy_margin: bool = False):
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.s = s
        self.m = m
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.set_margin(m)

    def set_margin(self, m: float) -> None:
        """Change the margin (training ramps it up from 0: margin warm-up)."""
        self.m = float(m)
        self.cos_m = math.cos(m)
        self.sin_m = math.sin(m)
        # cos(pi - m): beyond it theta + m would wrap past pi and cos(theta + m) stops decreasing.
        self.th = math.cos(math.pi - m)
        self.mm = math.sin(math.pi - m) * m

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embedding.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cosine = self.cosine(embedding).clamp(-1.0, 1.0)
        if labels is None:
            return cosine * self.s
        sine = torch.sqrt((1.0 - cosine * cosine).clamp(min=0.0))
        phi = cosine * self.cos_m - sine * self.sin_m  # cos(theta + m)
        if self.easy_margin:
            # only apply the margin where theta < pi/2
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            # where theta + m > pi, fall back to a monotone penalty cos(theta) - m*sin(m)
            phi = torch.where(cosine > self.th, phi, cosine - self.mm)
        one_hot = F.one_hot(labels.long(), self.num_classes).to(cosine.dtype)
        logits = one_hot * phi + (1.0 - one_hot) * cosine
        return logits * self.s


class SoftmaxHead(nn.Module):
    """Plain linear classifier over the embedding (seed 000)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(embedding)


class FlukeNet(nn.Module):
    init_report: dict[str, Any] | None  # create_model: what init_weights loaded

    def __init__(
        self,
        arch: str = "resnet50",
        embedding_dim: int = 512,
        num_classes: int = 2,
        head: str = "arcface",
        in_channels: int = 1,
        arcface_s: float = 30.0,
        arcface_m: float = 0.5,
        easy_margin: bool = False,
        pooling: str = "avg",
    ):
        super().__init__()
        if arch not in SCRATCH_ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(SCRATCH_ARCHS)}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if num_classes < 1:
            raise ValueError("num_classes must be >= 1")
        self.arch = arch
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.head_type = head
        self.in_channels = in_channels
        backbone = getattr(torchvision.models, arch)(weights=None)
        backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
        feat_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()  # avgpool (global average pooling) + flatten stay
        self.pooling = pooling
        if pooling == "gem":
            backbone.avgpool = GeM()  # (B, C): torchvision's flatten then is a no-op
        elif pooling == "grid":
            # keeps where a mark is on the fluke (left/right lobe, tip/notch): global pooling throws
            # that away and a from-scratch network on few photos struggles to learn it back
            backbone.avgpool = nn.AdaptiveAvgPool2d(GRID)
            feat_dim *= GRID[0] * GRID[1]
        self.backbone = backbone
        self.feature_dim = feat_dim
        self.embedding = nn.Linear(feat_dim, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)
        if head == "arcface":
            self.head: nn.Module = ArcMarginHead(
                embedding_dim, num_classes, s=arcface_s, m=arcface_m, easy_margin=easy_margin
            )
        else:
            self.head = SoftmaxHead(embedding_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Un-normalised embedding (B, D) after linear + BatchNorm."""
        return self.bn(self.embedding(self.backbone(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised embedding (B, D), float32."""
        return F.normalize(self.features(x).float(), dim=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x), labels)

    def reset_head(self, num_classes: int) -> None:
        """New head for a different class list (fine-tuning on other individuals)."""
        device = self.embedding.weight.device
        if self.head_type == "arcface":
            old = cast(ArcMarginHead, self.head)
            self.head = ArcMarginHead(self.embedding_dim, num_classes, s=old.s, m=old.m, easy_margin=old.easy_margin)
        else:
            self.head = SoftmaxHead(self.embedding_dim, num_classes)
        self.head.to(device)
        self.num_classes = num_classes


def load_weights_file(model: nn.Module, path: str | Path, *, skip_head: bool = False) -> dict:
    """Load a local state-dict (or a dict with ``state_dict``/``model``) non-strictly.

    Keys whose shapes do not match are skipped. Returns ``{"missing": [...], "unexpected": [...],
    "skipped": [...]}`` and logs a warning naming the missing keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(blob, dict):
        for key in ("state_dict", "model"):
            if key in blob and isinstance(blob[key], dict):
                blob = blob[key]
                break
    if not isinstance(blob, dict):
        raise ValueError(f"{path}: not a state dict")
    own = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for k, v in blob.items():
        name = k[len("module.") :] if k.startswith("module.") else k
        # a plain torchvision resnet state dict maps onto our backbone
        if name not in own and ("backbone." + name) in own:
            name = "backbone." + name
        if skip_head and name.startswith("head."):
            skipped.append(name)
            continue
        if name in own and hasattr(v, "shape") and own[name].shape != v.shape:
            if name == "backbone.conv1.weight" and v.ndim == 4 and v.shape[1] == 3 and own[name].shape[1] == 1:
                v = v.sum(dim=1, keepdim=True)  # RGB conv1 -> grayscale
            else:
                skipped.append(name)
                continue
        state[name] = v
    result = model.load_state_dict(state, strict=False)
    report = {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys), "skipped": skipped}
    if report["missing"]:
        log.warning(
            "weights %s: %d missing keys (%s%s)",
            path,
            len(report["missing"]),
            ", ".join(report["missing"][:8]),
            "..." if len(report["missing"]) > 8 else "",
        )
    return report


def create_model(
    arch: str = "resnet50",
    embedding_dim: int = 512,
    num_classes: int = 2,
    head: str = "arcface",
    in_channels: int = 1,
    init_weights: str | None = None,
    **kwargs,
) -> FlukeNet | PretrainedFlukeNet:
    """Build a FlukeNet (weights=None: trained from scratch), or for a pretrained ``arch``
    (``ml.backbones.BACKBONE_ARCHS``) its twin on installed pretrained weights.

    ``init_weights``: path of a local state-dict file loaded with ``strict=False``; the load
    report is kept on ``model.init_report``. ``trainable_blocks`` (pretrained archs: None = all, 0 = frozen
    encoder) is ignored by the from-scratch ResNets, which train whole.
    """
    from ml.backbones import BACKBONE_ARCHS
    from ml.backbones import PretrainedFlukeNet as Pretrained

    if arch in BACKBONE_ARCHS:
        kwargs.pop("pooling", None)  # the pretrained encoders pool their own way
        pretrained = Pretrained(arch, embedding_dim=embedding_dim, num_classes=num_classes, head=head, **kwargs)
        pretrained.init_report = load_weights_file(pretrained, init_weights) if init_weights else None
        return pretrained
    kwargs.pop("trainable_blocks", None)  # a from-scratch network has nothing pretrained to freeze: all of it trains
    model = FlukeNet(
        arch=arch, embedding_dim=embedding_dim, num_classes=num_classes, head=head, in_channels=in_channels, **kwargs
    )
    model.init_report = None
    if init_weights:
        model.init_report = load_weights_file(model, init_weights)
    return model


def embed_crops(
    model: FlukeNet, crops, device, batch_size: int = 64, transform=None, precision: str = "auto"
) -> np.ndarray:
    """Embed float32 (S, S) crops (or (1, S, S) tensors) -> (N, D) float32 L2-normalised numpy."""
    return _batched(model, model.embed, model.embedding_dim, crops, device, batch_size, transform, precision)


def pooled_crops(
    model: FlukeNet, crops, device, batch_size: int = 64, transform=None, precision: str = "auto"
) -> np.ndarray:
    """The backbone's pooled features of crops (before the trained embedding layer), (N, F) L2-normalised.

    Why: ``ml.ood`` scores distribution shift here too. A head trained on synthetic flukes maps a real photo
    close to synthetic ones; the pretrained (ImageNet) features, which training leaves frozen or barely
    moves, still tell a real photo from a render."""
    return _batched(model, model.backbone, model.feature_dim, crops, device, batch_size, transform, precision)


def _batched(model: FlukeNet, fn, dim: int, crops, device, batch_size, transform, precision) -> np.ndarray:
    """``fn`` over the crops in inference-mode batches, rows L2-normalised (float32 numpy)."""
    from ml.device import autocast

    was_training = model.training
    if was_training:  # eval()/train() walk every module: ~0.3 ms each on a ResNet50, per call
        model.eval()
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, len(crops), batch_size):
                chunk = crops[i : i + batch_size]
                xs = []
                for c in chunk:
                    t = transform(c) if transform is not None else torch.as_tensor(np.asarray(c, dtype=np.float32))
                    if t.ndim == 2:
                        t = t[None]
                    xs.append(t)
                x = torch.stack(xs).to(device, non_blocking=True)
                with autocast(device, precision):
                    e = fn(x)
                out.append(F.normalize(e.float().flatten(1), dim=1).cpu().numpy())
    finally:
        if was_training:
            model.train()
    if not out:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)
