"""One query's suggestions as the site shows them: embedding shortlist, RootSIFT re-rank, calibrated
fused probability, and "new individual" decided on that probability.

Why one function: the pipeline worker, the review page and the benchmark must rank the same way.
The worker stores each gallery photo's :class:`ml.local_features.LocalFeatures` when the photo joins
the gallery; ``features_of(label)`` hands back those stored features, so nothing is recomputed per query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ml.calibration import MatchCalibration, percent_same
from ml.local_features import DEFAULT_SHORTLIST, LocalFeatures, match
from ml.profiles import DEFAULT_MATCHING, LocalMatching
from ml.types import NEW_WHALE


@dataclass(frozen=True)
class Suggestion:
    """A ranked candidate: P(same individual) after fusion, the raw evidence behind it, and the
    gallery photo that matched best (the review page draws the keypoint lines to that photo)."""

    label: str
    probability: float
    cosine: float | None
    inliers: int
    best_item: str | None

    @property
    def is_new(self) -> bool:
        return self.label == NEW_WHALE

    def words(self) -> str:
        return percent_same(self.probability) if not self.is_new else f"{round(100 * self.probability)}% new individual"


def _verify(
    query: LocalFeatures, photos: Sequence[tuple[str, LocalFeatures]], matching: LocalMatching
) -> tuple[int, str | None]:
    best, item = 0, None
    for item_id, feats in photos:
        n = match(query, feats, **matching.match_options()).inliers
        if n > best:
            best, item = n, item_id
    return best, item


def above_chance(inliers: np.ndarray) -> np.ndarray:
    """Each candidate's inliers above this query's chance level: the most any *other* verified candidate got
    (0 with none), so only a candidate that stands out keeps evidence, by its margin over the runner-up.

    Why: an out-of-distribution photo (a real fluke against a synthetic catalogue) finds 15-18 RANSAC inliers
    with almost every individual by chance, a count the in-distribution calibration reads as "72% same"; the
    median of the others still leaves the luckiest of 40 whales 5-10 inliers ahead. A true re-sighting stands
    far above everything else the same photo matches; chance matches do not.
    """
    inl = np.asarray(inliers, dtype=np.float64)
    if inl.size < 2:
        return inl.copy()
    order = np.argsort(-inl, kind="mergesort")
    best_other = np.full(inl.size, inl[order[0]])
    best_other[order[0]] = inl[order[1]]
    return np.maximum(0.0, inl - best_other)


FeaturesOf = Callable[[str], Sequence[tuple[str, LocalFeatures]]]
FeaturesFor = Callable[[Sequence[str]], Mapping[str, Sequence[tuple[str, LocalFeatures]]]]


def suggest(
    gallery,
    vector: np.ndarray,
    calibration: MatchCalibration,
    query_features: LocalFeatures | None = None,
    features_of: FeaturesOf | None = None,
    k: int = 5,
    shortlist: int = DEFAULT_SHORTLIST,
    *,
    features_for: FeaturesFor | None = None,
    exclude_items: Iterable[str] = (),
    trust_embedding: bool = True,
    matching: LocalMatching = DEFAULT_MATCHING,
) -> list[Suggestion]:
    """Top ``k`` suggestions (``new_whale`` included where the fused P says so) for one query.

    ``gallery``: an :class:`ml.gallery.GalleryIndex`; ``features_of(label)``: that individual's stored
    ``(item id, LocalFeatures)``, or ``features_for(labels)``: all the shortlist's at once (a site reads
    them in one database query). Without query features (or a calibration without an ``inl``
    matcher) the ranking is the calibrated cosine alone. ``exclude_items``: gallery photos to leave
    out (the query itself, when it is in the gallery). ``trust_embedding`` False (an out-of-distribution
    query, ``ml.ood``): the cosine still picks the shortlist but adds no probability, so only verified
    keypoints can carry a match, and only as far as they stand above the query's own chance level (the
    runner-up's, :func:`above_chance`); without query features every candidate gets the calibration's prior.
    ``matching``: how the profile verifies a pair (its ratio and geometry; ``ml.profiles.LocalMatching``).
    """
    matches = gallery.rank(vector, k=shortlist, exclude_items=set(exclude_items))
    if features_for is not None and query_features is not None and matches:
        stored = features_for([m.label for m in matches])
        features_of = lambda label: stored.get(label, ())  # noqa: E731
    if not matches:
        return [Suggestion(NEW_WHALE, 1.0, None, 0, None)]
    use_local = query_features is not None and features_of is not None and "inl" in calibration.calibrators
    cos = np.array([m.score for m in matches], dtype=np.float64)
    inliers, items = [], []
    for m in matches:
        verified = use_local and query_features is not None and features_of is not None
        n, item = _verify(query_features, features_of(m.label), matching) if verified else (0, None)  # type: ignore[arg-type,misc]
        inliers.append(n)
        items.append(item if n > 0 else m.best_item)
    inl = np.asarray(inliers, dtype=np.float64)
    if not trust_embedding:  # the inlier calibration was fitted in distribution too: judge against this photo's luck
        inl = above_chance(inl)
    scores = {"cos": cos, "inl": inl} if use_local else {"cos": cos}
    p = calibration.fused(scores, untrusted=() if trust_embedding else ("cos",))
    order = np.argsort(-p, kind="mergesort")
    ranked = [Suggestion(matches[i].label, float(p[i]), float(cos[i]), int(inliers[i]), items[i]) for i in order]
    best = ranked[0].probability
    pos = sum(1 for s in ranked if s.probability >= calibration.new_threshold)
    new = Suggestion(NEW_WHALE, 1.0 - best, None, 0, None)
    return (ranked[:pos] + [new] + ranked[pos:])[:k]


__all__ = ["Suggestion", "above_chance", "suggest"]
