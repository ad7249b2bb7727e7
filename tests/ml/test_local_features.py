"""RootSIFT matching on pictures drawn in the test: a shifted, rotated copy verifies with many
inliers that follow the known transform; a different picture does not."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from ml import local_features as L  # noqa: E402
from ml.types import Box  # noqa: E402


def blobs(seed: int, size: int = 160) -> np.ndarray:
    """A grey picture of random ellipses and lines (corners and blobs for SIFT)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 90, np.uint8)
    for _ in range(40):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(3, 14, 2))
        cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(0, 255)), -1)
    for _ in range(10):
        p, q = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
        cv2.line(img, p, q, int(rng.integers(0, 255)), 2)
    return img


def moved(img: np.ndarray, angle: float = 8.0, shift=(6.0, -4.0)) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(img, m, (w, h), borderValue=90), m


SQUEEZE = np.float32([[0.7, 0.0, 24.0], [0.0, 1.0, 0.0]])  # 30% narrower, as a head turned ~45 degrees


def squeezed(img: np.ndarray) -> np.ndarray:
    """``img`` foreshortened horizontally (:data:`SQUEEZE`): what no similarity maps back."""
    return cv2.warpAffine(img, SQUEEZE, img.shape[::-1], borderValue=90)


def test_same_picture_moved_verifies_and_a_stranger_does_not():
    a = blobs(1)
    b, m = moved(a)
    fa, fb, fc = L.extract(a), L.extract(b), L.extract(blobs(2))
    same = L.match(fa, fb)
    other = L.match(fa, fc)
    assert same.inliers >= 20
    assert same.inliers > 4 * max(1, other.inliers)
    # every verified pair follows the transform that made the copy
    q = same.pairs[:, :2]
    expected = q @ m[:, :2].T + m[:, 2]
    assert np.median(np.linalg.norm(expected - same.pairs[:, 2:], axis=1)) < 2.0


def test_homography_model_also_verifies():
    a = blobs(3)
    b, _ = moved(a, angle=-5, shift=(3, 3))
    assert L.match(L.extract(a), L.extract(b), model="homography").inliers >= 15
    with pytest.raises(ValueError):
        L.match(L.extract(a), L.extract(b), model="cubic")


def test_features_round_trip_through_bytes_compactly():
    f = L.extract(blobs(4))
    blob = f.to_bytes()
    g = L.LocalFeatures.from_bytes(blob)
    assert len(g) == len(f) > 10
    assert np.array_equal(g.descriptors, f.descriptors)
    assert np.allclose(g.keypoints, f.keypoints)
    assert g.size == f.size == (160, 160)
    assert len(blob) <= 12 + 136 * len(f)
    with pytest.raises(ValueError):
        L.LocalFeatures.from_bytes(blob[:-5])
    with pytest.raises(ValueError):
        L.LocalFeatures.from_bytes(b"XXXX" + blob[4:])


def test_root_sift_is_unit_l2_and_standardized_crops_are_accepted():
    d = L.root_sift(np.random.default_rng(0).uniform(0, 50, (5, 128)))
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    z = (blobs(5).astype(np.float32) - 120.0) / 50.0
    assert len(L.extract(z)) > 10


def test_rerank_keeps_the_shortlist_and_finds_the_true_individual():
    a = blobs(6)
    gallery = {
        "true": [L.extract(blobs(9)), L.extract(moved(a)[0])],
        "other": [L.extract(blobs(7))],
        "far": [L.extract(blobs(8))],
    }
    out = L.rerank(L.extract(a), [("other", 0.9), ("true", 0.8), ("far", 0.1)], gallery, k=2)
    assert [r.label for r in out] == ["other", "true"]  # only the top k are verified
    assert out[1].inliers > out[0].inliers and out[1].best_photo == 1
    pairs = L.matched_pairs(L.extract(a), gallery["true"][1])
    assert len(pairs) == out[1].inliers


def test_crop_to_photo_maps_through_the_box():
    pts = L.crop_to_photo(np.array([[0, 0], [224, 112]]), Box(100, 50, 518, 250), 224)
    assert np.allclose(pts, [[100, 50], [518, 150]])


def test_a_foreshortened_view_verifies_better_under_an_affine_map_than_a_similarity():
    """A face turned away is squeezed in one direction: no rotation-scale-shift maps it, an affine map does."""
    a = blobs(3)
    fa, fb = L.extract(a), L.extract(squeezed(a))
    similarity = L.match(fa, fb, model="similarity", ransac_px=3.0)
    affine = L.match(fa, fb, model="affine", ransac_px=3.0)
    assert affine.tentative == similarity.tentative  # the same ratio-test matches, verified two ways
    assert affine.inliers >= 12 and affine.inliers > 1.5 * similarity.inliers
    q, c = affine.pairs[:, :2], affine.pairs[:, 2:]
    assert np.allclose(c[:, 0], 0.7 * q[:, 0] + 24.0, atol=3.0) and np.allclose(c[:, 1], q[:, 1], atol=3.0)


def test_the_ratio_test_is_nearest_two_below_the_ratio_and_an_unknown_geometry_is_refused():
    fa, fb = L.extract(blobs(1)), L.extract(moved(blobs(1))[0])
    qi, ci, r = L.nearest_two(fa, fb)
    assert len(qi) == len(fa) and np.all((r >= 0) & (r <= 1))
    assert L.match(fa, fb, ratio=0.8).tentative == int((r < 0.8).sum())
    assert L.match(fa, fb, ratio=0.0).inliers == 0  # nothing passes a ratio of 0
    with pytest.raises(ValueError, match="similarity, affine, homography"):
        L.match(fa, fb, model="perspective")
