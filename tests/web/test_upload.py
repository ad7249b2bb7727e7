import pytest
from django.urls import reverse

from submissions.models import Photo, Sighting
from tests.factories import jpeg_bytes, sighting_form, upload
from tests.web.helpers import PhotoFactory, SpeciesFactory

pytestmark = pytest.mark.django_db


def test_upload_form_renders(client, watcher):
    SpeciesFactory()
    response = client.get(reverse("submissions:submit"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="dropzone"' in html and 'name="photos"' in html and "multiple" in html
    assert "Humpback whale" in html
    assert reverse("submissions:exif") in html
    assert "js/upload.js" in html


def test_upload_requires_login(client):
    response = client.get(reverse("submissions:submit"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_missing_fields_show_field_errors(client, watcher):
    SpeciesFactory()
    response = client.post(reverse("submissions:submit"), {})
    assert response.status_code == 200
    form = response.context["form"]
    assert {"species", "observed_date", "photos"} <= set(form.errors)
    assert b"Add at least one photo" in response.content
    assert Sighting.objects.count() == 0


def test_latitude_without_longitude(client, watcher):
    species = SpeciesFactory()
    data = sighting_form(species, longitude="")
    data["photos"] = [upload("a.jpg", jpeg_bytes(seed=1))]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 200
    assert "longitude" in response.context["form"].errors
    assert Sighting.objects.count() == 0


def test_rejected_file_message_rendered(client, watcher):
    species = SpeciesFactory()
    data = sighting_form(species)
    data["photos"] = [upload("not-a-photo.jpg", b"hello, I am text, not a JPEG", content_type="image/jpeg")]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "not-a-photo.jpg" in html
    assert "None of the photos could be added" in html
    assert Sighting.objects.count() == 0 and Photo.objects.count() == 0


def test_good_upload_redirects_with_per_file_results(client, watcher):
    species = SpeciesFactory()
    existing = PhotoFactory(sha256=__import__("hashlib").sha256(jpeg_bytes(seed=3)).hexdigest())
    data = sighting_form(species)
    data["photos"] = [
        upload("good.jpg", jpeg_bytes(seed=2)),
        upload("again.jpg", jpeg_bytes(seed=3)),
        upload("junk.jpg", b"not an image at all"),
    ]
    response = client.post(reverse("submissions:submit"), data, follow=True)
    assert response.redirect_chain[-1][0] == reverse("submissions:my_sightings")
    html = response.content.decode()
    assert "1 photo received" in html
    assert "again.jpg: already in our catalogue" in html
    assert "junk.jpg" in html
    sighting = Sighting.objects.get(submitted_by=watcher)
    assert sighting.place_name == "Skjálfandi" and sighting.latitude == pytest.approx(66.05)
    assert sighting.observed_at.hour == 14
    names = set(sighting.photos.values_list("original_filename", flat=True))
    assert names == {"good.jpg", "again.jpg"}
    assert sighting.photos.get(original_filename="again.jpg").duplicate_of == existing


@pytest.mark.parametrize("day", ["0001-01-01", "1825-12-31", "1899-12-31", "1949-12-31"])
def test_dates_before_photography_or_the_floor_are_refused(client, watcher, day):
    species = SpeciesFactory()
    data = sighting_form(species, observed_date=day)
    data["photos"] = [upload("a.jpg", jpeg_bytes(seed=21))]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 200
    assert "can&#x27;t be before 01 January 1950" in response.content.decode()
    assert Sighting.objects.count() == 0 and Photo.objects.count() == 0


def test_the_date_floor_is_a_setting_but_never_before_photography(client, watcher, settings):
    import datetime

    settings.SIGHTING_DATE_FLOOR = datetime.date(1, 1, 1)
    species = SpeciesFactory()
    data = sighting_form(species, observed_date="1825-12-31")
    data["photos"] = [upload("a.jpg", jpeg_bytes(seed=22))]
    assert "can&#x27;t be before 01 January 1826" in client.post(reverse("submissions:submit"), data).content.decode()
    data = sighting_form(species, observed_date="1930-06-01")
    data["photos"] = [upload("a.jpg", jpeg_bytes(seed=22))]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 302 and Sighting.objects.count() == 1


def test_an_upload_over_the_request_cap_is_refused_before_it_is_read_and_the_cap_is_shown(client, watcher, settings):
    species = SpeciesFactory()
    assert "25 MB each, 100 MB per upload" in client.get(reverse("submissions:submit")).content.decode()
    settings.MAX_REQUEST_BYTES = 1024 * 1024
    data = sighting_form(species)
    data["photos"] = [upload(f"{i}.jpg", jpeg_bytes(seed=30 + i) + b"\0" * 600_000) for i in range(2)]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 413
    assert "over the 1 MB limit for one upload. Nothing was saved" in response.content.decode()
    assert Sighting.objects.count() == 0 and Photo.objects.count() == 0


def test_notes_over_the_field_limit_are_cut_with_a_message_and_the_photos_kept(client, watcher):
    species = SpeciesFactory()
    data = sighting_form(species, notes="n" * (26 * 1024 * 1024))  # over the old 25 MB field limit (bare HTTP 400)
    data["photos"] = [upload("a.jpg", jpeg_bytes(seed=51))]
    response = client.post(reverse("submissions:submit"), data, follow=True)
    assert response.status_code == 200
    assert "Your notes were longer than 5000 characters" in response.content.decode()
    sighting = Sighting.objects.get()
    assert len(sighting.notes) == 5000 and sighting.photos.count() == 1


def test_too_many_photos(client, watcher, settings):
    species = SpeciesFactory()
    data = sighting_form(species)
    data["photos"] = [upload(f"{i}.jpg", b"x") for i in range(settings.MAX_PHOTOS_PER_SIGHTING + 1)]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 200
    assert "At most 20 photos" in response.content.decode()


def test_exif_endpoint_returns_json(client, watcher):
    response = client.post(reverse("submissions:exif"), {"photo": upload("a.jpg", jpeg_bytes(seed=1))})
    assert response.status_code == 200
    data = response.json()
    assert set(data) >= {"observed_at", "date", "time", "latitude", "longitude"}
    assert client.post(reverse("submissions:exif"), {}).status_code == 400
    assert client.get(reverse("submissions:exif")).status_code == 405


def test_my_sightings_badges_and_status_json(client, watcher):
    from tests.web.helpers import IndividualFactory, gallery_photo

    sighting_kwargs = {"sighting__submitted_by": watcher}
    processing = PhotoFactory(status=Photo.Status.PROCESSING, **sighting_kwargs)
    rejected = PhotoFactory(status=Photo.Status.REJECTED, reject_reason="not_a_fluke", sighting=processing.sighting)
    failed = PhotoFactory(
        status=Photo.Status.FAILED, failure_reason="The image is too small.", sighting=processing.sighting
    )
    whale = IndividualFactory(nickname="Sprinkles")
    confirmed = gallery_photo(whale, sighting=processing.sighting)
    PhotoFactory()  # someone else's
    response = client.get(reverse("submissions:my_sightings"))
    html = response.content.decode()
    assert response.context["pending"] is True
    assert "Not a fluke" in html and "The image is too small." in html
    assert whale.catalogue_id in html and "Sprinkles" in html
    assert 'data-status-url="/me/sightings/status.json"' in html
    status = client.get(reverse("submissions:my_sightings_status")).json()
    assert status["pending"] == 1
    assert status["photos"] == {str(p.pk): p.status for p in (processing, rejected, failed, confirmed)}
