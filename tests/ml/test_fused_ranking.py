"""The site's fused suggestions on a tiny gallery: local evidence lifts the true individual,
and a stranger gets 'new individual' first."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from ml import calibration as C  # noqa: E402
from ml import local_features as L  # noqa: E402
from ml.fused_ranking import suggest  # noqa: E402
from ml.gallery import GalleryIndex  # noqa: E402
from ml.types import NEW_WHALE  # noqa: E402
from tests.ml.test_local_features import blobs, moved, squeezed  # noqa: E402


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 8)).astype(np.float32)
    g = GalleryIndex(8)
    g.add(["p_a", "p_b", "p_c"], ["a", "b", "c"], vecs)
    pictures = {"a": blobs(11), "b": blobs(12), "c": blobs(13)}
    stored = {lab: [(f"p_{lab}", L.extract(pic))] for lab, pic in pictures.items()}
    cal = C.MatchCalibration(
        {
            "cos": C.IsotonicCalibrator([0.0, 1.0], [0.05, 0.45]),
            "inl": C.IsotonicCalibrator([0.0, 10.0, 20.0], [0.02, 0.02, 0.99]),
        },
        C.Fusion("noisy_or"),
        new_threshold=0.5,
    )
    return g, vecs, pictures, stored, cal


def test_local_evidence_lifts_the_true_individual_over_a_closer_embedding(setup):
    g, vecs, pictures, stored, cal = setup
    query_vec = vecs[0] * 0.3 + vecs[1]  # the embedding prefers b
    query = L.extract(moved(pictures["a"])[0])  # but the picture is a, re-photographed
    out = suggest(g, query_vec, cal, query, lambda lab: stored[lab], k=3, shortlist=3)
    assert out[0].label == "a" and out[0].inliers >= 15 and out[0].best_item == "p_a"
    assert out[0].probability > 0.9 and out[0].words().endswith("% same individual")
    assert out[1].label == NEW_WHALE


def test_a_stranger_gets_new_individual_first(setup):
    g, vecs, _, stored, cal = setup
    out = suggest(g, vecs[1], cal, L.extract(blobs(99)), lambda lab: stored[lab], k=3, shortlist=3)
    assert out[0].label == NEW_WHALE and out[0].probability > 0.4
    assert out[1].label == "b"  # still the best embedding candidate after it


def test_without_local_features_the_calibrated_cosine_ranks(setup):
    g, vecs, _, _, cal = setup
    out = suggest(g, vecs[2], cal, k=2, shortlist=3)
    # in this toy calibration a cosine alone never reaches the threshold: new first, c after it
    assert out[0].label == NEW_WHALE and out[0].probability == pytest.approx(0.55, abs=0.01)
    assert out[1].label == "c" and out[1].probability == pytest.approx(0.45, abs=0.01) and out[1].inliers == 0


@pytest.fixture
def trusting_cal(setup):
    """A calibration whose cosine alone is confident (P 0.99 at cosine 1): what an overconfident synthetic fit
    says about a real photo (issue 10, item 6)."""
    cal = setup[4]
    cal.calibrators["cos"] = C.IsotonicCalibrator([0.0, 1.0], [0.05, 0.99])
    cal.info["prior"] = 0.3
    return cal


def test_an_out_of_distribution_stranger_is_not_matched_on_its_cosine(setup, trusting_cal):
    g, vecs, _, stored, _ = setup
    query = L.extract(blobs(99))  # no keypoints agree with any gallery photo
    trusted = suggest(g, vecs[1], trusting_cal, query, lambda lab: stored[lab], k=3, shortlist=3)
    assert trusted[0].label == "b" and trusted[0].probability > 0.9  # the cosine alone carries it
    flagged = suggest(g, vecs[1], trusting_cal, query, lambda lab: stored[lab], k=3, shortlist=3, trust_embedding=False)
    assert flagged[0].label == NEW_WHALE and flagged[1].probability < 0.1
    assert flagged[1].label == "b"  # the cosine still orders the candidates behind it


def test_an_out_of_distribution_photo_of_a_catalogued_whale_is_found_by_its_keypoints(setup, trusting_cal):
    g, vecs, pictures, stored, _ = setup
    query = L.extract(moved(pictures["a"])[0])
    out = suggest(g, vecs[1], trusting_cal, query, lambda lab: stored[lab], k=3, shortlist=3, trust_embedding=False)
    assert out[0].label == "a" and out[0].probability > 0.9 and out[1].label == NEW_WHALE


def test_out_of_distribution_without_local_features_gets_the_prior(setup, trusting_cal):
    g, vecs, _, _, _ = setup
    out = suggest(g, vecs[1], trusting_cal, k=3, shortlist=3, trust_embedding=False)
    assert out[0].label == NEW_WHALE and out[0].probability == pytest.approx(0.7)
    assert all(s.probability == pytest.approx(0.3) for s in out[1:])


def test_the_profiles_matching_verifies_the_shortlist(setup):
    """A profile's ``LocalMatching`` reaches the verification: a foreshortened re-sighting of ``a`` carries its
    match under an affine geometry, and a similarity finds too few inliers for it."""
    from ml.profiles import DEFAULT_MATCHING, LocalMatching

    g, vecs, pictures, stored, cal = setup
    query = L.extract(squeezed(pictures["a"]))
    args = (g, vecs[0] * 0.3 + vecs[1], cal, query, lambda lab: stored[lab])
    affine = suggest(*args, k=3, shortlist=3, matching=LocalMatching(geometry="affine", ransac_px=3.0))
    similarity = suggest(*args, k=3, shortlist=3, matching=LocalMatching(geometry="similarity", ransac_px=3.0))
    assert DEFAULT_MATCHING.geometry == "similarity"  # the fluke's: the one a foreshortened face defeats
    assert affine[0].label == "a" and affine[0].inliers >= 20
    by_label = {s.label: s for s in similarity}
    assert by_label["a"].inliers < affine[0].inliers / 1.5


def test_chance_level_is_the_best_of_the_other_candidates():
    from ml.fused_ranking import above_chance

    assert above_chance(np.array([80.0, 12.0, 10.0, 14.0])).tolist() == [66.0, 0.0, 0.0, 0.0]
    assert above_chance(np.array([17.0, 16.0, 18.0, 15.0])).tolist() == [0.0, 0.0, 1.0, 0.0]  # luck, not a match
    assert above_chance(np.array([20.0, 20.0, 3.0])).tolist() == [0.0, 0.0, 0.0]  # a tie stands out from nothing
    assert above_chance(np.array([30.0])).tolist() == [30.0]  # nothing to compare with: kept


def test_a_flagged_photo_needs_inliers_above_its_own_chance_level(setup, trusting_cal):
    """Out of distribution, the in-distribution inlier calibration reads keypoints a photo shares with every
    candidate alike (a real photo's chance matches with every synthetic whale; here a shared background) as
    evidence. Against the photo's own chance level they are none; a true re-sighting, far above it, still counts."""
    import cv2

    g, vecs, pictures, _, _ = setup
    base = blobs(50)
    alike = {}
    for k, label in enumerate("abc"):
        own = base.copy()
        cv2.circle(own, (30 + 40 * k, 130), 12, 255, -1)  # each its own mark on the shared scene
        alike[label] = [(f"p_{label}", L.extract(own))]
    query = L.extract(moved(base)[0])
    flat = suggest(g, vecs[1], trusting_cal, query, lambda lab: alike[lab], k=4, shortlist=3, trust_embedding=False)
    inliers = [s.inliers for s in flat if not s.is_new]
    assert min(inliers) >= 15 and max(inliers) - min(inliers) <= 0.5 * min(inliers)  # all alike, all "strong"
    assert flat[0].label == NEW_WHALE and max(s.probability for s in flat[1:]) < 0.1
    trusted = suggest(g, vecs[1], trusting_cal, query, lambda lab: alike[lab], k=4, shortlist=3)
    assert trusted[0].label != NEW_WHALE and trusted[0].probability > 0.9  # in distribution they count
    stored = {lab: [(f"p_{lab}", L.extract(pic))] for lab, pic in pictures.items()}
    resighting = L.extract(moved(pictures["a"])[0])  # a true re-sighting of a, flagged all the same
    out = suggest(g, vecs[1], trusting_cal, resighting, stored.get, k=3, shortlist=3, trust_embedding=False)
    assert out[0].label == "a" and out[0].probability > 0.9
