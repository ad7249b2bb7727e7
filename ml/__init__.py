"""Humpback fluke identification library (Django-free).

Public names are importable from their modules (see docs/ML_CONTRACT.md) and, lazily, from
``ml`` itself: ``from ml import Identifier, TrainConfig`` imports torch only when used (the training
function itself is ``ml.train.train``: ``ml.train`` is the module).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # types
    "Box": "ml.types",
    "Localization": "ml.types",
    "ImageHashes": "ml.types",
    "Match": "ml.types",
    "TrainProgress": "ml.types",
    "TrainResult": "ml.types",
    "NEW_WHALE": "ml.types",
    "TrainMetrics": "ml.types",
    # files, presets, the model folder
    "atomic_write_bytes": "ml.io",
    "atomic_write_text": "ml.io",
    "atomic_write_json": "ml.io",
    "atomic_torch_save": "ml.io",
    "Recipe": "ml.presets",
    "SavedModel": "ml.model_folder",
    "read_model": "ml.model_folder",
    "load_model": "ml.model_folder",
    "write_model_folder": "ml.model_folder",
    "read_metrics": "ml.model_folder",
    # images / preprocessing
    "load_image": "ml.images",
    "compute_hashes": "ml.images",
    "phash": "ml.images",
    "hamming": "ml.images",
    "NEAR_DUPLICATE_BITS": "ml.images",
    "read_exif": "ml.images",
    "preprocess": "ml.preprocess",
    "crop_box": "ml.preprocess",
    "EvalTransform": "ml.preprocess",
    "TrainTransform": "ml.preprocess",
    # models / training / inference
    "pick_device": "ml.device",
    "autocast": "ml.device",
    "create_model": "ml.models",
    "FlukeNet": "ml.models",
    "DatasetError": "ml.data",
    "TrainConfig": "ml.train",
    "TrainingCancelled": "ml.train",  # the function: ml.train.train
    "Identifier": "ml.identifier",
    "PreparedImage": "ml.identifier",
    "ModelFolderError": "ml.model_folder",
    # search / evaluation
    "GalleryIndex": "ml.gallery",
    "map_at_k": "ml.metrics",
    "top_k_accuracy": "ml.metrics",
    "new_whale_precision_recall": "ml.metrics",
    "select_new_threshold": "ml.metrics",
    "NewThresholdChoice": "ml.metrics",
    "DEFAULT_NEW_THRESHOLD": "ml.types",
    "write_report": "ml.evaluate",
    "Localizer": "ml.localizer",
    "train_localizer": "ml.localizer",
    "default_localization": "ml.localizer",
    "iou": "ml.localizer",
    "generate_dataset": "ml.synth",
    "occlusion_map": "ml.explain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
