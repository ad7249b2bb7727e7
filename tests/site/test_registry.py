"""Model registry services on the real demo model: the frozen holdout set, evaluation of two
versions on it, training exports leaving it out, and localizer retraining (IoU before/after)."""

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from identification.models import HoldoutEvaluation, HoldoutSet, ModelVersion, TrainingExample, TrainingRun
from identification.tasks import evaluate_holdout, retrain_localizer
from identification.training.dataset import export_dataset, holdout_photo_ids
from identification.training.localizer import localizer_training_photos, start_localizer_retrain
from identification.training.registry import evaluate_on_holdout, get_or_create_holdout
from submissions.models import Photo
from tests.conftest import register_model

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
METRICS = ("map5", "top1", "top5", "new_precision", "new_recall")


def _single_photo_whale(demo):
    """A whale with one gallery photo: holding it out makes a "new individual" case."""
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from identification.models import Individual
    from submissions.models import Sighting

    ind = Individual.objects.create(catalogue_id="HW-0099", species=demo.species)
    sighting = Sighting.objects.create(species=demo.species, observed_at=timezone.now())
    data = demo.new_whale[0].read_bytes()
    photo = Photo(sighting=sighting, sha256="f" * 64, status=Photo.Status.CONFIRMED, individual=ind)
    photo.image.save("single.jpg", ContentFile(data), save=True)
    return photo


def test_holdout_is_frozen_and_shared_by_two_versions(active_model, demo_model):
    single = _single_photo_whale(active_model)
    first = evaluate_on_holdout(active_model.version)
    holdout = HoldoutSet.objects.get()
    items = list(holdout.items)
    assert len(items) == 6  # 5 known whales (one photo each) + the single-photo whale as a new case
    assert {i["photo_id"] for i in items if i["new"]} == {single.pk}
    assert len({i["individual_id"] for i in items}) == len(items)

    candidate = register_model(demo_model)  # same weights, another version: must score on the same photos
    assert evaluate_holdout(candidate.pk).startswith("map5=")
    second = HoldoutEvaluation.objects.get(model_version=candidate)
    assert HoldoutSet.objects.count() == 1 and second.holdout_id == first.holdout_id == holdout.pk
    holdout.refresh_from_db()
    assert holdout.items == items  # frozen
    for ev in (first, second):
        assert ev.metrics["n"] == 6 and ev.metrics["new_cases"] == 1
        assert ev.gallery_size == 18 - 5  # the gallery minus the held-out photos (the single photo is held out)
        for key in METRICS:
            assert 0.0 <= ev.metrics[key] <= 1.0, (key, ev.metrics)
        for key in ("map5", "top1", "top5"):  # a bootstrap interval around each score (issue 12 item 7)
            low, high = ev.metrics["intervals"][key]
            assert 0.0 <= low <= ev.metrics[key] <= high <= 1.0, (key, ev.metrics["intervals"])
    # same weights, same photos, same gallery: the same numbers
    for key in METRICS:
        assert second.metrics[key] == pytest.approx(first.metrics[key], abs=1e-6)
    # the candidate's gallery embeddings were stored (a later promotion reuses them)
    assert candidate.embeddings.count() == 18 + 1


def test_training_export_leaves_out_holdout_and_excluded(active_model, tmp_path):
    get_or_create_holdout()
    held = holdout_photo_ids()
    excluded = TrainingExample.objects.exclude(photo_id__in=held).first()
    excluded.status = TrainingExample.Status.EXCLUDED
    excluded.save()
    snapshot = export_dataset(tmp_path / "data")
    assert held and not held & set(snapshot["photo_ids"])
    assert excluded.photo_id not in snapshot["photo_ids"]
    assert snapshot["photos"] == 18 - len(held) - 1
    rows = (tmp_path / "data" / "train.csv").read_text().splitlines()
    assert len(rows) == 1 + snapshot["photos"]


def test_registry_detail_shows_holdout_numbers_beside_active(client, active_model, demo_model):
    candidate = register_model(demo_model, training_snapshot={"photos": 12, "individuals": 6, "photo_ids": [1, 2]})
    evaluate_on_holdout(active_model.version)
    evaluate_on_holdout(candidate)
    client.force_login(active_model.users["admin"])
    html = client.get(reverse("identification:model_detail", args=[candidate.pk])).content.decode()
    active_map5 = HoldoutEvaluation.objects.get(model_version=active_model.version).metrics["map5"]
    assert f"Active ({active_model.version.name})" in html
    assert f"{active_map5:.3f}" in html and "+0.000" in html  # same weights: zero delta
    listing = client.get(reverse("identification:model_list")).content.decode()
    assert candidate.name in listing and "not evaluated" not in listing


def test_localizer_retrain_reports_iou_before_and_after(client, active_model):
    admin = active_model.users["admin"]
    corrected = [p for photos in active_model.gallery.values() for p in photos][:4]
    for p in corrected:
        p.box_source = Photo.BoxSource.MODERATOR
        p.save()
    assert set(localizer_training_photos().values_list("pk", flat=True)) >= {p.pk for p in corrected}
    run = start_localizer_retrain(user=admin, epochs=2)
    TrainingRun.objects.filter(pk=run.pk).update(options={**run.options, "max_steps": 3})
    assert retrain_localizer(run.pk) == "succeeded"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    m = run.metrics
    assert m["n_train"] + m["n_val"] == localizer_training_photos().count() and m["n_val"] >= 1
    assert m["iou_before_current"] is None  # the demo model has no localizer.pt
    assert 0.0 <= m["iou_before_default"] <= 1.0 and 0.0 <= m["iou_after"] <= 1.0
    version = run.model_version
    assert version is not None and not version.is_active
    assert ModelVersion.objects.active().get() == active_model.version  # untouched until promoted
    folder = Path(settings.ML_ROOT) / version.artifact_dir
    assert (folder / "localizer.pt").is_file() and (folder / "model.pt").is_file()
    from ml.identifier import Identifier

    assert Identifier.load(folder, device="cpu").localizer is not None
    client.force_login(admin)
    html = client.get(reverse("identification:run_detail", args=[run.pk])).content.decode()
    assert f"{m['iou_after']:.3f}" in html and f"{m['iou_before_default']:.3f}" in html
    detail = client.get(reverse("identification:model_detail", args=[version.pk])).content.decode()
    assert "IoU after" in detail and f"{m['iou_after']:.3f}" in detail


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_real_worker_writes_heartbeat_with_device_and_queues(celery_worker, client):
    """The worker_ready signal in identification.ops.health stores hostname, device and queues."""
    from identification.models import WorkerHeartbeat
    from tests.conftest import wait_for
    from tests.factories import UserFactory

    beat = wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname__startswith="test-").first(),
        timeout=60,
        message="the worker heartbeat row",
    )
    assert beat.device.startswith("CPU")  # ML_DEVICE=cpu in the worker fixture
    assert set(beat.queues) == {"pipeline", "training", "default", "imports"} and beat.pid
    client.force_login(UserFactory(email="hb-admin@example.org", role="admin"))
    response = client.get(reverse("identification:health"))
    row = next(w for w in response.context["workers"] if w["hostname"] == beat.hostname)
    assert row["alive"] and row["answered_ping"] and not row["gpu"]
