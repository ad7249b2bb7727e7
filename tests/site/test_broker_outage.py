"""Issue 13, item 2: the broker stopped during an upload (a loopback TCP proxy in front of the test Redis,
``broker_proxy``), against the real form, a real worker and the real database. The watcher is told the
photos are saved, a retry of the same file is recognised as the watcher's own, ``/healthz`` reports the
broker, and the photos are processed once the broker is back."""

import pytest
from django.urls import reverse

from identification import jobs
from submissions.models import Photo, Sighting
from tests.conftest import wait_for
from tests.factories import sighting_form, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_upload_during_a_broker_outage_is_saved_told_and_processed_when_it_is_back(
    active_model, celery_worker, client, broker_proxy
):
    demo = active_model
    client.force_login(demo.users["watcher"])
    data = next(iter(demo.held_out.values())).read_bytes()
    broker_proxy.stop()

    page = client.post(
        reverse("submissions:submit"), sighting_form(demo.species, photos=[upload("fluke.jpg", data)]), follow=True
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "received and saved" in html and "will be processed automatically" in html
    photo = Photo.objects.get(original_filename="fluke.jpg")
    assert photo.status == Photo.Status.UPLOADED and photo.queued_at is None

    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded" and health.json()["broker"].startswith("unreachable")

    # the watcher tries again with the same file: their own photo, not a catalogue duplicate
    sightings = Sighting.objects.count()
    again = client.post(
        reverse("submissions:submit"), sighting_form(demo.species, photos=[upload("fluke.jpg", data)]), follow=True
    )
    html = again.content.decode()
    assert "you sent this photo already; it is saved and will be processed" in html
    assert "already in our catalogue" not in html
    assert Sighting.objects.count() == sightings and Photo.objects.filter(sha256=photo.sha256).count() == 1

    broker_proxy.start()
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "broker": "ok"}
    jobs.send(jobs.SEND_UNQUEUED_PHOTOS, 0)  # what beat sends every 15 s, without the 15 s grace

    def settled():
        photo.refresh_from_db()
        return photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)

    try:
        wait_for(settled, timeout=120, message="the photo saved during the outage to be processed")
    except AssertionError:
        print(celery_worker.log_tail(4000))
        raise
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    assert photo.queued_at is not None and photo.attempts == 1
