"""ml.types.TrainMetrics: typed, the same metrics.json keys as before, and older files still read."""

from __future__ import annotations

import json
from pathlib import Path

from ml.model_folder import read_metrics
from ml.types import TrainMetrics

UNVALIDATED = {"map5": None, "top1": None, "top5": None, "new_precision": None, "new_recall": None}


def test_old_spellings_and_unknown_keys_are_understood():
    old = {
        "map@5": 0.61,
        "top1_accuracy": 0.5,
        "acc@5": 0.8,
        "new_whale_precision": 0.25,
        "new_whale_r": 0.75,
        "steps": 40,
        "localizer_retrain": {"iou_after": 0.7},
    }
    m = TrainMetrics.from_dict(old)
    assert m.headline() == {"map5": 0.61, "top1": 0.5, "top5": 0.8, "new_precision": 0.25, "new_recall": 0.75}
    assert m.steps == 40 and m.arch is None
    assert m.extra == {"localizer_retrain": {"iou_after": 0.7}}
    assert m.to_dict()["localizer_retrain"] == {"iou_after": 0.7} and "map@5" not in m.to_dict()


def test_the_first_numeric_spelling_wins():
    m = TrainMetrics.from_dict({"map5": "n/a", "map_at_5": 0.4, "val_map5": 0.9, "top1": True})
    assert m.map5 == 0.4 and m.top1 is None
    assert TrainMetrics.from_dict(None).headline() == {k: None for k in UNVALIDATED}


def test_unvalidated_run_keeps_the_old_key_set():
    d = TrainMetrics(steps=3, version="v").to_dict()
    for key, value in UNVALIDATED.items():
        assert d[key] is value
    for absent in ("n", "map5_known_only", "new_threshold", "new_threshold_choice", "init_from", "localizer"):
        assert absent not in d
    validated = TrainMetrics(map5=0.5, n=10, map5_known_only=None, new_threshold=0.5).to_dict()
    assert validated["n"] == 10 and validated["map5_known_only"] is None and "new_threshold_choice" in validated


def test_train_result_metrics_match_metrics_json(tiny_trained):
    result, _ = tiny_trained
    assert isinstance(result.metrics, TrainMetrics)
    written = json.loads((Path(result.model_dir) / "metrics.json").read_text())
    assert set(written) == set(result.metrics.to_dict())
    assert read_metrics(result.model_dir) == TrainMetrics.from_dict(written)
    assert read_metrics(result.model_dir).version == result.metrics.version
    assert result.metrics.extra == {}  # train() writes only keys TrainMetrics names
    assert read_metrics(Path(result.model_dir) / "missing") is None
