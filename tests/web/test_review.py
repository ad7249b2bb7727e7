from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from identification.models import Decision, Individual
from submissions.models import Photo
from tests.web.helpers import PhotoFactory, make_user, review_setup

pytestmark = pytest.mark.django_db


def test_queue_lists_oldest_first_with_filters(client, moderator):
    photo, _, _ = review_setup()
    response = client.get(reverse("identification:review_queue"))
    assert response.status_code == 200
    assert response.context["count"] == 1
    assert reverse("identification:review_photo", args=[photo.pk]) in response.content.decode()
    filtered = client.get(reverse("identification:review_queue"), {"date_from": "2999-01-01"})
    assert filtered.context["count"] == 0
    start = client.post(reverse("identification:review_start"))
    assert start.status_code == 302  # filtered queue is empty -> back to the queue
    client.get(reverse("identification:review_queue"))
    start = client.post(reverse("identification:review_start"))
    assert start["Location"] == reverse("identification:review_photo", args=[photo.pk])


def test_review_page_renders_candidates_and_new_row(client, moderator):
    photo, individuals, version = review_setup(n_candidates=5, new_rank=3)
    response = client.get(reverse("identification:review_photo", args=[photo.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    rows = response.context["candidates"]
    assert [r["key"] for r in rows] == ["1", "2", "3", "4", "5", "6"]  # the printed rank, "new" row included
    assert rows[2]["suggestion"].individual_id is None and 'id="new-form" data-shortcut="3"' in html
    for ind in individuals:
        assert ind.catalogue_id in html and ind.nickname in html
    assert all(r["reference"] is not None for r in rows if r["suggestion"].individual_id)
    assert version.name in html
    assert "New: HW-" in html
    assert 'data-shortcut="1"' in html and 'id="reject-reason"' in html and "js/review.js" in html
    photo.refresh_from_db()
    assert photo.claimed_by is None  # looking is not claiming (issue 13 item 7)


def test_a_get_never_changes_a_claim(client, moderator):
    """GET /review/<id>/ (the page and its self-poll) and GET /review/start/ leave claims as they are:
    a cross-site <img> must not hide a moderator's queue. Claims are taken by POST only."""
    held, _, _ = review_setup()
    free, _, _ = review_setup()
    other = make_user("moderator", "other@example.org")
    claimed_at = timezone.now() - timedelta(minutes=1)
    Photo.objects.filter(pk=held.pk).update(claimed_by=other, claimed_at=claimed_at)
    page = client.get(reverse("identification:review_photo", args=[held.pk]))
    assert page.status_code == 200 and "other@example.org is reviewing this photo" in page.content.decode()
    client.get(reverse("identification:review_photo", args=[free.pk]))
    assert client.get(reverse("identification:review_start")).status_code == 405
    assert client.get(reverse("identification:review_claim", args=[free.pk])).status_code == 405
    held.refresh_from_db()
    free.refresh_from_db()
    assert (held.claimed_by, held.claimed_at) == (other, claimed_at)
    assert free.claimed_by is None and free.claimed_at is None

    client.post(reverse("identification:review_claim", args=[free.pk]))
    free.refresh_from_db()
    assert free.claimed_by == moderator  # the queue's Review button (POST) claims
    start = client.post(reverse("identification:review_start"))
    assert start["Location"] == reverse("identification:review_photo", args=[free.pk])


def test_flagged_box_warning_and_batch_mates(client, moderator):
    photo, _, _ = review_setup()
    mate = PhotoFactory(sighting=photo.sighting, status=Photo.Status.AWAITING_REVIEW)
    Photo.objects.filter(pk=photo.pk).update(box_flagged=True, batch_matches=[{"photo_id": mate.pk, "score": 0.93}])
    html = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "not found confidently" in html
    assert "Similar photos in the same upload" in html and "0.930" in html


def test_confirm_through_view_changes_photo_and_goes_to_next(client, moderator):
    photo, individuals, _ = review_setup()
    other, _, _ = review_setup()
    response = client.post(
        reverse("identification:review_decide", args=[photo.pk]), {"action": "confirm", "individual": individuals[1].pk}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("identification:review_photo", args=[other.pk])
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CONFIRMED and photo.individual == individuals[1]
    assert Decision.objects.filter(photo=photo, action=Decision.Action.CONFIRM, moderator=moderator).exists()


def test_new_individual_reject_and_skip(client, moderator):
    a, _, _ = review_setup()
    b, _, _ = review_setup()
    c, _, _ = review_setup()
    url = lambda p: reverse("identification:review_decide", args=[p.pk])  # noqa: E731
    response = client.post(url(a), {"action": "new", "nickname": "Moonlight"}, follow=True)
    a.refresh_from_db()
    assert a.status == Photo.Status.NEW_INDIVIDUAL and a.individual.nickname == "Moonlight"
    assert "New individual" in response.content.decode()
    client.post(url(b), {"action": "reject", "reason": "poor_quality"})
    b.refresh_from_db()
    assert b.status == Photo.Status.REJECTED and b.reject_reason == "poor_quality"
    response = client.post(url(c), {"action": "skip"})
    c.refresh_from_db()
    assert c.status == Photo.Status.AWAITING_REVIEW
    assert response["Location"] == reverse("identification:review_queue")  # only the skipped one is left


def test_decision_errors_become_messages(client, moderator):
    photo, individuals, _ = review_setup()
    url = reverse("identification:review_decide", args=[photo.pk])
    assert client.post(url, {"action": "explode"}).status_code == 400
    response = client.post(url, {"action": "confirm"}, follow=True)
    assert "Choose one of the candidates" in response.content.decode()
    client.post(url, {"action": "confirm", "individual": individuals[0].pk})
    response = client.post(url, {"action": "reject", "reason": "poor_quality"}, follow=True)
    assert "already been decided" in response.content.decode()


def test_failed_listing_and_retry(client, moderator):
    failed = PhotoFactory(status=Photo.Status.FAILED, failure_code="corrupt", failure_reason="The file is damaged.")
    html = client.get(reverse("identification:failed_photos")).content.decode()
    assert "The file is damaged." in html and reverse("identification:retry", args=[failed.pk]) in html
    response = client.post(reverse("identification:retry", args=[failed.pk]), follow=True)
    failed.refresh_from_db()
    assert failed.status == Photo.Status.UPLOADED
    assert "queued for processing again" in response.content.decode()


def test_public_catalogue_shows_only_confirmed(client):
    from tests.web.helpers import IndividualFactory, gallery_photo

    whale = IndividualFactory(nickname="Salt")
    shown = gallery_photo(whale)
    hidden = PhotoFactory(individual=whale, status=Photo.Status.AWAITING_REVIEW)
    listing = client.get(reverse("identification:individuals"), {"q": "sal"})
    assert whale.catalogue_id in listing.content.decode()
    assert listing.context["page"][0].photo_count == 1
    assert client.get(reverse("identification:individuals"), {"q": "zzz"}).context["page"].paginator.count == 0
    detail = client.get(reverse("identification:individual_detail", args=[whale.catalogue_id]))
    assert [p for entry in detail.context["profile"].timeline for p in entry.photos] == [shown]
    assert hidden.image.url not in detail.content.decode()
    sightings = client.get(reverse("submissions:sightings")).content.decode()
    assert whale.catalogue_id in sightings
    home = client.get(reverse("home"))
    assert home.context["counts"] == {"individuals": Individual.objects.count(), "photos": 1, "sightings": 1}
