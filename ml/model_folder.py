"""The model folder format, in one place: what ``ml.train`` writes and ``ml.identifier`` reads.

A model folder holds:

- ``model.pt``: :class:`SavedModel` as a plain dict of tensors, strings and numbers (loadable with
  ``torch.load(..., weights_only=True)``): ``format``, ``config``, ``state_dict``, ``classes``,
  ``new_threshold``, ``version``, ``arch``, ``image_size``, ``embedding_dim``, ``head``, ``num_classes``;
- ``config.json`` (the ``TrainConfig``), ``metrics.json`` (``ml.types.TrainMetrics``), ``history.json``
  (one entry per epoch);
- ``localizer.pt`` (optional; ``ml.localizer.Localizer``), ignored when its metrics say it did not beat
  the default box (``shipped`` False);
- ``calibration.json`` (optional; ``ml.calibration.MatchCalibration``): P(same individual) from cosine and
  RootSIFT inliers, and the new-individual threshold on that P (then also ``model.pt``'s ``new_threshold``);
- ``ood.npz`` (optional; ``ml.ood.OODDetector``): the training embeddings' k-NN reference and the threshold
  above which a query looks unlike the training photos (older folders: no detector, nothing is flagged).

Folders written before ``format`` existed lack some top-level keys: :func:`read_model` falls back on the
saved config and then on the defaults those folders were trained with, so they stay loadable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.io import atomic_torch_save, atomic_write_json
from ml.ood import OOD_FILE  # ml.ood.OODDetector (optional: older folders flag nothing)
from ml.types import DEFAULT_NEW_THRESHOLD, TrainMetrics

MODEL_FORMAT = 1
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
LOCALIZER_FILE = "localizer.pt"
CALIBRATION_FILE = "calibration.json"  # ml.calibration.MatchCalibration (optional: older folders rank by cosine)

# what folders written before these keys were saved were trained with (the TrainConfig defaults of then)
_LEGACY_DEFAULTS = {"arch": "resnet50", "embedding_dim": 512, "head": "arcface", "image_size": 224, "pooling": "avg"}


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded; ``str()`` names the folder and the problem."""


@dataclass
class SavedModel:
    """The content of ``model.pt``: the weights and everything needed to rebuild the network."""

    state_dict: dict[str, Any]
    classes: list[str]
    arch: str
    image_size: int
    embedding_dim: int
    head: str
    pooling: str = "avg"
    new_threshold: float = DEFAULT_NEW_THRESHOLD
    version: str = "unknown"
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def trainable_blocks(self) -> int | None:
        """What the encoder was trained with (``TrainConfig.trainable_blocks``; None for older folders):
        rebuilding with it gives the same module tree (frozen BatchNorms) as in training."""
        value = self.config.get("trainable_blocks")
        return None if value is None else int(value)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_blob(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "config": self.config,
            "state_dict": self.state_dict,
            "classes": list(self.classes),
            "new_threshold": float(self.new_threshold),
            "version": self.version,
            "arch": self.arch,
            "image_size": self.image_size,
            "embedding_dim": self.embedding_dim,
            "head": self.head,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_blob(cls, blob: dict[str, Any]) -> SavedModel:
        """Read a ``model.pt`` dict, old folders included (missing keys: config, then legacy defaults)."""
        cfg = blob.get("config") or {}

        def pick(key: str) -> Any:
            return blob.get(key, cfg.get(key, _LEGACY_DEFAULTS[key]))

        classes = list(blob["classes"])
        if int(blob.get("num_classes", len(classes))) != len(classes):
            raise KeyError(f"num_classes {blob['num_classes']} but {len(classes)} classes")
        return cls(
            state_dict=blob["state_dict"],
            classes=classes,
            arch=str(pick("arch")),
            image_size=int(pick("image_size")),
            embedding_dim=int(pick("embedding_dim")),
            head=str(pick("head")),
            pooling=str(cfg.get("pooling", _LEGACY_DEFAULTS["pooling"])),
            new_threshold=float(blob.get("new_threshold", DEFAULT_NEW_THRESHOLD)),
            version=str(blob.get("version", "unknown")),
            config=dict(cfg),
        )

    def build(self):
        """The ``FlukeNet`` this file describes, with its weights loaded (on the CPU, train mode)."""
        from ml.models import create_model

        model = create_model(
            self.arch,
            self.embedding_dim,
            self.num_classes,
            self.head,
            pooling=self.pooling,
            trainable_blocks=self.trainable_blocks,
        )
        model.load_state_dict(self.state_dict)
        return model


def write_model_folder(
    out_dir: str | Path,
    saved: SavedModel,
    metrics: TrainMetrics,
    history: list[dict[str, Any]],
    calibration: Any = None,
    ood: Any = None,
) -> None:
    """Write ``model.pt``, ``config.json``, ``history.json``, ``metrics.json`` and, when given, the
    ``ml.calibration.MatchCalibration`` as ``calibration.json`` and the ``ml.ood.OODDetector`` as ``ood.npz``
    (each atomically). A stale ``calibration.json`` or ``ood.npz`` of an earlier run in the same folder is
    removed: it belongs to other weights."""
    out = Path(out_dir)
    cal_path = out / CALIBRATION_FILE
    if calibration is not None:
        atomic_write_json(cal_path, calibration.to_dict(), indent=1)
    elif cal_path.exists():
        cal_path.unlink()
    if ood is not None:
        ood.save(out)
    elif (out / OOD_FILE).exists():
        (out / OOD_FILE).unlink()
    atomic_torch_save(saved.to_blob(), out / MODEL_FILE)
    atomic_write_json(out / CONFIG_FILE, saved.config, indent=2)
    atomic_write_json(out / HISTORY_FILE, history, indent=2)
    write_metrics(out, metrics)


def write_metrics(out_dir: str | Path, metrics: TrainMetrics) -> None:
    atomic_write_json(Path(out_dir) / METRICS_FILE, metrics.to_dict(), indent=2, sort_keys=True, default=str)


def read_profile(model_dir: str | Path):
    """The species profile (``ml.profiles``) a folder was trained for, from its ``config.json``, with the local
    matching it recorded (``ml.profiles.folder_profile``), without loading the model: what a page that shows the
    worker's evidence must read to draw it the way it was computed. A folder from before profiles (no config, no
    profile) is a humpback fluke model, as ``ml.identifier`` loads it."""
    from ml.profiles import folder_profile

    path = Path(model_dir) / CONFIG_FILE
    config = json.loads(path.read_text()) if path.is_file() else {}
    return folder_profile(config)


def read_model(model_dir: str | Path, *, trusted: bool = False) -> SavedModel:
    """Read ``model_dir/model.pt``. ``trusted``: allow pickled objects beyond tensors (fine-tuning
    from one's own folders); the site's loader reads tensors only."""
    import torch

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelFolderError(f"{model_dir}: not a model folder (no {MODEL_FILE})")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as exc:
        raise ModelFolderError(f"{path}: cannot read the model ({exc})") from None
    try:
        return SavedModel.from_blob(blob)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"{path}: model file does not match its architecture ({exc})") from None


def load_model(model_dir: str | Path) -> tuple[SavedModel, Any]:
    """``read_model`` plus the rebuilt network (CPU, eval mode)."""
    saved = read_model(model_dir)
    try:
        model = saved.build()
    except (KeyError, RuntimeError) as exc:
        path = Path(model_dir) / MODEL_FILE
        raise ModelFolderError(f"{path}: model file does not match its architecture ({exc})") from None
    return saved, model.eval()


def load_localizer(model_dir: str | Path, device: Any = "cpu"):
    """The folder's ``localizer.pt``, or None when there is none or it did not beat the default box on
    its validation photos (the Identifier then uses the flagged default box)."""
    path = Path(model_dir) / LOCALIZER_FILE
    if not path.is_file():
        return None
    from ml.localizer import Localizer

    localizer = Localizer.load(path, device=device)
    return None if localizer.metrics.get("shipped") is False else localizer


def load_calibration(model_dir: str | Path):
    """The folder's ``ml.calibration.MatchCalibration``, or None for folders trained without one."""
    from ml.calibration import MatchCalibration

    return MatchCalibration.load(model_dir)


def load_ood(model_dir: str | Path):
    """The folder's ``ml.ood.OODDetector``, or None for folders trained without one; an unreadable
    ``ood.npz`` is a ``ModelFolderError`` (a detector silently missing would hide distribution shift)."""
    from ml.ood import OODDetector

    try:
        return OODDetector.load(model_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"{Path(model_dir) / OOD_FILE}: cannot read the OOD detector ({exc})") from None


def read_metrics(model_dir: str | Path) -> TrainMetrics | None:
    """``metrics.json`` as :class:`TrainMetrics` (older spellings understood); None when absent or unreadable."""
    try:
        return TrainMetrics.from_dict(json.loads((Path(model_dir) / METRICS_FILE).read_text()))
    except (OSError, ValueError):
        return None
