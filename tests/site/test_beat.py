"""Beat housekeeping: ``requeue_stuck_photos`` re-queues photos whose message was lost; the REAL
worker then processes them."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from identification.models import Suggestion
from identification.pipeline.housekeeping import STUCK_MAX_ATTEMPTS
from identification.tasks import requeue_stuck_photos
from ml.images import compute_hashes
from submissions.models import Photo, Sighting
from tests.conftest import wait_for
from whalesite.celery import DEFAULT_QUEUE, app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def lost_photo(demo, path, status, age, attempts=0):
    """A photo saved without its process_photo message (as if the broker lost it), ``age`` old."""
    data = path.read_bytes()
    h = compute_hashes(data)
    sighting = Sighting.objects.create(
        species=demo.species, observed_at=timezone.now(), submitted_by=demo.users["watcher"]
    )
    photo = Photo(
        sighting=sighting,
        species=demo.species,
        sha256=h.sha256,
        phash=h.phash,
        original_filename=path.name,
        status=status,
        attempts=attempts,
    )
    photo.image.save(path.name, ContentFile(data), save=False)
    photo.save()
    Photo.objects.filter(pk=photo.pk).update(updated_at=timezone.now() - age)
    return photo


def test_beat_schedule_names_the_task_on_the_default_queue():
    entry = app.conf.beat_schedule["requeue-stuck-photos"]
    assert entry["task"] == requeue_stuck_photos.name and entry["schedule"] > 0
    assert app.amqp.router.route({}, requeue_stuck_photos.name)["queue"].name == DEFAULT_QUEUE


def test_beat_prunes_the_gallery_change_log_hourly_on_the_default_queue():
    from identification.tasks import prune_gallery_changes

    entry = app.conf.beat_schedule["prune-gallery-changes"]
    assert entry["task"] == prune_gallery_changes.name and entry["schedule"] == 3600.0
    assert app.amqp.router.route({}, prune_gallery_changes.name)["queue"].name == DEFAULT_QUEUE


def test_stuck_photos_are_requeued_once_and_processed(active_model, celery_worker):
    demo = active_model
    labels = list(demo.held_out)
    hour = timedelta(hours=1)
    uploaded = lost_photo(demo, demo.held_out[labels[0]], Photo.Status.UPLOADED, hour)
    processing = lost_photo(demo, demo.held_out[labels[1]], Photo.Status.PROCESSING, hour, attempts=1)
    recent = lost_photo(demo, demo.held_out[labels[2]], Photo.Status.UPLOADED, timedelta(minutes=1))
    hopeless = lost_photo(demo, demo.held_out[labels[3]], Photo.Status.PROCESSING, hour, attempts=STUCK_MAX_ATTEMPTS)

    assert requeue_stuck_photos(older_than_minutes=30) == 2
    # at once again: nothing (updated_at was touched), so a beat tick never queues a photo twice
    assert requeue_stuck_photos(older_than_minutes=30) == 0

    def processed():
        return (
            Photo.objects.filter(pk__in=[uploaded.pk, processing.pk], status=Photo.Status.AWAITING_REVIEW).count() == 2
        )

    wait_for(processed, timeout=120, message="the re-queued photos to be processed by the worker")
    for photo in (uploaded, processing):
        assert Suggestion.objects.filter(photo=photo).count() == 6
    recent.refresh_from_db()
    hopeless.refresh_from_db()
    assert recent.status == Photo.Status.UPLOADED  # younger than the threshold: left alone
    assert hopeless.status == Photo.Status.FAILED and hopeless.failure_code == "stuck"
    assert "moderator can retry" in hopeless.failure_reason

    # through the worker as beat sends it: the young photo is now old enough
    Photo.objects.filter(pk=recent.pk).update(updated_at=timezone.now() - hour)
    requeue_stuck_photos.delay(30)
    wait_for(
        lambda: Photo.objects.filter(pk=recent.pk, status=Photo.Status.AWAITING_REVIEW).exists(),
        timeout=120,
        message="the beat task on the worker to re-queue the last photo",
    )
    assert Suggestion.objects.filter(photo=recent).count() == 6
    processing.refresh_from_db()
    assert processing.attempts == 2  # one lost attempt, one real one
