"""Training writes an open-set calibration.json that the Identifier loads; trainable_blocks round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.train_calibration import calibration_set
from ml.types import NEW_WHALE

TINY = dict(arch="resnet18", image_size=64, embedding_dim=32)


def _config(synth, out, **kw):
    from ml.train import TrainConfig

    base = dict(
        csv=str(synth / "train.csv"),
        images_dir=str(synth / "images"),
        out_dir=str(out),
        epochs=1,
        batch_size=16,
        lr=0.001,
        num_workers=0,
        seed=1,
        train_localizer=False,
        max_steps=3,
        cache_dir=str(synth / "cache"),
        **TINY,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_calibration_set_uses_held_out_individuals_only():
    labels = ["a", "a", "h1", "h1", "h1", "h1", "h2", "h2", "h3", "h3", NEW_WHALE]
    truth = ["a", "a"] + [NEW_WHALE] * 9
    cset = calibration_set(labels, truth, held_out=["h1", "h2", "h3"])
    assert all(labels[i] in {"h1", "h2"} for i in cset.gallery)  # h3 (every third) is a stranger
    assert [labels[i] for i in cset.gallery] == ["h1", "h1", "h2"]
    assert list(zip([labels[i] for i in cset.queries], cset.truth)) == [
        (NEW_WHALE, NEW_WHALE),
        ("h1", "h1"),
        ("h1", "h1"),
        ("h2", "h2"),
        ("h3", NEW_WHALE),
        ("h3", NEW_WHALE),
    ]
    assert "a" not in {labels[i] for i in cset.queries + cset.gallery}  # trained individuals never calibrate


def test_train_writes_calibration_that_the_identifier_loads(synth_small, tmp_path):
    from ml.calibration import MatchCalibration
    from ml.identifier import Identifier
    from ml.train import train

    result = train(_config(synth_small, tmp_path / "m", new_individual_fraction=0.4))
    cal = MatchCalibration.load(result.model_dir)
    assert cal is not None and set(cal.calibrators) == {"cos", "inl"}
    info = json.loads((tmp_path / "m" / "metrics.json").read_text())["calibration"]
    assert info["open_set"] is True and info["resighted_queries"] >= 2 and info["queries"] > info["resighted_queries"]
    ident = Identifier.load(result.model_dir, device="cpu")
    assert ident.calibrated and ident.calibration.new_threshold == pytest.approx(cal.new_threshold)
    assert ident.new_threshold == pytest.approx(cal.new_threshold) == pytest.approx(result.new_threshold)
    crop = ident.prepare(str(next((synth_small / "images").iterdir()))).crop
    feats = ident.local_features(crop)
    assert feats.size == (64, 64) and feats.descriptors.shape[1] == 128
    # the distribution-shift detector (ml.ood) is fitted on the same run: a training photo is familiar
    ood = json.loads((tmp_path / "m" / "metrics.json").read_text())["ood"]
    assert ood["method"] == "knn" and ood["validation_photos"] >= 5 and ood["reference"] > 0
    familiar = ident.familiarity(ident.embed([crop])[0])
    assert familiar is not None and not familiar.flagged and familiar.threshold == pytest.approx(ident.ood.threshold)
    # and in the backbone's pooled features (issue 10, second round): fitted, stored, and a training photo passes
    assert ood["pooled"]["dim"] == ident.pooled([crop]).shape[1] and ident.ood.uses_pooled
    both = ident.familiarity(ident.embed([crop])[0], crop)
    assert both.pooled_score is not None and both.pooled_score <= both.pooled_threshold and not both.flagged

    # the same folder retrained without calibration drops the stale file: its P belonged to other weights
    result = train(
        _config(synth_small, tmp_path / "m", new_individual_fraction=0.4, calibrate=False, ood_detector=False)
    )
    assert not (tmp_path / "m" / "calibration.json").exists() and not (tmp_path / "m" / "ood.npz").exists()
    again = Identifier.load(result.model_dir, device="cpu")
    assert again.calibration is None and again.ood is None and again.familiarity(np.ones(32)) is None
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["ood"] == {"skipped": "ood_detector=False"}


def test_too_few_held_out_individuals_ship_no_calibration(synth_small, tmp_path):
    from ml.identifier import Identifier
    from ml.train import train

    result = train(_config(synth_small, tmp_path / "m", new_individual_fraction=0.0))
    assert not (tmp_path / "m" / "calibration.json").exists()
    assert "skipped" in json.loads((tmp_path / "m" / "metrics.json").read_text())["calibration"]
    assert Identifier.load(result.model_dir, device="cpu").calibration is None


def test_trainable_blocks_round_trip_through_the_model_folder(synth_small, tmp_path):
    from ml.identifier import Identifier
    from ml.model_folder import read_model
    from ml.train import train

    pytest.importorskip("efficientnet_lite_pytorch")
    result = train(
        _config(
            synth_small, tmp_path / "e", arch="efficientnet_lite0", trainable_blocks=0, max_steps=2, calibrate=False
        )
    )
    saved = read_model(result.model_dir)
    assert saved.trainable_blocks == 0 and saved.config["trainable_blocks"] == 0
    ident = Identifier.load(result.model_dir, device="cpu")
    assert ident.model.trainable_blocks == 0
    assert not any(p.requires_grad for p in ident.model.backbone.parameters())  # rebuilt frozen, as trained
    from torchvision.ops.misc import FrozenBatchNorm2d

    assert any(isinstance(m, FrozenBatchNorm2d) for m in ident.model.backbone.modules())
    vec = ident.embed([np.zeros((64, 64), np.float32)])
    assert vec.shape == (1, 32) and np.isfinite(vec).all()


def test_a_profile_without_local_features_calibrates_the_cosine_alone():
    """``local_features=False`` (a profile whose matchers are the embedding's only): no RootSIFT pairs are
    fitted, so the folder's calibration has the cosine alone, and the same data with them has both."""
    from ml.train_calibration import fit_open_set_calibration

    rng = np.random.default_rng(0)
    bases = {f"h{k}": rng.normal(size=(16, 16)).astype(np.float32) for k in range(6)}
    labels = [lab for lab in bases for _ in range(4)]
    crops = [bases[lab] + 0.3 * rng.normal(size=(16, 16)).astype(np.float32) for lab in labels]

    def embed(batch):
        v = np.stack([np.asarray(c).ravel() for c in batch])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    args = ([], [], crops, labels, [NEW_WHALE] * len(labels), sorted(bases))
    alone, info = fit_open_set_calibration(embed, *args, local_features=False)
    assert alone is not None and set(alone.calibrators) == {"cos"} and info["resighted_queries"] >= 2
    both, _ = fit_open_set_calibration(embed, *args)
    assert set(both.calibrators) == {"cos", "inl"}


def test_calibration_pairs_are_verified_the_profiles_way():
    """``query_scores`` verifies the shortlist with the profile's ``LocalMatching``, as the worker will: a
    foreshortened re-sighting gets its inliers under an affine geometry and few under a similarity."""
    from ml.local_features import extract
    from ml.profiles import LocalMatching
    from ml.train_calibration import query_scores
    from tests.ml.test_local_features import blobs, squeezed

    pictures = [blobs(21), blobs(22)]
    g_vecs = np.eye(2, dtype=np.float32)
    g_feats = [extract(p) for p in pictures]
    query = extract(squeezed(pictures[0]))
    scores = {
        geometry: query_scores(
            g_vecs[0], query, g_vecs, ["a", "b"], g_feats, 2, LocalMatching(geometry=geometry, ransac_px=3.0)
        )["inl"]
        for geometry in ("similarity", "affine")
    }
    assert scores["affine"]["a"] >= 20 and scores["affine"]["a"] > 1.5 * scores["similarity"]["a"]
    assert scores["affine"]["b"] < 10
