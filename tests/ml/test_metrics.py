import numpy as np
import pytest

from ml.metrics import (apply_new_threshold, choose_new_threshold, confusion_matrix, map_at_k,
                        new_whale_precision_recall, top_k_accuracy)
from ml.types import NEW_WHALE

TRUTH = ["a", "b", "c", "d"]
PRED = [
    ["a", "x", "y", "z", "w"],  # 1
    ["x", "b", "y", "z", "w"],  # 1/2
    ["x", "y", "z", "w", "v"],  # 0
    ["x", "y", "z", "w", "d"],  # 1/5
]


def test_map_at_k_hand_computed():
    assert map_at_k(TRUTH, PRED) == pytest.approx((1 + 0.5 + 0 + 0.2) / 4)
    assert map_at_k(TRUTH, PRED, k=4) == pytest.approx((1 + 0.5) / 4)
    assert map_at_k(["a"], [["b", "a", "a"]]) == pytest.approx(0.5)
    assert map_at_k([], []) == 0.0
    with pytest.raises(ValueError):
        map_at_k(["a"], [])


def test_top_k_accuracy():
    assert top_k_accuracy(TRUTH, PRED, 1) == pytest.approx(0.25)
    assert top_k_accuracy(TRUTH, PRED, 2) == pytest.approx(0.5)
    assert top_k_accuracy(TRUTH, PRED, 5) == pytest.approx(0.75)


def test_new_whale_precision_recall():
    truth = [NEW_WHALE, NEW_WHALE, "a", "b"]
    pred = [[NEW_WHALE, "a"], ["a", NEW_WHALE], [NEW_WHALE, "a"], ["b"]]
    p, r = new_whale_precision_recall(truth, pred)
    assert p == pytest.approx(0.5) and r == pytest.approx(0.5)
    assert new_whale_precision_recall(["a"], [["a"]]) == (0.0, 0.0)


def test_apply_new_threshold():
    ranked = [("a", 0.9), ("b", 0.7), ("c", 0.5)]
    assert apply_new_threshold(ranked, 0.8) == ["a", NEW_WHALE, "b", "c"]
    assert apply_new_threshold(ranked, 0.95) == [NEW_WHALE, "a", "b", "c"]
    assert apply_new_threshold(ranked, 0.1, k=3) == ["a", "b", "c"]


def test_choose_new_threshold_maximises_map():
    # known whales score high for their own label, new whales score low everywhere
    ranked = [
        [("a", 0.9), ("b", 0.3)],
        [("b", 0.85), ("a", 0.2)],
        [("a", 0.4), ("b", 0.35)],   # a new whale
        [("b", 0.45), ("a", 0.1)],   # a new whale
    ]
    truth = ["a", "b", NEW_WHALE, NEW_WHALE]
    t, m = choose_new_threshold(ranked, truth)
    assert 0.45 < t <= 0.85
    assert m == pytest.approx(1.0)
    # brute-force check against apply_new_threshold + map_at_k on a grid
    grid = np.linspace(0, 1, 101)
    best = max(map_at_k(truth, [apply_new_threshold(r, g) for r in ranked]) for g in grid)
    assert m >= best - 1e-9
    # a threshold that labels everything new: new whales 1, known whales 1/2
    t2, m2 = choose_new_threshold(ranked, truth, candidates=[2.0])
    assert t2 == 2.0 and m2 == pytest.approx(0.75)


def test_choose_new_threshold_random_agrees_with_bruteforce():
    rng = np.random.default_rng(0)
    labels = list("abcdefgh")
    ranked, truth = [], []
    for _ in range(60):
        s = np.sort(rng.random(5))[::-1]
        ranked.append(list(zip(rng.permutation(labels)[:5], s)))
        truth.append(NEW_WHALE if rng.random() < 0.3 else str(rng.choice(labels)))
    cands = np.linspace(0, 1, 51)
    t, m = choose_new_threshold(ranked, truth, candidates=cands)
    brute = [map_at_k(truth, [apply_new_threshold(r, c) for r in ranked]) for c in cands]
    assert m == pytest.approx(max(brute))
    assert brute[list(cands).index(t)] == pytest.approx(m)


def test_confusion_matrix():
    truth = ["a", "a", "a", "b", "b", "c"]
    top1 = ["a", "b", "z", "b", "b", "a"]
    m, cols = confusion_matrix(truth, top1, n=2)
    assert cols == ["a", "b", "other"]
    assert m.tolist() == [[1, 1, 1], [0, 2, 0]]
