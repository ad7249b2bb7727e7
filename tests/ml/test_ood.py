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


def test_the_backbone_features_flag_a_photo_the_embedding_calls_familiar(tmp_path):
    """Issue 10, second round: a trained head maps a real photo next to synthetic ones; the pooled backbone
    features still see the shift, and the photo is flagged when either space says it is far."""
    from ml.model_folder import load_ood

    rng = np.random.default_rng(3)
    centre, other = np.eye(16)[0], np.eye(16)[1]
    emb_train, emb_val = cluster(rng, centre, 200), cluster(rng, centre, 50)
    pool_train, pool_val = cluster(rng, centre, 200), cluster(rng, centre, 50)
    d = OODDetector.fit(emb_train, emb_val, train_pooled=pool_train, val_pooled=pool_val)
    assert d.uses_pooled and d.info["pooled"]["dim"] == 16
    familiar_embedding = cluster(rng, centre, 10)
    shifted = [d.check(e, p) for e, p in zip(familiar_embedding, cluster(rng, other, 10))]
    assert all(f.flagged and f.score <= f.threshold * 1.5 and f.pooled_score > f.pooled_threshold for f in shifted)
    assert sum(d.check(e).flagged for e in familiar_embedding) <= 1  # the embedding alone calls them familiar
    fresh = [d.check(e, p) for e, p in zip(cluster(rng, centre, 100), cluster(rng, centre, 100))]
    assert sum(f.flagged for f in fresh) <= 8  # ~1% per space by construction; a few by chance
    d.save(tmp_path)
    back = load_ood(tmp_path)
    assert back.uses_pooled and back.pooled_threshold == pytest.approx(d.pooled_threshold)
    assert back.check(familiar_embedding[0], cluster(rng, other, 1)[0]).flagged


def test_an_ood_file_without_pooled_features_loads_and_checks_the_embedding(tmp_path, fitted):
    detector, rng, centre = fitted
    detector.save(tmp_path)
    with np.load(tmp_path / OOD_FILE) as data:
        assert "pooled_reference" not in data.files  # the format before the backbone check
    back = OODDetector.load(tmp_path)
    assert not back.uses_pooled
    f = back.check(cluster(rng, centre, 1)[0], pooled=np.ones(16))  # pooled given but nothing to compare with
    assert f.pooled_score is None and "pooled_score" not in f.to_dict()
