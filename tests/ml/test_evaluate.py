import json

import numpy as np
import pytest

from ml.evaluate import (
    EvaluationError,
    evaluate_rankings,
    evaluate_submission,
    read_submission,
    read_truth,
    write_report,
    write_submission,
)
from ml.metrics import confusion_matrix
from ml.types import NEW_WHALE


def test_evaluate_rankings_values():
    truth = ["a", "b", NEW_WHALE, "d"]
    pred = [["a", "x"], ["x", "b"], [NEW_WHALE, "a"], ["x", "y", "z", "w", "d"]]
    m = evaluate_rankings(truth, pred)
    assert m["map5"] == pytest.approx((1 + 0.5 + 1 + 0.2) / 4)
    assert m["top1"] == pytest.approx(0.5)
    assert m["top5"] == pytest.approx(1.0)
    assert m["new_precision"] == pytest.approx(1.0) and m["new_recall"] == pytest.approx(1.0)
    assert m["n"] == 4


def test_write_report_writes_json_and_pngs(tmp_path):
    history = [
        {"epoch": 1, "loss": 2.0, "val_map5": 0.2},
        {"epoch": 2, "loss": 1.5, "val_map5": None},
        {"epoch": 3, "loss": 1.0, "val_map5": 0.5},
    ]
    conf = confusion_matrix(["a", "a", "b"], ["a", "b", "b"])
    paths = write_report(
        {"map5": 0.5, "arr": np.arange(3), "nan": float("nan")}, history, tmp_path / "r", confusion=conf
    )
    names = sorted(p.name for p in paths)
    assert names == ["confusion.png", "loss.png", "map5.png", "metrics.json"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 0
    assert (tmp_path / "r" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data == {"map5": 0.5, "arr": [0, 1, 2], "nan": None}
    # no history, no confusion: just the json
    assert [p.name for p in write_report({"x": 1}, [], tmp_path / "s")] == ["metrics.json"]


def test_submission_roundtrip_and_errors(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("Image,Id\n1.jpg,a\n2.jpg,new_whale\n")
    sub = write_submission({"1.jpg": ["b", "a"], "2.jpg": [NEW_WHALE]}, tmp_path / "sub.csv")
    assert read_truth(truth) == {"1.jpg": "a", "2.jpg": NEW_WHALE}
    assert read_submission(sub) == {"1.jpg": ["b", "a"], "2.jpg": [NEW_WHALE]}
    assert evaluate_submission(sub, truth)["map5"] == pytest.approx(0.75)

    bad = tmp_path / "bad.csv"
    bad.write_text("image,label\n1.jpg,a\n")
    with pytest.raises(EvaluationError, match="missing column"):
        read_truth(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("Image,Id\n1.jpg,a\n1.jpg,b\n")
    with pytest.raises(EvaluationError, match="line 3.*twice"):
        read_submission(dup)
    with pytest.raises(EvaluationError, match="not found"):
        read_truth(tmp_path / "nope.csv")
    partial = write_submission({"1.jpg": ["a"]}, tmp_path / "partial.csv")
    with pytest.raises(EvaluationError, match="no prediction"):
        evaluate_submission(partial, truth)
    many = tmp_path / "many.csv"
    many.write_text("Image,Id\n1.jpg,a b c d e f\n")
    with pytest.raises(EvaluationError, match="at most 5"):
        read_submission(many)


def test_bootstrap_intervals_are_wide_on_few_queries_and_narrow_on_many():
    from ml.evaluate import bootstrap_intervals

    few_truth, few_pred = ["a", "b", "c", "d"] * 2, [["a"], ["x"], ["c"], ["x"]] * 2  # MAP@5 0.5 on 8 queries
    many_truth, many_pred = few_truth * 50, few_pred * 50
    few, many = bootstrap_intervals(few_truth, few_pred), bootstrap_intervals(many_truth, many_pred)
    for ci in (few["map5"], many["map5"]):
        assert ci[0] <= 0.5 <= ci[1]
    assert few["map5"][1] - few["map5"][0] > 0.3  # 8 photos: a difference of 0.3 is within the noise
    assert many["map5"][1] - many["map5"][0] < 0.15
    assert bootstrap_intervals([], []) == {}
    assert bootstrap_intervals(few_truth, few_pred) == few  # seeded: the page shows stable numbers


def test_loss_plot_has_a_panel_per_phase_so_the_localizer_never_shares_the_models_axis(tmp_path):
    """Issue 12, item 8: the localizer's loss (another scale) on the model's axis made the model's
    curve look as if it rose. Each phase gets its own panel, and loss.png is as wide as its panels."""
    from PIL import Image

    from ml.evaluate import loss_panels

    history = [{"epoch": 0, "loss": None}, {"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}]
    metrics = {"localizer": {"history": [{"epoch": 1, "loss": 9.0}, {"epoch": 2, "loss": 7.0}]}}
    panels = loss_panels(metrics, history)
    assert panels == [
        ("model training loss", [1, 2], [2.0, 1.5]),
        ("fluke localizer training loss", [1, 2], [9.0, 7.0]),
    ]
    assert loss_panels({"localizer": {"skipped": "only 2 photos with boxes"}}, history) == panels[:1]
    write_report(metrics, history, tmp_path / "two")
    write_report({}, history, tmp_path / "one")
    two, one = (Image.open(tmp_path / d / "loss.png").size for d in ("two", "one"))
    assert two[0] == 2 * one[0] and two[1] == one[1]


def test_paired_difference_separates_a_consistent_gain_from_noise():
    """Paired over the same queries: a small gain on every query is a win, zero-mean noise is not."""
    from ml.evaluate import paired_difference

    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 200)
    diff, low, high = paired_difference(base + 0.02, base)
    assert abs(diff - 0.02) < 1e-9 and low > 0 and high > 0
    noisy = base + rng.normal(0, 0.3, 200)
    _, low, high = paired_difference(noisy, base)
    assert low < 0 < high
    assert paired_difference([], []) == (0.0, 0.0, 0.0)
