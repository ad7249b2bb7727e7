"""A worker killed mid-task: the message is redelivered (acks_late, Redis visibility timeout of 10 s in
the ``celery_worker`` fixture) to the restarted worker, and the task completes once, without duplicates."""

import pytest
from django.utils import timezone

from identification import jobs
from identification.models import ModelVersion, Suggestion, TrainingRun
from identification.training.runs import start_training_run
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.conftest import forget_unacked, wait_for
from tests.factories import upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_training_run_survives_worker_sigkill(active_model, celery_worker):
    demo = active_model
    admin = type(demo.users["admin"]).objects.get(pk=demo.users["admin"].pk)
    run = start_training_run(user=admin, epochs=5, image_size=64)

    def running():
        run.refresh_from_db()
        assert run.status != TrainingRun.Status.SUCCEEDED, "the run finished before the worker could be killed"
        return run.status == TrainingRun.Status.RUNNING

    wait_for(running, timeout=120, interval=0.05, message="the run to start on the worker")
    celery_worker.kill()  # SIGKILL mid-run: the message was never acknowledged
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING and run.model_version_id is None
    assert not ModelVersion.objects.exclude(pk=demo.version.pk).exists()

    celery_worker.restart()

    def done():
        run.refresh_from_db()
        return run.status in (TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED)

    try:
        wait_for(done, timeout=300, interval=0.5, message="the redelivered run to finish")
    except AssertionError:
        print(celery_worker.log_tail(4000))
        raise
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert "The worker stopped during this run; starting it again." in run.log
    assert run.log.count("Created model version") == 1
    versions = ModelVersion.objects.exclude(pk=demo.version.pk)
    assert versions.count() == 1 and versions.get().pk == run.model_version_id
    assert TrainingRun.objects.count() == 1
    assert ModelVersion.objects.get(is_active=True).pk == demo.version.pk

    # the restarted worker serves the pipeline as before: one set of six suggestions
    label = next(iter(demo.held_out))
    photo = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[upload("after.jpg", demo.held_out[label].read_bytes())],
    ).accepted[0]

    def settled():
        photo.refresh_from_db()
        return photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)

    wait_for(settled, timeout=120, message="the photo to be processed")
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    assert Suggestion.objects.filter(photo=photo).count() == 6


def test_photo_left_processing_by_a_dead_worker_is_finished_once(active_model, celery_worker):
    """A photo whose worker died while it was PROCESSING is finished by the next worker, once."""
    demo = active_model
    label = list(demo.held_out)[1]
    # the worker is stopped first, so the message waits in the queue while we prepare the kill
    celery_worker.kill()
    photo = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[upload("slow.jpg", demo.held_out[label].read_bytes())],
    ).accepted[0]
    # as if a worker had taken it and died mid-task: PROCESSING, one attempt
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.PROCESSING, attempts=1)
    celery_worker.restart()

    def settled():
        photo.refresh_from_db()
        return photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)

    wait_for(settled, timeout=120, message="the photo to be processed after the restart")
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    assert photo.attempts == 2
    rows = list(Suggestion.objects.filter(photo=photo).values_list("rank", flat=True))
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]


def test_photo_of_a_worker_killed_mid_photo_is_processed_again_once_its_lease_lapses(active_model, celery_worker):
    """SIGKILL while the photo is PROCESSING, and the message not given back (``forget_unacked``: production's
    hour-long visibility timeout): beat's requeue finds the lapsed lease and the photo is processed, once."""
    import io
    import time

    from PIL import Image

    demo = active_model
    label = list(demo.held_out)[2]
    big = io.BytesIO()  # a large photo, so the worker is still on it when it is killed
    Image.open(demo.held_out[label]).convert("RGB").resize((4000, 2500)).save(big, "JPEG", quality=95)
    photo = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[upload("big.jpg", big.getvalue())],
    ).accepted[0]

    def processing():
        photo.refresh_from_db()
        assert photo.status == Photo.Status.UPLOADED or photo.status == Photo.Status.PROCESSING, (
            "the photo was processed before the worker could be killed"
        )
        return photo.status == Photo.Status.PROCESSING

    wait_for(processing, timeout=120, interval=0.005, message="the worker to take the photo")
    celery_worker.kill()
    killed_at = time.monotonic()
    forget_unacked()
    celery_worker.start()

    def settled():
        photo.refresh_from_db()
        if photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED):
            return True
        jobs.send(jobs.REQUEUE_STUCK_PHOTOS)  # what beat sends every minute
        return False

    try:
        wait_for(settled, timeout=180, interval=2, message="the killed worker's photo to be processed again")
    except AssertionError:
        print(celery_worker.log_tail(4000))
        raise
    print(f"processed again {time.monotonic() - killed_at:.1f} s after the kill (PHOTO_LEASE_S=6, beat every 2 s)")
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    assert photo.attempts == 2 and photo.lease_until is None
    assert Suggestion.objects.filter(photo=photo).count() == 6
