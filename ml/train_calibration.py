"""Fit a model folder's match calibration (``calibration.json``) at the end of training, open set.

Why open set: the site's hard case is a whale the model never trained on. Validation photos of
*trained* individuals score higher cosines than an unseen whale's re-sighting ever will, so a
calibration fitted on them says "95% same" too easily (issue 10: strangers at cosine 0.97). Here
only the individuals ``ml.data.split_dataset`` held out whole (``new_individual_fraction``: never
trained on) give queries:

- two of every three held-out individuals are *re-sighted*: half their photos join the gallery, up
  to two others are queries whose truth is that individual;
- every third one (and any ``new_whale`` photo) is a *stranger*: up to two photos are queries whose
  truth is ``new_whale``;
- the gallery is every training photo (the trained individuals, as on the site) plus the re-sighted
  halves.

Per query: the max cosine per gallery individual, and RootSIFT inliers for the embedding's top
``shortlist`` individuals (0 beyond, as at query time); ``ml.calibration.fit_match_calibration``
does the rest. Too few held-out individuals: no calibration (the folder ranks by cosine, as before).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.calibration import MatchCalibration, fit_match_calibration
from ml.local_features import DEFAULT_SHORTLIST, LocalFeatures, best_inliers, extract
from ml.profiles import DEFAULT_MATCHING, LocalMatching
from ml.types import NEW_WHALE

log = logging.getLogger(__name__)

MIN_RESIGHTED_QUERIES = 2  # positives needed for an isotonic fit that means anything
MAX_QUERIES_PER_INDIVIDUAL = 2


@dataclass
class CalibrationSet:
    """Indices into the validation dataset: gallery additions, queries and their truth."""

    gallery: list[int] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)

    @property
    def resighted_queries(self) -> int:
        return sum(1 for t in self.truth if t != NEW_WHALE)


def calibration_set(val_labels: Sequence[str], val_truth: Sequence[str], held_out: Sequence[str]) -> CalibrationSet:
    """Split the held-out individuals' validation photos into gallery halves and queries (module doc)."""
    photos: dict[str, list[int]] = defaultdict(list)
    out = CalibrationSet()
    held = set(held_out)
    for i, (label, truth) in enumerate(zip(val_labels, val_truth)):
        if label in held:
            photos[label].append(i)
        elif label == NEW_WHALE and truth == NEW_WHALE:
            out.queries.append(i)
            out.truth.append(NEW_WHALE)
    for n, label in enumerate(sorted(photos)):
        idx = photos[label]
        if n % 3 == 2 or len(idx) < 2:
            out.queries.extend(idx[:MAX_QUERIES_PER_INDIVIDUAL])
            out.truth.extend([NEW_WHALE] * len(idx[:MAX_QUERIES_PER_INDIVIDUAL]))
            continue
        half = (len(idx) + 1) // 2
        out.gallery.extend(idx[:half])
        queries = idx[half : half + MAX_QUERIES_PER_INDIVIDUAL]
        out.queries.extend(queries)
        out.truth.extend([label] * len(queries))
    return out


def query_scores(
    q_vec: np.ndarray,
    q_feats: LocalFeatures | None,
    g_vecs: np.ndarray,
    g_labels: Sequence[str],
    g_feats: Sequence[LocalFeatures] | None,
    shortlist: int = DEFAULT_SHORTLIST,
    matching: LocalMatching = DEFAULT_MATCHING,
) -> dict[str, dict[str, float]]:
    """``{"cos": {label: max cosine}, "inl": {label: most inliers}}`` for one query, as at query time
    (``"cos"`` alone without local features: a profile whose matchers leave RootSIFT out; ``matching``: the
    profile's way of verifying a pair)."""
    sims = g_vecs @ q_vec
    cos: dict[str, float] = {}
    members: dict[str, list[int]] = defaultdict(list)
    for j, label in enumerate(g_labels):
        members[label].append(j)
        cos[label] = max(cos.get(label, -1.0), float(sims[j]))
    if q_feats is None or g_feats is None:
        return {"cos": cos}
    inl = {label: 0.0 for label in cos}
    for label in sorted(cos, key=lambda lab: -cos[lab])[:shortlist]:
        inl[label] = float(best_inliers(q_feats, [g_feats[j] for j in members[label]], **matching.match_options())[0])
    return {"cos": cos, "inl": inl}


def fit_open_set_calibration(
    embed,
    train_crops: Sequence[np.ndarray],
    train_labels: Sequence[str],
    val_crops: Sequence[np.ndarray],
    val_labels: Sequence[str],
    val_truth: Sequence[str],
    held_out: Sequence[str],
    shortlist: int = DEFAULT_SHORTLIST,
    local_features: bool = True,
    matching: LocalMatching = DEFAULT_MATCHING,
) -> tuple[MatchCalibration | None, dict[str, Any]]:
    """The calibration (or None) and what it was fitted on. ``embed(crops) -> (N, D)`` L2-normalised.
    ``local_features`` False (the profile's matchers leave RootSIFT out): the cosine's calibration alone.
    ``matching``: the profile's keypoints, ratio and geometry, as its queries will be verified."""
    cset = calibration_set(val_labels, val_truth, held_out)
    info: dict[str, Any] = {
        "open_set": True,
        "held_out_individuals": len(held_out),
        "queries": len(cset.queries),
        "resighted_queries": cset.resighted_queries,
    }
    if cset.resighted_queries < MIN_RESIGHTED_QUERIES or not cset.queries:
        info["skipped"] = (
            f"{cset.resighted_queries} re-sighted queries of held-out individuals "
            f"(need {MIN_RESIGHTED_QUERIES}): raise new_individual_fraction or add photos"
        )
        return None, info
    g_crops = list(train_crops) + [val_crops[i] for i in cset.gallery]
    g_labels = list(train_labels) + [val_labels[i] for i in cset.gallery]
    g_vecs = np.asarray(embed(g_crops), dtype=np.float32)
    q_crops = [val_crops[i] for i in cset.queries]
    q_vecs = np.asarray(embed(q_crops), dtype=np.float32)
    options = matching.extract_options()
    g_feats = [extract(c, **options) for c in g_crops] if local_features else None
    q_feats = [extract(c, **options) if local_features else None for c in q_crops]
    per_query = [
        query_scores(v, f, g_vecs, g_labels, g_feats, shortlist, matching) for v, f in zip(q_vecs, q_feats, strict=True)
    ]
    calibration = fit_match_calibration(per_query, cset.truth)
    calibration.info.update(info)
    return calibration, {**info, **calibration.info, "new_threshold": calibration.new_threshold}


__all__ = ["CalibrationSet", "calibration_set", "query_scores", "fit_open_set_calibration"]
