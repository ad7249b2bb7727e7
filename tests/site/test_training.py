"""Training runs, promotion and rollback through the REAL Celery worker (Redis broker, PostgreSQL).

The worker trains with ML_TRAIN_MAX_STEPS=3 (see ``celery_worker`` in tests/conftest.py), so a run
is tiny: resnet18 at 64 px, a few steps, on the gallery of the ``active_model`` fixture.
"""

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from identification.models import Embedding, ModelVersion, Suggestion, TrainingExample, TrainingRun
from identification.pipeline import cache
from identification.training.dataset import current_holdout
from identification.training.registry import promote_model_version, rollback_model
from identification.training.runs import start_training_run
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.conftest import wait_for
from tests.factories import UserFactory, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED = (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED)


def fresh(user):
    """The user re-read, so its permission cache reflects its role group."""
    return type(user).objects.get(pk=user.pk)


def finished(run, worker, timeout=300):
    def check():
        run.refresh_from_db()
        return run.status in FINISHED

    try:
        wait_for(check, timeout=timeout, interval=0.5, message=f"training run {run.pk} to finish")
    except AssertionError:
        print(worker.log_tail(4000))
        raise
    return run


def settled(photo, timeout=120):
    def check():
        photo.refresh_from_db()
        return photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)

    wait_for(check, timeout=timeout, message=f"photo {photo.pk} to leave processing")
    return photo


def reencoded(path, name, quality=85):
    """The same picture with other bytes (not an exact duplicate of an earlier upload)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return upload(name, buf.getvalue())


def test_training_run_on_worker_succeeds_with_inactive_version(active_model, celery_worker):
    demo = active_model
    admin = fresh(demo.users["admin"])
    # two examples a moderator confirmed since the last run
    queued = [photos[0].pk for photos in list(demo.gallery.values())[:2]]
    TrainingExample.objects.filter(photo_id__in=queued).update(status=TrainingExample.Status.QUEUED)

    run = start_training_run(user=admin, epochs=5, image_size=64)  # capped at 3 steps by the worker
    assert run.status == TrainingRun.Status.QUEUED
    finished(run, celery_worker)

    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.started_at is not None and run.finished_at is not None and run.finished_at >= run.started_at
    assert run.progress.get("phase") == "done" and run.progress.get("epochs") == 5
    held = set(current_holdout().photo_ids)  # frozen before this first export, and left out of it
    assert f"Exported {18 - len(held)} photos of 6 individuals" in run.log and "Created model version" in run.log
    assert not held & set(run.model_version.training_snapshot["photo_ids"])
    assert "fine-tuning from" in run.log  # from the active model

    version = run.model_version
    assert version is not None and not version.is_active and not version.gallery_ready
    assert version.metrics.get("steps") == 3 and version.metrics.get("stop_reason") == "max_steps"
    assert "map5" in version.metrics
    assert [h["epoch"] for h in version.history][:2] == [0, 1]  # epoch 0: the untrained baseline
    assert version.training_snapshot["photos"] == 18 - len(held) == len(version.training_snapshot["photo_ids"])
    assert run.metrics == version.metrics
    folder = cache.model_dir(version)
    assert (folder / "model.pt").is_file() and (folder / "metrics.json").is_file()
    assert (folder / "history.json").is_file()
    assert folder.resolve().is_relative_to(Path(settings.ML_ROOT).resolve())

    examples = TrainingExample.objects.filter(photo_id__in=queued)
    assert set(examples.values_list("status", flat=True)) == {TrainingExample.Status.USED}
    assert set(examples.values_list("used_by_id", flat=True)) == {run.pk}
    # the site still runs on the model it had
    assert ModelVersion.objects.get(is_active=True).pk == demo.version.pk


def test_run_without_training_data_fails_with_its_error(celery_worker):
    admin = fresh(UserFactory(role="admin"))
    run = start_training_run(user=admin, epochs=1, image_size=64)
    finished(run, celery_worker, timeout=120)
    assert run.status == TrainingRun.Status.FAILED
    assert "At least two identified individuals" in run.error and "Failed:" in run.log
    assert run.model_version is None and not ModelVersion.objects.exists()
    # a failed run does not block the next one
    assert start_training_run(user=admin, epochs=1).status == TrainingRun.Status.QUEUED


def test_corrupt_export_fails_run_and_keeps_active_model(active_model, celery_worker):
    """ml drops single unusable photos; when no photo of the export is usable the run fails."""
    demo = active_model
    admin = fresh(demo.users["admin"])
    photos = [p for photos in demo.gallery.values() for p in photos]
    TrainingExample.objects.filter(photo=photos[0]).update(status=TrainingExample.Status.QUEUED)
    for photo in photos:
        with default_storage.open(photo.image.name, "wb") as fh:
            fh.write(b"\xff\xd8\xff\xe0 this is not a whole JPEG")

    run = start_training_run(user=admin, epochs=1, image_size=64)
    finished(run, celery_worker)
    assert run.status == TrainingRun.Status.FAILED
    assert "DatasetError" in run.error and run.finished_at is not None and "Failed:" in run.log
    assert run.model_version is None
    assert list(ModelVersion.objects.values_list("pk", "is_active")) == [(demo.version.pk, True)]
    # the examples were not consumed by a run that produced nothing
    assert TrainingExample.objects.get(photo=photos[0]).status == TrainingExample.Status.QUEUED


def test_promote_reembeds_gallery_then_new_uploads_use_it_and_rollback(active_model, celery_worker):
    demo = active_model
    admin = fresh(demo.users["admin"])
    old = demo.version
    # a photo already awaiting review with the old model, re-ranked after promotion
    first_label, second_label = list(demo.held_out)[:2]
    waiting = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[upload("w.jpg", demo.held_out[first_label].read_bytes())],
    ).accepted[0]
    settled(waiting)
    assert waiting.status == Photo.Status.AWAITING_REVIEW and waiting.model_version_id == old.pk

    # a second version: the same weights in its own folder (training is covered above)
    src = cache.model_dir(old)
    dst = src.parent / f"copy-{timezone.now():%H%M%S%f}"
    shutil.copytree(src, dst)
    new = ModelVersion.objects.create(
        name=f"v2-{dst.name}",
        artifact_dir=str(dst.relative_to(Path(settings.ML_ROOT))),
        metrics=old.metrics,
        history=old.history,
        new_threshold=old.new_threshold,
        species=old.species,  # the same species: promoting it retires the old one
    )

    promote_model_version(version=new, user=admin)
    new.refresh_from_db()
    assert not new.is_active and new.promoted_by_id == admin.pk  # switched only once the gallery is embedded

    def active_is_new():
        return ModelVersion.objects.filter(pk=new.pk, is_active=True, gallery_ready=True).exists()

    wait_for(active_is_new, timeout=180, message="reembed_gallery to promote the new version")
    gallery = set(Photo.objects.in_gallery().values_list("pk", flat=True))
    assert len(gallery) == 18
    assert set(Embedding.objects.filter(model_version=new).values_list("photo_id", flat=True)) >= gallery
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [new.pk]
    new.refresh_from_db()
    assert new.promoted_at is not None

    # the photo awaiting review is re-ranked with the new version
    wait_for(
        lambda: Suggestion.objects.filter(photo=waiting, model_version=new).count() == 6,
        timeout=60,
        message="the waiting photo to be re-ranked with the new version",
    )

    # a new upload, processed by the same worker process (no restart), uses the new version
    pid = celery_worker.proc.pid
    photo = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[upload("n.jpg", demo.held_out[second_label].read_bytes())],
    ).accepted[0]
    settled(photo)
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    assert photo.model_version_id == new.pk
    assert set(Suggestion.objects.filter(photo=photo).values_list("model_version_id", flat=True)) == {new.pk}
    assert Suggestion.objects.filter(photo=photo).count() == 6
    assert celery_worker.proc.pid == pid and celery_worker.proc.poll() is None

    # roll back: the previous version is active again (its gallery embeddings are still there)
    rollback_model(user=admin)
    wait_for(
        lambda: ModelVersion.objects.filter(pk=old.pk, is_active=True).exists(),
        timeout=120,
        message="rollback to the previous version",
    )
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [old.pk]
    later = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[reencoded(demo.held_out[first_label], "l.jpg")],
    ).accepted[0]
    settled(later)
    assert later.model_version_id == old.pk
    assert set(Suggestion.objects.filter(photo=later).values_list("model_version_id", flat=True)) == {old.pk}
