"""The distribution-shift detector (ml.ood): photos like the training ones pass, others are flagged,
and the model folder keeps it (older folders without it still load)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.ood import OOD_FILE, Familiarity, OODDetector


def cluster(rng, centre, n, spread=0.15):
    v = centre[None] + spread * rng.normal(size=(n, centre.size))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    centre = np.zeros(16)
    centre[0] = 1.0
    train, val = cluster(rng, centre, 200), cluster(rng, centre, 50)
    return OODDetector.fit(train, val, k=5, quantile=0.99), rng, centre


def test_in_distribution_photos_pass_and_unlike_ones_are_flagged(fitted):
    detector, rng, centre = fitted
    assert detector.info["validation_flagged"] <= 0.02 and detector.info["reference"] == 200
    fresh = [detector.check(v) for v in cluster(rng, centre, 100)]
    assert sum(f.flagged for f in fresh) <= 5  # ~1% by construction; a few by chance
    elsewhere = np.zeros(16)
    elsewhere[1] = 1.0
    shifted = [detector.check(v) for v in cluster(rng, elsewhere, 20)]
    assert all(f.flagged and f.score > f.threshold for f in shifted)
    assert isinstance(shifted[0], Familiarity) and shifted[0].to_dict()["flagged"] is True


def test_scores_are_cosine_distances_to_the_k_nearest(fitted):
    detector, _, _ = fitted
    ref = detector.reference.astype(np.float32)
    assert detector.scores(ref[0] * 3.0)[0] < detector.threshold  # unnormalised input is normalised
    sims = np.sort(ref @ ref[0])[::-1][:5]
    assert detector.scores(ref[0])[0] == pytest.approx(1 - sims.mean(), abs=1e-3)


def test_too_few_validation_photos_give_no_detector():
    rng = np.random.default_rng(1)
    centre = np.ones(8) / np.sqrt(8)
    assert OODDetector.fit(cluster(rng, centre, 50), cluster(rng, centre, 3)) is None


def test_a_large_training_set_is_subsampled(fitted):
    _, rng, centre = fitted
    d = OODDetector.fit(cluster(rng, centre, 300), cluster(rng, centre, 20), max_reference=100)
    assert d.reference.shape == (100, 16) and d.reference.dtype == np.float16


def test_the_model_folder_round_trip_and_older_folders(tmp_path, fitted):
    from ml.model_folder import ModelFolderError, load_ood

    detector, rng, centre = fitted
    assert load_ood(tmp_path) is None  # a folder trained before ood.npz: nothing flagged
    detector.save(tmp_path)
    back = load_ood(tmp_path)
    assert back.threshold == pytest.approx(detector.threshold) and back.k == detector.k
    assert back.info == detector.info
    v = cluster(rng, centre, 3)
    assert np.allclose(back.scores(v), detector.scores(v))
    (tmp_path / OOD_FILE).write_bytes(b"not an npz")
    with pytest.raises(ModelFolderError, match="OOD detector"):
        load_ood(tmp_path)
