"""Issue 13: the database dropped in the middle of an upload (a loopback TCP proxy in front of the test
PostgreSQL, ``database_proxy``, cut while the second photo is being inserted, after both files were written),
against the real form, the real storage, a real worker and the real broker. The watcher gets a 503 page that
says nothing was saved (no bare 500), storage keeps no file of the rolled-back rows, and once the database
is back the same upload is saved once and processed."""

import pytest
from django.db import close_old_connections
from django.db.models.signals import pre_save
from django.urls import reverse

from submissions.models import Photo, Sighting
from tests.conftest import wait_for
from tests.factories import sighting_form, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_database_dropped_mid_upload_gives_a_clear_page_leaves_no_file_and_the_retry_is_saved_once(
    active_model, celery_worker, client, media_root, database_proxy
):
    demo = active_model
    client.force_login(demo.users["watcher"])
    paths = list(demo.held_out.values())[:2]
    data = [p.read_bytes() for p in paths]

    def files():
        return [upload(f"fluke-{n}.jpg", d) for n, d in enumerate(data)]

    def stored():
        return {str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file()}

    before = stored()
    sightings_before = set(Sighting.objects.values_list("pk", flat=True))
    photos_before = Photo.objects.count()  # the gallery's
    inserts = []

    def cut_on_second_photo(sender, instance, **kwargs):
        """Both photos' files are in storage by now; the database goes away under the second INSERT."""
        inserts.append(instance.original_filename)
        if len(inserts) == 2:
            database_proxy.stop()

    pre_save.connect(cut_on_second_photo, sender=Photo, weak=False)
    try:
        page = client.post(reverse("submissions:submit"), sighting_form(demo.species, photos=files()))
    finally:
        pre_save.disconnect(cut_on_second_photo, sender=Photo)

    assert inserts == ["fluke-0.jpg", "fluke-1.jpg"], "the database was not cut mid-upload"
    assert page.status_code == 503 and page["Retry-After"] == "30"
    html = page.content.decode()
    assert "lost its database for a moment" in html and "Nothing from this request was saved" in html
    assert "send them again" in html and "Traceback" not in html
    assert stored() == before, "files of the rolled-back photos were left in storage"

    database_proxy.start()
    close_old_connections()  # what Django's handler does after each request (the test client skips it)
    assert set(Sighting.objects.values_list("pk", flat=True)) == sightings_before
    assert Photo.objects.count() == photos_before

    again = client.post(reverse("submissions:submit"), sighting_form(demo.species, photos=files()), follow=True)
    assert again.redirect_chain[-1][0] == reverse("submissions:my_sightings")
    assert "Thank you! 2 photos received and queued for identification." in again.content.decode()
    (sighting,) = Sighting.objects.exclude(pk__in=sightings_before)
    photos = list(sighting.photos.order_by("original_filename"))
    assert [p.original_filename for p in photos] == ["fluke-0.jpg", "fluke-1.jpg"]
    assert Photo.objects.count() == photos_before + 2  # saved once
    assert stored() - before == {p.image.name for p in photos}

    def settled():
        return all(
            p.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)
            for p in Photo.objects.filter(pk__in=[p.pk for p in photos])
        )

    try:
        wait_for(settled, timeout=180, message="the re-sent photos to be processed")
    except AssertionError:
        print(celery_worker.log_tail(4000))
        raise
    for photo in Photo.objects.filter(pk__in=[p.pk for p in photos]):
        assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
        assert photo.attempts == 1
