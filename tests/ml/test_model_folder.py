"""ml.model_folder: what train writes is what the Identifier reads, and older folders still load."""

from __future__ import annotations

import pytest
import torch

from ml.identifier import Identifier
from ml.model_folder import MODEL_FORMAT, ModelFolderError, SavedModel, read_metrics, read_model, write_model_folder
from ml.models import create_model
from ml.types import TrainMetrics

SMALL = dict(arch="resnet18", embedding_dim=16, head="softmax")


def _saved(**overrides) -> SavedModel:
    torch.manual_seed(0)
    model = create_model(num_classes=3, pooling="gem", **SMALL)
    fields = dict(
        state_dict=model.state_dict(),
        classes=["a", "b", "c"],
        image_size=64,
        pooling="gem",
        new_threshold=0.42,
        version="v1",
        config={"arch": "resnet18", "pooling": "gem"},
        **SMALL,
    )
    fields.update(overrides)
    return SavedModel(**fields)


def test_round_trip_through_the_folder(tmp_path):
    saved = _saved()
    write_model_folder(tmp_path, saved, TrainMetrics(map5=0.5, n=4), [{"epoch": 0}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "history.json", "metrics.json", "model.pt"]
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    assert blob["format"] == MODEL_FORMAT and blob["num_classes"] == 3 and blob["head"] == "softmax"
    back = read_model(tmp_path)
    assert (back.arch, back.image_size, back.embedding_dim, back.pooling) == ("resnet18", 64, 16, "gem")
    assert back.classes == ["a", "b", "c"] and back.new_threshold == 0.42 and back.version == "v1"
    assert read_metrics(tmp_path).map5 == 0.5 and read_metrics(tmp_path).n == 4
    ident = Identifier.load(tmp_path, device="cpu")
    assert ident.image_size == 64 and ident.embedding_dim == 16 and ident.new_threshold == 0.42
    assert ident.localizer is None and ident.config["pooling"] == "gem"


def test_folder_without_the_top_level_keys_loads_from_its_config(tmp_path):
    """Early folders saved only config/state_dict/classes: the config supplies the rest."""
    saved = _saved()
    blob = {
        "config": {"arch": "resnet18", "embedding_dim": 16, "head": "softmax", "image_size": 64, "pooling": "gem"},
        "state_dict": saved.state_dict,
        "classes": saved.classes,
    }
    torch.save(blob, tmp_path / "model.pt")
    back = read_model(tmp_path)
    assert (back.arch, back.embedding_dim, back.head, back.image_size) == ("resnet18", 16, "softmax", 64)
    assert back.new_threshold == 0.5 and back.version == "unknown"
    back.build()  # weights match the architecture read back


def test_broken_folders_name_the_problem(tmp_path):
    with pytest.raises(ModelFolderError, match="no model.pt"):
        read_model(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelFolderError, match="cannot read the model"):
        read_model(tmp_path)
    blob = _saved().to_blob()
    blob["arch"] = "resnet34"  # weights of a resnet18
    torch.save(blob, tmp_path / "model.pt")
    with pytest.raises(ModelFolderError, match="does not match its architecture"):
        Identifier.load(tmp_path, device="cpu")
