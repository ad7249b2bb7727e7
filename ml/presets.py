"""The choices and default recipes of training, stated once (importable without torch).

``TrainConfig`` (ml/train.py), the CLI (ml/cli.py) and the network factory (ml/models.py) read their
choices and defaults from here, so that the site's training form and settings can too, without
importing torch: everything here is a plain tuple, dict or frozen dataclass.

- ``PRETRAINED`` (= ``DEFAULT``): frozen pretrained EfficientNet-Lite0 at 224 px, a few epochs, the winner of
  ``bench/real_reid.py`` on real photos within this CPU's budget: what ``TrainConfig``, ``python -m ml train``,
  the site's training form and ``seed_demo`` use when nothing is said.
- ``SEED000`` is the seed 000 recipe (the ResNet50 humpback study), selectable by name.
- ``QUICK`` is a small from-scratch ResNet-18 recipe.
- ``PHOTOMETRIC`` is ``PRETRAINED`` with photometric augmentation (``ml.preprocess.PhotometricTransform``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

SCRATCH_ARCHS = ("resnet18", "resnet34", "resnet50")  # torchvision ResNets trained from scratch (seed 000)
PRETRAINED_ARCHS = (
    "efficientnet_lite0",
    "dinov2_s",
)  # ImageNet / DINOv2 weights from installed packages (ml.backbones)
ARCHS = SCRATCH_ARCHS + PRETRAINED_ARCHS
ARCH_LABELS = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "efficientnet_lite0": "EfficientNet-Lite0 (pretrained)",
    "dinov2_s": "DINOv2 ViT-S/14 (pretrained)",
}
HEADS = ("arcface", "softmax")
POOLINGS = ("avg", "gem", "grid")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("auto", "bf16", "fp32")
IMAGE_SIZES = (128, 160, 224, 288, 384, 448)  # square crop sides offered to operators

# Starting learning rate per optimizer: seed 000 trained with Adam at 0.005, seed 001 with SGD at 0.01.
LR_BY_OPTIMIZER = {"adam": 0.005, "sgd": 0.01}


def default_lr(optimizer: str) -> float:
    """The starting learning rate of ``optimizer`` (``ValueError`` for an unknown one)."""
    try:
        return LR_BY_OPTIMIZER[optimizer]
    except KeyError:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}") from None


@dataclass(frozen=True)
class Recipe:
    """The knobs an operator chooses; everything else keeps ``TrainConfig``'s default."""

    name: str
    arch: str
    image_size: int
    epochs: int
    batch_size: int
    optimizer: str = "adam"
    embedding_dim: int = 512
    head: str = "arcface"
    pooling: str = "avg"
    trainable_blocks: int | None = None  # pretrained archs: 0 = frozen encoder (ml.backbones.PretrainedFlukeNet)
    photometric: bool = False  # ml.preprocess.PhotometricTransform beside the geometric augmentation

    @property
    def lr(self) -> float:
        return default_lr(self.optimizer)

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``TrainConfig`` (its field names, ``lr`` included)."""
        kwargs = asdict(self)
        del kwargs["name"]
        kwargs["lr"] = self.lr
        return kwargs


# bench/real_reid.py's winner within this CPU's budget: frozen EfficientNet-Lite0 (only the embedding and the
# ArcFace head learn: a few epochs suffice) + RootSIFT re-ranking of the top 50 + logistic fusion
PRETRAINED = Recipe(
    "pretrained", arch="efficientnet_lite0", image_size=224, epochs=4, batch_size=32, trainable_blocks=0
)
SEED000 = Recipe("seed000", arch="resnet50", image_size=224, epochs=20, batch_size=32)  # the ResNet50 humpback study
QUICK = Recipe("quick", arch="resnet18", image_size=128, epochs=10, batch_size=32)
# the default recipe plus photometric augmentation (contrast, gamma, blur, JPEG, noise, occlusion: issue 10
# item 5), selectable by name until bench/recipe_sweep.py --data on real photos says whether it should be the default
PHOTOMETRIC = dataclasses.replace(PRETRAINED, name="photometric", photometric=True)
DEFAULT = PRETRAINED  # TrainConfig's, the CLI's, the site's and seed_demo's recipe
RECIPES = {recipe.name: recipe for recipe in (PRETRAINED, PHOTOMETRIC, SEED000, QUICK)}
