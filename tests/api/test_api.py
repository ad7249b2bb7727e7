"""Issue 15 item 3: the REST API's reads, writes, tokens, pagination, filters, rate limits and bad input."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from api.models import ApiToken
from identification.models import Decision, TrainingExample
from submissions.models import Photo, Sighting
from tests.factories import IndividualFactory, PhotoFactory, SpeciesFactory, jpeg_bytes, upload
from tests.web.helpers import gallery_photo, review_setup

pytestmark = pytest.mark.django_db


def _photo_url(photo) -> str:
    return reverse("api:photo-detail", args=[photo.pk])


def test_species_list_is_paginated_and_filterable(api_as):
    SpeciesFactory()
    SpeciesFactory(code="BW", common_name="Blue whale", scientific_name="Balaenoptera musculus")
    data = api_as("anonymous").get(reverse("api:species-list")).json()
    assert data["count"] == 2 and {s["code"] for s in data["results"]} == {"HW", "BW"}
    data = api_as("anonymous").get(reverse("api:species-list"), {"q": "balaen"}).json()
    assert [s["code"] for s in data["results"]] == ["BW"]


def test_pages_of_individuals_follow_page_size(api_as, settings):
    settings.API_PAGE_SIZE = 2
    for _ in range(5):
        IndividualFactory()
    client = api_as("anonymous")
    first = client.get(reverse("api:individual-list")).json()
    assert first["count"] == 5 and len(first["results"]) == 2 and first["next"]
    last = client.get(reverse("api:individual-list"), {"page": 3}).json()
    assert len(last["results"]) == 1 and last["next"] is None
    bad = client.get(reverse("api:individual-list"), {"page": 99})
    assert bad.status_code == 404 and "detail" in bad.json()


def test_individual_has_its_sightings_at_public_precision(api_as, settings):
    whale = IndividualFactory(nickname="Lumpy")
    gallery_photo(whale, sighting__latitude=66.123456, sighting__longitude=-17.354321, sighting__notes="my boat")
    IndividualFactory(nickname="Other")
    data = api_as("anonymous").get(reverse("api:individual-detail", args=[whale.catalogue_id])).json()
    assert data["nickname"] == "Lumpy" and data["photo_count"] == 1
    [sighting] = data["sightings"]
    assert (sighting["latitude"], sighting["longitude"]) == (66.1, -17.4)
    assert sighting["coordinate_decimals"] == settings.PUBLIC_COORDINATE_DECIMALS
    assert sighting["notes"] is None and sighting["observer_name"] is None
    found = api_as("anonymous").get(reverse("api:individual-list"), {"q": "lump"}).json()
    assert [i["catalogue_id"] for i in found["results"]] == [whale.catalogue_id]


def test_unconfirmed_sighting_is_seen_only_by_its_owner_and_moderators(api_as):
    owner = api_as("watcher", "owner@example.org")
    pending = PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        sighting__submitted_by=owner.user,
        sighting__latitude=64.14661,
        sighting__longitude=-21.94263,
    )
    url = reverse("api:sighting-detail", args=[pending.sighting_id])
    mine = owner.get(url).json()
    assert (mine["latitude"], mine["longitude"], mine["coordinate_decimals"]) == (64.14661, -21.94263, None)
    assert api_as("watcher", "other@example.org").get(url).status_code == 404
    assert api_as("anonymous").get(url).status_code == 404
    moderated = api_as("moderator").get(url).json()
    assert moderated["latitude"] == 64.147  # MODERATOR_COORDINATE_DECIMALS, as on the research exports
    assert api_as("admin").get(url).json()["latitude"] == 64.14661
    listed = api_as("watcher", "other@example.org").get(reverse("api:sighting-list")).json()
    assert pending.sighting_id not in [s["id"] for s in listed["results"]]


def test_coordinate_box_is_applied_at_the_precision_the_viewer_sees(api_as):
    """Bisecting with lat_min must not find a confirmed sighting's exact latitude (66.1234 is shown as 66.1)."""
    gallery_photo(IndividualFactory(), sighting__latitude=66.1234, sighting__longitude=-17.0)
    anonymous = api_as("anonymous")
    count = lambda **q: anonymous.get(reverse("api:sighting-list"), q).json()["count"]  # noqa: E731
    assert count(lat_min=66.1) == 1 and count(lat_max=66.1) == 1
    assert count(lat_min=66.12) == 0  # compared with 66.1, not with 66.1234
    assert api_as("admin").get(reverse("api:sighting-list"), {"lat_min": 66.12}).json()["count"] == 1
    bad = anonymous.get(reverse("api:sighting-list"), {"lat_min": 500})
    assert bad.status_code == 400 and "lat_min" in bad.json()["errors"]


def test_suggestions_only_for_owner_and_moderators(api_as):
    photo, individuals, _ = review_setup()
    owner = api_as("watcher", "owner@example.org")
    Sighting.objects.filter(pk=photo.sighting_id).update(submitted_by=owner.user)
    data = owner.get(_photo_url(photo)).json()
    assert data["status"] == "awaiting_review"
    assert [s["individual"] for s in data["suggestions"]][:2] == [
        individuals[0].catalogue_id,
        individuals[1].catalogue_id,
    ]
    assert None in [s["individual"] for s in data["suggestions"]]  # "new individual"
    assert api_as("moderator").get(_photo_url(photo)).json()["suggestions"]
    other = api_as("watcher", "other@example.org").get(_photo_url(photo))
    assert other.status_code == 403 and other.json() == {"detail": "You can only see your own photos."}
    anonymous = api_as("anonymous").get(_photo_url(photo))
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    public = gallery_photo(individuals[0])
    seen = api_as("watcher", "other@example.org").get(_photo_url(public)).json()
    assert seen["individual"] == individuals[0].catalogue_id and seen["suggestions"] is None


def test_photo_list_filters_by_status_and_hides_others_pending_photos(api_as):
    owner = api_as("watcher", "owner@example.org")
    mine = PhotoFactory(status=Photo.Status.PROCESSING, sighting__submitted_by=owner.user)
    theirs = PhotoFactory(status=Photo.Status.PROCESSING)
    public = gallery_photo(IndividualFactory())
    ids = [p["id"] for p in owner.get(reverse("api:photo-list")).json()["results"]]
    assert mine.pk in ids and public.pk in ids and theirs.pk not in ids
    ids = [p["id"] for p in owner.get(reverse("api:photo-list"), {"status": "processing"}).json()["results"]]
    assert ids == [mine.pk]
    all_processing = api_as("moderator").get(reverse("api:photo-list"), {"status": "processing"}).json()
    assert {p["id"] for p in all_processing["results"]} == {mine.pk, theirs.pk}


def test_submit_a_sighting_keeps_good_photos_and_names_bad_ones(api_as, django_capture_on_commit_callbacks):
    SpeciesFactory()
    client = api_as("watcher")
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            reverse("api:sighting-list"),
            {
                "species": "HW",
                "observed_at": (timezone.now() - timedelta(days=1)).isoformat(),
                "latitude": 64.1,
                "longitude": -21.9,
                "place_name": "Faxaflói",
                "photos": [upload("good.jpg", jpeg_bytes(seed=3)), upload("bad.jpg", b"not an image at all")],
            },
            format="multipart",
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    [accepted] = body["accepted"]
    assert accepted["status"] == "uploaded" and body["sighting"]["place_name"] == "Faxaflói"
    assert [r["name"] for r in body["rejected"]] == ["bad.jpg"] and body["rejected"][0]["error"]
    photo = Photo.objects.get(pk=accepted["id"])
    assert photo.sighting.submitted_by == client.user
    assert len(queued) == 1  # process_photo, sent when the upload commits (pipeline.queue)
    polled = client.get(_photo_url(photo)).json()
    assert polled["status"] == "uploaded" and polled["suggestions"] == []


def test_submit_with_no_valid_photo_saves_nothing_and_says_why(api_as):
    SpeciesFactory()
    response = api_as("watcher").post(
        reverse("api:sighting-list"),
        {"species": "HW", "observed_at": timezone.now().isoformat(), "photos": [upload("x.jpg", b"nope")]},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["rejected"][0]["name"] == "x.jpg" and "None of the photos" in response.json()["detail"]
    assert not Sighting.objects.exists()


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"species": "ZZ"}, "species"),
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"observed_at": "1900-01-01T00:00:00Z"}, "observed_at"),
        ({"latitude": 95, "longitude": 0}, "latitude"),
        ({"latitude": 10}, "longitude"),
        ({"photos": None}, "photos"),
    ],
)
def test_malformed_submission_gets_a_400_naming_the_field(api_as, fields, field):
    SpeciesFactory()
    data = {"species": "HW", "observed_at": timezone.now().isoformat(), "photos": [upload("a.jpg", jpeg_bytes())]}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    response = api_as("watcher").post(reverse("api:sighting-list"), data, format="multipart")
    assert response.status_code == 400 and field in response.json()["errors"], response.json()
    assert not Sighting.objects.exists()


def test_submission_without_a_token_is_401_and_a_bad_token_too(api_as):
    url = reverse("api:sighting-list")
    response = api_as("anonymous").post(url, {}, format="multipart")
    assert response.status_code == 401 and response.json()["detail"]
    client = api_as("anonymous")
    client.credentials(HTTP_AUTHORIZATION="Bearer ws_not-a-real-token")
    response = client.get(reverse("api:species-list"))
    assert response.status_code == 401 and response.json() == {"detail": "Invalid or revoked API token."}


def test_moderator_confirms_a_match_through_the_api(api_as):
    photo, individuals, _ = review_setup()
    client = api_as("moderator")
    url = reverse("api:photo-decision", args=[photo.pk])
    response = client.post(url, {"action": "confirm", "individual": individuals[1].catalogue_id}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["final"] and body["photo"]["status"] == "confirmed"
    assert body["photo"]["individual"] == individuals[1].catalogue_id
    decision = Decision.objects.get(photo=photo)
    assert decision.moderator == client.user and decision.action == Decision.Action.CONFIRM
    assert TrainingExample.objects.get(photo=photo).individual == individuals[1]
    again = client.post(url, {"action": "reject", "reason": "poor_quality"}, format="json")
    assert again.status_code == 400 and again.json()["detail"] == "This photo has already been decided."


def test_moderator_names_a_new_individual_and_rejects(api_as):
    photo, _, _ = review_setup()
    other, _, _ = review_setup()
    client = api_as("moderator")
    body = client.post(
        reverse("api:photo-decision", args=[photo.pk]), {"action": "new_individual", "nickname": "Salt"}, format="json"
    ).json()
    assert body["final"] and body["photo"]["status"] == "new_individual" and body["individual"].startswith("HW-")
    body = client.post(
        reverse("api:photo-decision", args=[other.pk]), {"action": "reject", "reason": "not_a_fluke"}, format="json"
    ).json()
    assert body["photo"]["status"] == "rejected" and body["photo"]["reject_reason"] == "not_a_fluke"


def test_decision_bad_input_is_a_clear_400_and_watchers_get_403(api_as):
    photo, _, _ = review_setup()
    url = reverse("api:photo-decision", args=[photo.pk])
    moderator = api_as("moderator")
    response = moderator.post(url, "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON parse error" in response.json()["detail"]
    response = moderator.post(url, {"action": "confirm"}, format="json")
    assert response.status_code == 400 and "individual" in response.json()["errors"]
    response = moderator.post(url, {"action": "confirm", "individual": "HW-9999"}, format="json")
    assert response.status_code == 400 and "individual" in response.json()["errors"]
    response = api_as("watcher").post(url, {"action": "skip"}, format="json")
    assert response.status_code == 403 and "moderators" in response.json()["detail"]
    assert (
        moderator.post(reverse("api:photo-decision", args=[10**9]), {"action": "skip"}, format="json").status_code
        == 404
    )
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and not Decision.objects.exists()


def test_token_is_stored_as_a_digest_and_revoking_stops_it(client, api_as):
    from tests.factories import UserFactory

    user = UserFactory(email="tok@example.org", role="watcher")
    client.force_login(user)
    page = client.post(reverse("api:tokens"), {"name": "R script"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    raw = page.context["new_token"]
    assert raw.startswith("ws_") and raw in page.content.decode()
    token = ApiToken.objects.get(user=user)
    assert token.name == "R script" and raw not in (token.digest, token.prefix)
    api = api_as("anonymous")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get(reverse("api:sighting-list")).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert raw not in client.get(reverse("api:tokens")).content.decode()  # shown once only
    client.post(reverse("api:revoke_token", args=[token.pk]))
    assert api.get(reverse("api:sighting-list")).status_code == 401


def test_a_user_cannot_revoke_another_users_token(client, api_as):
    from api.tokens import create_token
    from tests.factories import UserFactory

    theirs, _ = create_token(UserFactory(email="a@example.org"), "theirs")
    client.force_login(UserFactory(email="b@example.org"))
    client.post(reverse("api:revoke_token", args=[theirs.pk]))
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert client.post(reverse("api:tokens"), {"name": "  "}).status_code == 400


def test_requests_are_rate_limited_per_token(api_as, settings):
    settings.API_TOKEN_RATE = "3/hour"
    first, second = api_as("watcher", "one@example.org"), api_as("watcher", "two@example.org")
    url = reverse("api:species-list")
    assert [first.get(url).status_code for _ in range(3)] == [200, 200, 200]
    limited = first.get(url)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0 and "throttled" in limited.json()["detail"]
    assert second.get(url).status_code == 200  # another token has its own budget


def test_an_oversized_upload_is_refused_with_json_before_the_body_is_read(api_as, settings):
    """A 10 GB submission: refused from Content-Length alone (whalesite.middleware), as JSON for the API."""
    client = api_as("watcher")
    response = client.generic(
        "POST",
        reverse("api:sighting-list"),
        b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 * 1024**3),
    )
    assert response.status_code == 413
    assert "over the 100 MB limit" in response.json()["detail"] and "Nothing was saved" in response.json()["detail"]
    assert not Sighting.objects.exists()
