"""Issue 14, item 2: the whale page a watcher shares (best photo, facts, map, credited timeline, preview tags)
and the clear 404 of an unknown whale id."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from identification import whales
from submissions.models import Licence, Photo
from tests.factories import UserFactory
from tests.web.helpers import IndividualFactory, PhotoFactory, gallery_photo

pytestmark = pytest.mark.django_db


def days_ago(n):
    return timezone.now() - timedelta(days=n)


@pytest.fixture
def whale():
    """A whale seen three times by two contributors (one sighting named its own observer), plus a photo still
    awaiting review that must not count."""
    whale = IndividualFactory(catalogue_id="HW-0007", nickname="Salt")
    ana = UserFactory(email="ana@example.org", first_name="Ana", last_name="Lima")
    ben = UserFactory(email="ben@example.org")
    gallery_photo(whale, sighting__submitted_by=ana, sighting__observed_at=days_ago(700), box_confidence=0.5)
    best = gallery_photo(
        whale,
        sighting__submitted_by=ben,
        sighting__observer_name="Captain Bo",
        sighting__observed_at=days_ago(30),
        box_confidence=0.97,
        licence=Licence.CC_BY_NC,
    )
    gallery_photo(whale, sighting__submitted_by=ana, sighting__observed_at=days_ago(10), box_confidence=0.9)
    gallery_photo(whale, sighting__submitted_by=ana, box_confidence=0.99, box_flagged=True)  # flagged: never on top
    PhotoFactory(status=Photo.Status.AWAITING_REVIEW, individual=whale, sighting__observed_at=days_ago(1))
    return whale, best


def test_profile_counts_only_the_gallery(whale):
    individual, best = whale
    profile = whales.whale_profile(individual)
    assert profile.best_photo == best
    assert profile.best_photo.credit == "Captain Bo"
    assert profile.sightings == 4 and profile.photos == 4
    assert profile.contributors == 2  # Ana and Ben (Ben's sighting credits Captain Bo, still Ben's upload)
    assert profile.first_seen.date() == days_ago(700).date()
    assert profile.last_seen.date() == days_ago(3).date()  # the flagged photo's sighting (factory default)
    dates = [e.sighting.observed_at for e in profile.timeline]
    assert dates == sorted(dates, reverse=True)


def test_share_text_reads_like_a_sentence(whale):
    profile = whales.whale_profile(whale[0])
    year = days_ago(700).year
    last = days_ago(3).year
    span = f"in {year}" if year == last else f"between {year} and {last}"
    assert whales.share_text(profile) == (
        f"Humpback whale HW-0007 “Salt”: seen 4 times {span}, photographed by 2 contributors."
    )
    lone = whales.whale_profile(IndividualFactory(catalogue_id="HW-0100"))
    assert whales.share_text(lone) == "Humpback whale HW-0100: not seen in a confirmed photo yet."


def test_whale_page_has_title_preview_and_credits(client, whale):
    individual, best = whale
    page = client.get(reverse("identification:individual_detail", args=[individual.catalogue_id])).content.decode()
    assert "<title>HW-0007 “Salt”, humpback whale · Whalesite</title>" in page
    assert f'<meta property="og:image" content="http://testserver{best.crop.url}">' in page
    assert '<meta property="og:url" content="http://testserver/individuals/HW-0007/">' in page
    assert '<meta property="og:title" content="HW-0007 (Salt), humpback whale">' in page
    assert 'name="twitter:card" content="summary_large_image"' in page
    assert f'class="whale-hero"><img src="{best.crop.url}"' in " ".join(page.split()).replace("> <", "><")
    assert "Photo: Captain Bo" in page and "Photo: Ana Lima" in page
    assert 'rel="license">CC BY-NC 4.0</a>' in page
    assert 'id="contributor-count">2<' in page and 'id="sighting-count">4<' in page
    assert 'data-map="track"' in page
    assert "ana@example.org" not in page and "ben@example.org" not in page  # names, never e-mail addresses


def test_unknown_whale_id_is_a_clear_404(client):
    response = client.get(reverse("identification:individual_detail", args=["HW-9999"]))
    assert response.status_code == 404
    page = response.content.decode()
    assert "No such whale" in page and "No whale in the catalogue has the id “HW-9999”." in page
    assert reverse("identification:individuals") in page
