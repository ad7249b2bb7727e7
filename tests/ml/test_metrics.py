import numpy as np
import pytest

from ml.metrics import (
    DEFAULT_NEW_THRESHOLD,
    apply_new_threshold,
    confusion_matrix,
    map_at_k,
    new_whale_precision_recall,
    select_new_threshold,
    top_k_accuracy,
)
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


def test_raw_new_threshold_maximises_map():
    # known whales score high for their own label, new whales score low everywhere
    ranked = [
        [("a", 0.9), ("b", 0.3)],
        [("b", 0.85), ("a", 0.2)],
        [("a", 0.4), ("b", 0.35)],  # a new whale
        [("b", 0.45), ("a", 0.1)],  # a new whale
    ]
    truth = ["a", "b", NEW_WHALE, NEW_WHALE]
    c = select_new_threshold(ranked, truth, min_new=0, min_known=0)
    assert 0.45 < c.raw_best <= 0.85 and 0.45 < c.threshold <= 0.85
    assert c.raw_map5 == pytest.approx(1.0) and c.map5 == pytest.approx(1.0)
    # brute-force check against apply_new_threshold + map_at_k on a grid
    grid = np.linspace(0, 1, 101)
    best = max(map_at_k(truth, [apply_new_threshold(r, g) for r in ranked]) for g in grid)
    assert c.raw_map5 >= best - 1e-9
    # a threshold that labels everything new: new whales 1, known whales 1/2
    assert map_at_k(truth, [apply_new_threshold(r, 2.0) for r in ranked]) == pytest.approx(0.75)


def test_raw_new_threshold_random_agrees_with_bruteforce():
    rng = np.random.default_rng(0)
    labels = list("abcdefgh")
    ranked, truth = [], []
    for _ in range(60):
        s = np.sort(rng.random(5))[::-1]
        ranked.append(list(zip(rng.permutation(labels)[:5], s)))
        truth.append(NEW_WHALE if rng.random() < 0.3 else str(rng.choice(labels)))
    c = select_new_threshold(ranked, truth, min_new=0, min_known=0)
    # MAP@5 only changes at observed scores: trying each of them (and above all) finds the true maximum
    cands = sorted({float(sc) for r in ranked for _, sc in r}) + [2.0]
    brute = [map_at_k(truth, [apply_new_threshold(r, t) for r in ranked]) for t in cands]
    assert c.raw_map5 == pytest.approx(max(brute))
    assert map_at_k(truth, [apply_new_threshold(r, c.raw_best) for r in ranked]) == pytest.approx(c.raw_map5)
    assert c.map5 == pytest.approx(map_at_k(truth, [apply_new_threshold(r, c.threshold) for r in ranked]))


def test_confusion_matrix():
    truth = ["a", "a", "a", "b", "b", "c"]
    top1 = ["a", "b", "z", "b", "b", "a"]
    m, cols = confusion_matrix(truth, top1, n=2)
    assert cols == ["a", "b", "other"]
    assert m.tolist() == [[1, 1, 1], [0, 2, 0]]


# --------------------------------------------------------------------------- guarded new_whale threshold


def _separable(n_known=6, n_new=6, known_top=0.9, new_top=0.3):
    ranked = [[(f"k{i}", known_top - 0.01 * i), ("z", 0.1)] for i in range(n_known)]
    ranked += [[("z", new_top + 0.01 * i), ("y", 0.05)] for i in range(n_new)]
    truth = [f"k{i}" for i in range(n_known)] + [NEW_WHALE] * n_new
    return ranked, truth


def test_select_threshold_midpoint_of_plateau_not_its_edge():
    ranked, truth = _separable()
    c = select_new_threshold(ranked, truth)
    raw_t, raw_m = c.raw_best, c.raw_map5
    assert c.reason == "tuned" and c.n_new == 6 and c.n_known == 6
    assert raw_m == pytest.approx(1.0) and c.map5 == pytest.approx(1.0)
    # every threshold in (0.35, 0.85] is perfect: raw takes the lowest edge, the guard the middle
    assert raw_t == pytest.approx(0.35, abs=0.002)
    lo, hi = c.plateau
    assert lo == pytest.approx(0.35, abs=0.002) and hi == pytest.approx(0.85, abs=0.002)
    assert c.threshold == pytest.approx(0.6, abs=0.01)
    assert c.cap[0] <= c.threshold <= c.cap[1]


def test_select_threshold_capped_to_score_distribution():
    # an overfit optimum: the known queries' truth is absent (they score 0 whatever the threshold) and
    # the new ones score highest, so MAP@5 is maximal for "everything new" (the ~0.9995 failure)
    ranked = [[("x", 0.5 + 0.02 * i), ("y", 0.4)] for i in range(8)]
    ranked += [[("x", 0.7 + 0.02 * i), ("y", 0.6)] for i in range(8)]
    truth = [f"k{i}" for i in range(8)] + [NEW_WHALE] * 8
    c = select_new_threshold(ranked, truth)
    assert c.raw_best > max(r[0][1] for r in ranked)  # the raw optimum: above every top-1 score, all "new"
    top1 = np.array([r[0][1] for r in ranked])
    assert c.threshold <= np.quantile(top1, 0.95) + 1e-9
    assert np.mean(top1 >= c.threshold) >= 0.05  # some queries are still called known
    assert c.map5 == pytest.approx(map_at_k(truth, [apply_new_threshold(r, c.threshold) for r in ranked]))


@pytest.mark.parametrize(
    "n_known,n_new,reason", [(10, 4, "too_few_new"), (4, 10, "too_few_known"), (10, 0, "too_few_new")]
)
def test_select_threshold_falls_back_on_small_validation(n_known, n_new, reason):
    ranked, truth = _separable(n_known, n_new)
    c = select_new_threshold(ranked, truth)
    assert c.reason == reason and c.threshold == DEFAULT_NEW_THRESHOLD
    assert c.map5 == pytest.approx(map_at_k(truth, [apply_new_threshold(r, DEFAULT_NEW_THRESHOLD) for r in ranked]))
    # the minimums are parameters
    assert select_new_threshold(ranked, truth, min_new=0, min_known=0).reason == "tuned" or n_new == 0
    assert select_new_threshold([], []).reason == "no_queries"
