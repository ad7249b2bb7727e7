"""Ranking metrics for whale identification (Kaggle humpback conventions, seed 001)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence, Sized
from dataclasses import asdict, dataclass

import numpy as np

from ml.types import DEFAULT_NEW_THRESHOLD, NEW_WHALE


def _check(truth: Sequence[str], predictions: Sized) -> None:
    if len(truth) != len(predictions):
        raise ValueError(f"{len(truth)} truth labels but {len(predictions)} predictions")


def average_precision_at_k(truth: str, predicted: Sequence[str], k: int = 5) -> float:
    """1 / rank of the first correct guess within the top k, else 0 (Kaggle MAP@k,
    one relevant label per image; repeats of a wrong label are not skipped)."""
    for i, p in enumerate(list(predicted)[:k]):
        if p == truth:
            return 1.0 / (i + 1)
    return 0.0


def map_at_k(truth: Sequence[str], predictions: Sequence[Sequence[str]], k: int = 5) -> float:
    """Mean average precision at k. Empty input gives 0.0."""
    _check(truth, predictions)
    if not truth:
        return 0.0
    return float(np.mean([average_precision_at_k(t, p, k) for t, p in zip(truth, predictions)]))


def top_k_accuracy(truth: Sequence[str], predictions: Sequence[Sequence[str]], k: int = 1) -> float:
    """Fraction of queries whose true label is among the first k predictions."""
    _check(truth, predictions)
    if not truth:
        return 0.0
    return float(np.mean([t in list(p)[:k] for t, p in zip(truth, predictions)]))


def new_whale_precision_recall(truth: Sequence[str], predictions: Sequence[Sequence[str]]) -> tuple[float, float]:
    """(precision, recall) of "this is a new whale", where predicted new = ``new_whale``
    ranked first. A ratio with an empty denominator is 0.0."""
    _check(truth, predictions)
    pred_new = np.array([bool(p) and p[0] == NEW_WHALE for p in predictions])
    true_new = np.array([t == NEW_WHALE for t in truth])
    tp = int(np.sum(pred_new & true_new))
    precision = tp / int(pred_new.sum()) if pred_new.any() else 0.0
    recall = tp / int(true_new.sum()) if true_new.any() else 0.0
    return float(precision), float(recall)


def apply_new_threshold(ranked: Sequence[tuple[str, float]], threshold: float, k: int = 5) -> list[str]:
    """Labels of one ranking with ``new_whale`` inserted before the first score below
    ``threshold`` (Kaggle style), cut to k."""
    labels = [lab for lab, _ in ranked if lab != NEW_WHALE]
    scores = [s for lab, s in ranked if lab != NEW_WHALE]
    pos = 0
    while pos < len(scores) and scores[pos] >= threshold:
        pos += 1
    return (labels[:pos] + [NEW_WHALE] + labels[pos:])[:k]


def _map_curve(ranked_scores, truth, cand: np.ndarray, k: int) -> np.ndarray:
    """MAP@k of every candidate threshold in ``cand`` (new_whale inserted Kaggle style)."""
    total = np.zeros(len(cand))
    for ranking, t in zip(ranked_scores, truth):
        ranking = [(lab, s) for lab, s in ranking if lab != NEW_WHALE][:k]
        scores = np.array([s for _, s in ranking], dtype=np.float64)
        # new_whale's 0-based position for every candidate: how many scores are >= threshold
        pos_new = (scores[None, :] >= cand[:, None]).sum(axis=1) if len(scores) else np.zeros(len(cand), int)
        if t == NEW_WHALE:
            rank = pos_new  # 0-based
        else:
            labels = [lab for lab, _ in ranking]
            if t not in labels:
                continue
            j = labels.index(t)
            rank = j + (pos_new <= j)
        total += np.where(rank < k, 1.0 / (rank + 1), 0.0)
    return total / max(1, len(truth))


MIN_NEW_QUERIES = 5
MIN_KNOWN_QUERIES = 5
THRESHOLD_CAP_QUANTILES = (0.05, 0.95)


@dataclass
class NewThresholdChoice:
    threshold: float
    map5: float | None  # MAP@k of all queries at ``threshold``
    reason: str  # "tuned" | "too_few_new" | "too_few_known" | "no_queries"
    n_new: int = 0
    n_known: int = 0
    raw_best: float | None = None  # the lowest MAP-maximising threshold (the unguarded optimum)
    raw_map5: float | None = None
    plateau: tuple[float, float] | None = None  # widest run of thresholds reaching the maximum
    cap: tuple[float, float] | None = None  # allowed range from the top-1 score distribution

    def as_dict(self) -> dict:
        return asdict(self)


def select_new_threshold(
    ranked_scores: Sequence[Sequence[tuple[str, float]]],
    truth: Sequence[str],
    *,
    min_new: int = MIN_NEW_QUERIES,
    min_known: int = MIN_KNOWN_QUERIES,
    default: float = DEFAULT_NEW_THRESHOLD,
    cap_quantiles=THRESHOLD_CAP_QUANTILES,
    k: int = 5,
    tol: float = 1e-9,
) -> NewThresholdChoice:
    """A ``new_whale`` threshold that does not overfit a small validation set.

    - Fewer than ``min_new`` new-whale queries or ``min_known`` known queries: ``default``
      (``DEFAULT_NEW_THRESHOLD``), reason ``too_few_new`` / ``too_few_known``.
    - Otherwise MAP@k is a step function of the threshold; take the widest contiguous run of
      thresholds within ``tol`` of the maximum (a 0.001 grid plus every observed score) and its
      **midpoint** (not its lowest edge), then clip it to the ``cap_quantiles`` (5%..95%) of the
      queries' top-1 scores, so that at least ~5% of queries are called known and ~5% new.
    """
    _check(truth, ranked_scores)
    n_new = sum(1 for t in truth if t == NEW_WHALE)
    n_known = len(truth) - n_new

    def at(th: float) -> float | None:
        return float(_map_curve(ranked_scores, truth, np.array([th]), k)[0]) if truth else None

    if not truth:
        return NewThresholdChoice(float(default), None, "no_queries")
    if n_new < min_new or n_known < min_known:
        reason = "too_few_new" if n_new < min_new else "too_few_known"
        return NewThresholdChoice(float(default), at(default), reason, n_new, n_known)
    observed = np.asarray([s for r in ranked_scores for lab, s in list(r)[:k] if lab != NEW_WHALE], dtype=np.float64)
    cand = np.unique(np.concatenate([np.linspace(-1.0, 1.0, 2001), observed]))
    curve = _map_curve(ranked_scores, truth, cand, k)
    best = float(curve.max())
    good = curve >= best - tol
    runs, start = [], None
    for i, g in enumerate(good):
        if g and start is None:
            start = i
        if (not g or i == len(good) - 1) and start is not None:
            end = i if g else i - 1
            runs.append((start, end))
            start = None
    lo_i, hi_i = max(runs, key=lambda r: (cand[r[1]] - cand[r[0]], -r[0]))
    plateau = (float(cand[lo_i]), float(cand[hi_i]))
    mid = (plateau[0] + plateau[1]) / 2
    top1 = np.asarray(
        [max(s for lab, s in r if lab != NEW_WHALE) for r in ranked_scores if any(lab != NEW_WHALE for lab, _ in r)],
        dtype=np.float64,
    )
    cap = None
    threshold = mid
    if len(top1):
        cap = (float(np.quantile(top1, cap_quantiles[0])), float(np.quantile(top1, cap_quantiles[1])))
        threshold = float(np.clip(mid, cap[0], cap[1]))
    raw_i = int(np.argmax(curve))
    return NewThresholdChoice(
        float(threshold), at(threshold), "tuned", n_new, n_known, float(cand[raw_i]), float(curve[raw_i]), plateau, cap
    )


def most_frequent_labels(truth: Sequence[str], n: int = 20, include_new: bool = False) -> list[str]:
    counts = Counter(t for t in truth if include_new or t != NEW_WHALE)
    return [lab for lab, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def confusion_matrix(
    truth: Sequence[str], top1: Sequence[str], labels: Sequence[str] | None = None, n: int = 20
) -> tuple[np.ndarray, list[str]]:
    """Counts ``M[i, j]`` of (true = labels[i], top-1 = labels[j]) over queries whose true
    label is in ``labels`` (default: the ``n`` most frequent ids). The last column,
    ``"other"``, counts top-1 guesses outside ``labels``. Returns (M, column labels)."""
    if len(truth) != len(top1):
        raise ValueError(f"{len(truth)} truth labels but {len(top1)} top-1 predictions")
    labels = list(labels) if labels is not None else most_frequent_labels(truth, n)
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    for t, p in zip(truth, top1):
        if t in index:
            m[index[t], index.get(p, len(labels))] += 1
    return m, labels + ["other"]
