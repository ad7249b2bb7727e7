"""Fused suggestions through a REAL Celery worker: RootSIFT features stored once at embed time, calibrated
probabilities on the suggestions, "new individual" placed by P, the matched-points PNG, and model
versions without calibration still ranking by cosine."""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from identification.models import Embedding, Individual, Suggestion
from identification.pipeline import cache
from identification.pipeline.reembed import reembed_gallery
from ml.calibration import MatchCalibration
from ml.local_features import LocalFeatures
from submissions.models import Photo
from tests.conftest import DEMO_INDIVIDUALS, MODEL_IMAGE_SIZE, register_model
from tests.site.test_pipeline import settled, upload_paths

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def calibrated_model(demo_data, media_root):
    """The demo recipe (resnet18, 64 px) with half the individuals held out: enough re-sighted queries of
    unseen whales for training to write calibration.json."""
    from ml.train import TrainConfig, train
    from tests.factories import write_csv

    folder, by_id, _ = demo_data
    train_dir = Path(settings.ML_ROOT) / "calibrated-train"
    train_dir.mkdir(parents=True, exist_ok=True)
    rows = [(img, label) for label in list(by_id)[:DEMO_INDIVIDUALS] for img in by_id[label][:-1]]
    write_csv(train_dir / "train.csv", ["Image", "Id"], rows)
    config = TrainConfig(
        csv=str(train_dir / "train.csv"),
        images_dir=str(folder / "images"),
        out_dir=str(Path(settings.ML_ROOT) / "models" / "calibrated"),
        arch="resnet18",
        image_size=MODEL_IMAGE_SIZE,
        epochs=1,
        batch_size=16,
        num_workers=0,
        max_steps=4,
        device="cpu",
        train_localizer=False,
        new_individual_fraction=0.5,
    )
    result = train(config)
    assert MatchCalibration.load(result.model_dir) is not None, result.metrics.calibration
    return result


@pytest.fixture
def calibrated(active_model, calibrated_model):
    """``active_model``'s gallery, re-embedded by the calibrated version (the real reembed) and promoted."""
    version = register_model(calibrated_model)
    assert reembed_gallery(version.pk, promote=True) == "promoted"
    version.refresh_from_db()
    active_model.version = version
    return active_model


def _rows(photo):
    return list(Suggestion.objects.filter(photo=photo, model_version=photo.model_version).order_by("rank"))


def test_gallery_and_query_features_are_stored_once_with_their_embedding(calibrated, celery_worker):
    version = calibrated.version
    gallery = Embedding.objects.filter(model_version=version, photo__in=Photo.objects.in_gallery())
    assert gallery.count() == sum(len(v) for v in calibrated.gallery.values())
    assert not gallery.filter(features__isnull=True).exists()  # reembed stored every gallery photo's features
    before = dict(gallery.values_list("photo_id", "features"))
    photo = settled(upload_paths(calibrated, [next(iter(calibrated.held_out.values()))]).accepted[0])
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    emb = Embedding.objects.get(photo=photo, model_version=version)
    feats = LocalFeatures.from_bytes(bytes(emb.features))
    assert feats.size == (MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE)
    # ranking a query read the gallery's features; it never rewrote them
    assert dict(gallery.values_list("photo_id", "features")) == before


def test_suggestions_carry_calibrated_probabilities_and_new_is_placed_by_p(calibrated, celery_worker):
    cal = MatchCalibration.load(cache.model_dir(calibrated.version))
    paths = [next(iter(calibrated.held_out.values())), calibrated.new_whale[0]]
    for photo in upload_paths(calibrated, paths).accepted:
        photo = settled(photo)
        assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
        rows = _rows(photo)
        assert len(rows) == 6 and [r.rank for r in rows] == [1, 2, 3, 4, 5, 6]
        assert all(r.probability is not None and 0.0 < r.probability < 1.0 for r in rows)
        candidates = [r for r in rows if r.individual_id is not None]
        new = [r for r in rows if r.individual_id is None]
        assert len(new) == 1 and len(candidates) == 5
        probs = [r.probability for r in candidates]
        assert probs == sorted(probs, reverse=True)  # ranked by the fused P, not the cosine
        assert all(r.inliers is not None for r in candidates)
        above = sum(1 for p in probs if p >= cal.new_threshold)
        assert new[0].rank == above + 1  # "new individual" right after the candidates at or above the threshold
        assert new[0].probability == pytest.approx(1.0 - max(probs))
        assert new[0].probability_words.endswith("% new individual")
        assert candidates[0].probability_words == f"{round(100 * probs[0])}% same individual"


def test_review_page_shows_words_and_matched_points_png_is_for_moderators(calibrated, celery_worker, client):
    photo = settled(upload_paths(calibrated, [next(iter(calibrated.held_out.values()))]).accepted[0])
    top = next(r for r in _rows(photo) if r.individual_id is not None)
    url = reverse("identification:matched_points", args=[photo.pk, top.individual_id])
    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(calibrated.users["watcher"])
    assert client.get(url).status_code == 403
    client.force_login(calibrated.users["moderator"])
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert top.probability_words in page and url in page and "match_evidence.js" in page
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    import io

    from PIL import Image

    picture = Image.open(io.BytesIO(response.content))
    assert picture.size == (2 * MODEL_IMAGE_SIZE + 8, MODEL_IMAGE_SIZE)
    never = Individual.objects.exclude(pk__in=[r.individual_id for r in _rows(photo) if r.individual_id]).first()
    if never is not None:  # a whale that was not suggested has no evidence to draw
        assert client.get(reverse("identification:matched_points", args=[photo.pk, never.pk])).status_code == 404
    assert client.get(reverse("identification:matched_points", args=[photo.pk, 999999])).status_code == 404


def test_version_without_calibration_still_ranks_by_cosine(active_model, celery_worker):
    assert MatchCalibration.load(cache.model_dir(active_model.version)) is None  # the demo folder: too few held out
    photo = settled(upload_paths(active_model, [next(iter(active_model.held_out.values()))]).accepted[0])
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    rows = _rows(photo)
    assert len(rows) == 6 and all(r.probability is None and r.inliers is None for r in rows)
    new = next(r for r in rows if r.individual_id is None)
    assert new.score == pytest.approx(active_model.version.new_threshold)  # today's cosine threshold row
    cosines = [r.score for r in rows if r.individual_id is not None]
    assert cosines == sorted(cosines, reverse=True)
    emb = Embedding.objects.get(photo=photo, model_version=active_model.version)
    assert emb.features is not None  # features are stored at embed time whatever the version


def test_holdout_evaluation_of_a_calibrated_version_ranks_like_the_pipeline(active_model, calibrated_model):
    """Embedding a version for the first time in the holdout evaluation stores features too (reembed then
    skips those photos), and the evaluation ranks by the fused P, whose threshold the version carries."""
    from identification.training.registry import evaluate_on_holdout

    version = register_model(calibrated_model)
    assert version.new_threshold == pytest.approx(MatchCalibration.load(cache.model_dir(version)).new_threshold)
    evaluation = evaluate_on_holdout(version)
    assert evaluation.metrics["n"] >= 1 and 0.0 <= evaluation.metrics["map5"] <= 1.0
    rows = Embedding.objects.filter(model_version=version)
    assert rows.exists() and not rows.filter(features__isnull=True).exists()


def _strict_copy(result):
    """The calibrated folder copied with its real detector (ml.ood) made strict: threshold 0, so every photo
    the training set does not hold is flagged, as a real photo is under a model trained on synthetic flukes."""
    import dataclasses
    import shutil

    from ml.ood import OODDetector

    out = Path(settings.ML_ROOT) / "models" / "calibrated-strict"
    shutil.copytree(result.model_dir, out, dirs_exist_ok=True)
    detector = OODDetector.load(out)
    detector.threshold = 0.0
    detector.save(out)
    return dataclasses.replace(result, model_dir=str(out))


def test_the_trained_detector_scores_every_photo_and_the_review_page_follows_its_flag(
    calibrated, celery_worker, client
):
    from ml.identifier import Identifier
    from ml.ood import OODDetector

    detector = OODDetector.load(cache.model_dir(calibrated.version))
    assert detector is not None and detector.info["method"] == "knn"  # training fitted it (ml.train._fit_ood)
    photo = settled(upload_paths(calibrated, [next(iter(calibrated.held_out.values()))]).accepted[0])
    emb = Embedding.objects.get(photo=photo, model_version=calibrated.version)
    ident = Identifier.load(cache.model_dir(calibrated.version), device="cpu")
    familiar = ident.familiarity(cache.vector_from_bytes(emb.vector))
    assert emb.ood_score == pytest.approx(familiar.score, abs=1e-5) and emb.out_of_distribution is familiar.flagged
    client.force_login(calibrated.users["moderator"])
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    warned = "looks unlike the photos the model was trained on" in page
    assert warned is familiar.flagged and "Familiarity" in page
    gallery = Embedding.objects.filter(model_version=calibrated.version, photo__in=Photo.objects.in_gallery())
    assert not gallery.filter(ood_score__isnull=True).exists()  # reembed stored every gallery photo's score


def test_a_flagged_photo_is_matched_on_keypoints_only_and_the_pages_say_so(
    calibrated, calibrated_model, celery_worker, client
):
    version = register_model(_strict_copy(calibrated_model))
    assert reembed_gallery(version.pk, promote=True) == "promoted"
    cal = MatchCalibration.load(cache.model_dir(version))
    photo = settled(upload_paths(calibrated, [calibrated.new_whale[0]]).accepted[0])
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.model_version_id == version.pk
    emb = Embedding.objects.get(photo=photo, model_version=version)
    assert emb.out_of_distribution is True and emb.ood_score > 0.0
    rows = _rows(photo)
    candidates = [r for r in rows if r.individual_id is not None]
    # the cosine adds nothing: each candidate's P is what its verified keypoints say, and only as far as they stand
    # above what this photo finds with the other candidates by chance (ml.fused_ranking.above_chance)
    by_inliers = cal.calibrators["inl"]
    for r in candidates:
        assert float(by_inliers([0])[0]) - 1e-6 <= r.probability <= float(by_inliers([r.inliers])[0]) + 1e-6
    ordered = sorted(candidates, key=lambda r: -r.inliers)
    assert all(a.probability >= b.probability - 1e-9 for a, b in zip(ordered, ordered[1:]))
    client.force_login(calibrated.users["moderator"])
    words = "This photo looks unlike the photos the model was trained on; the scores are less reliable"
    assert words in client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert words in client.get(reverse("identification:photo_detail", args=[photo.pk])).content.decode()
    # a gallery photo re-embedded by the strict version is flagged too (reembed stores the flag)
    assert Embedding.objects.filter(model_version=version, out_of_distribution__isnull=False).count() > 1
