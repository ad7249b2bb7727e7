"""The identification pipeline through a REAL Celery worker (Redis broker, PostgreSQL)."""

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from identification.models import Decision, Embedding, Suggestion, TrainingExample
from identification.review.curation import retry_photo
from identification.review.decisions import confirm_match, name_new_individual
from identification.review.queue import claim_photo, review_queue
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.conftest import wait_for
from tests.factories import upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DONE = (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)


def upload_paths(demo, paths, user=None):
    files = [upload(p.name, p.read_bytes()) for p in paths]
    return submit_sighting(
        user=user or demo.users["watcher"], species=demo.species, observed_at=timezone.now(), files=files
    )


def settled(photo, timeout=120):
    def check():
        photo.refresh_from_db()
        return photo.status in DONE

    wait_for(check, timeout=timeout, message=f"photo {photo.pk} to leave processing")
    return photo


def suggestions(photo):
    return list(Suggestion.objects.filter(photo=photo).order_by("rank").values_list("rank", "individual_id", "score"))


def test_upload_to_six_suggestions_and_rerun_is_idempotent(active_model, celery_worker):
    label = next(iter(active_model.held_out))
    photo = upload_paths(active_model, [active_model.held_out[label]]).accepted[0]
    settled(photo)
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    rows = suggestions(photo)
    assert len(rows) == 6 and [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert sum(1 for r in rows if r[1] is None) == 1  # exactly one "new individual" row
    assert photo.box_source and photo.box_x1 is not None and photo.model_version_id == active_model.version.pk
    assert photo.crop and default_storage.exists(photo.crop.name)
    assert Embedding.objects.filter(photo=photo).count() == 1
    gallery_ids = {p.pk for p in Photo.objects.in_gallery()}
    assert photo.pk not in gallery_ids

    # run it again (as a redelivery would): same suggestions, nothing duplicated
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.UPLOADED)
    from identification.tasks import process_photo

    process_photo.delay(photo.pk)
    settled(photo)
    assert suggestions(photo) == rows
    assert Embedding.objects.filter(photo=photo).count() == 1
    assert Suggestion.objects.filter(photo=photo).count() == 6


def test_corrupt_file_fails_with_reason_and_does_not_block_queue(active_model, celery_worker):
    labels = list(active_model.held_out)
    out = upload_paths(active_model, [active_model.held_out[labels[0]], active_model.held_out[labels[1]]])
    bad, good = out.accepted
    # the stored file is damaged after upload (before the worker reads it)
    Photo.objects.filter(pk=bad.pk).update(status=Photo.Status.FAILED)  # hold it while we damage the file
    with default_storage.open(bad.image.name, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0 broken")
    Photo.objects.filter(pk=bad.pk).update(status=Photo.Status.UPLOADED)
    from identification.tasks import process_photo

    process_photo.delay(bad.pk)
    settled(bad)
    settled(good)
    assert bad.status == Photo.Status.FAILED and bad.failure_code in ("not_an_image", "corrupt")
    assert "image" in bad.failure_reason
    assert good.status == Photo.Status.AWAITING_REVIEW

    # a moderator fixes the file and retries
    with default_storage.open(bad.image.name, "wb") as fh:
        fh.write(active_model.held_out[labels[0]].read_bytes())
    retry_photo(photo=bad, actor=active_model.users["moderator"])
    assert Decision.objects.filter(photo=bad, action=Decision.Action.RETRY).exists()
    settled(bad)
    assert bad.status == Photo.Status.AWAITING_REVIEW and Suggestion.objects.filter(photo=bad).count() == 6


def test_confirm_joins_gallery_and_batch_mates_are_matched(active_model, celery_worker, mailoutbox):
    """A new whale: two photos in one sighting. Naming it from one photo makes it a candidate
    for the other (re-ranked), and for the next upload, without retraining."""
    import io

    from PIL import Image

    demo = active_model

    def reencoded(path, quality):  # the same picture, different bytes: robust to the tiny test model
        buf = io.BytesIO()
        Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
        return upload(f"re{quality}-{path.name}", buf.getvalue())

    files = [upload(demo.new_whale[0].name, demo.new_whale[0].read_bytes()), reencoded(demo.new_whale[0], 90)]
    first, second = submit_sighting(
        user=demo.users["watcher"], species=demo.species, observed_at=timezone.now(), files=files
    ).accepted
    settled(first)
    settled(second)
    assert second.batch_matches and second.batch_matches[0]["photo_id"] == first.pk

    moderator = demo.users["moderator"]
    assert {p.pk for p in review_queue(moderator)} >= {first.pk, second.pk}
    claim_photo(photo=first, moderator=moderator)
    individual = name_new_individual(photo=first, moderator=moderator, nickname="Splash")
    assert individual.catalogue_id == f"HW-{len(demo.individuals) + 1:04d}"
    first.refresh_from_db()
    assert first.status == Photo.Status.NEW_INDIVIDUAL and first in Photo.objects.in_gallery()
    assert TrainingExample.objects.get(photo=first).status == TrainingExample.Status.QUEUED
    decision = Decision.objects.get(photo=first)
    assert decision.action == Decision.Action.NEW_INDIVIDUAL and len(decision.scores) == 6

    # the batch-mate is re-ranked by the worker: the new individual is now among its candidates
    try:
        wait_for(
            lambda: Suggestion.objects.filter(photo=second, individual=individual).exists(),
            timeout=30,
            message="the batch-mate to be re-ranked",
        )
    except AssertionError:
        second.refresh_from_db()
        print(
            "DEBUG",
            second.status,
            second.batch_matches,
            suggestions(second),
            individual.pk,
            Embedding.objects.filter(photo=first).count(),
            celery_worker.log_tail(3000),
        )
        raise

    # a later upload of the same whale gets it as a candidate, no retraining
    later = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[reencoded(demo.new_whale[0], 80)],
    ).accepted[0]
    settled(later)
    assert Suggestion.objects.filter(photo=later, individual=individual).exists()

    confirm_match(photo=second, moderator=moderator, individual=individual)
    with pytest.raises(Exception, match="already been decided"):
        confirm_match(photo=second, moderator=moderator, individual=individual)

    # emails name the whale by catalogue id (sent by the worker's notify_watchers task)
    wait_for(
        lambda: Decision.objects.filter(photo=second, details__has_key="notified").exists(),
        timeout=60,
        message="notification",
    )
    first_decision = Decision.objects.get(photo=first)
    assert first_decision.details.get("notified", 0) >= 1
    # (the worker's locmem outbox is in its own process; the message text is checked in test_services)
