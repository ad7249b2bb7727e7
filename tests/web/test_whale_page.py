"""Issue 14, item 2: the whale page a watcher shares (best photo, facts, map, credited timeline, preview tags)
and the clear 404 of an unknown whale id."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
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


@pytest.fixture
def busy_whale():
    """A whale seen 41 times (``TIMELINE_PAGE`` is 20: three pages), "Bay 00" the newest, "Bay 40" the oldest."""
    whale = IndividualFactory(catalogue_id="HW-0500")
    for i in range(41):
        PhotoFactory(
            status=Photo.Status.CONFIRMED,
            individual=whale,
            sighting__species=whale.species,
            sighting__place_name=f"Bay {i:02d}",
            sighting__observed_at=days_ago(i + 1),
            sighting__latitude=60 + i / 10,
            sighting__longitude=-20.0,
        )
    return whale


def timeline_places(page: str) -> list[str]:
    return re.findall(r"Bay \d\d", page.split('id="timeline-h"')[1])


def test_timeline_is_paginated_newest_first(client, busy_whale):
    assert whales.TIMELINE_PAGE == 20
    url = reverse("identification:individual_detail", args=[busy_whale.catalogue_id])
    first = client.get(url).content.decode()
    assert timeline_places(first) == [f"Bay {i:02d}" for i in range(20)]
    assert 'id="sighting-count">41<' in first  # the facts count every sighting, not the page's
    assert "Sightings 1–20 of 41, newest first." in first and "Page 1 of 3" in first
    assert 'href="?page=2#timeline" rel="next">Older →' in first and "Newer" not in first
    second = client.get(url, {"page": 2}).content.decode()
    assert timeline_places(second) == [f"Bay {i:02d}" for i in range(20, 40)]
    assert 'href="?page=1#timeline" rel="prev">← Newer' in second and 'href="?page=3#timeline" rel="next"' in second
    assert '<ol class="timeline" start="21">' in second
    last = client.get(url, {"page": 3}).content.decode()
    assert timeline_places(last) == ["Bay 40"] and "Older" not in last and "Sightings 41–41 of 41" in last


@pytest.mark.parametrize("page, places", [("99", ["Bay 40"]), ("0", ["Bay 40"]), ("two", None), ("", None)])
def test_a_bad_timeline_page_number_gives_a_page_not_an_error(client, busy_whale, page, places):
    """Past the end (or below 1) is the last page; a page that is not a number, the first."""
    url = reverse("identification:individual_detail", args=[busy_whale.catalogue_id])
    response = client.get(url, {"page": page})
    assert response.status_code == 200
    assert timeline_places(response.content.decode()) == (places or [f"Bay {i:02d}" for i in range(20)])


def test_the_track_keeps_every_sighting_and_the_page_a_fixed_number_of_queries(
    client, busy_whale, django_assert_max_num_queries
):
    track = client.get(reverse("identification:individual_track", args=[busy_whale.catalogue_id])).json()
    assert sum(1 for f in track["features"] if f["geometry"]["type"] == "Point") == 41
    small = IndividualFactory(catalogue_id="HW-0501")
    for _ in range(2):
        PhotoFactory(status=Photo.Status.CONFIRMED, individual=small, sighting__species=small.species)
    url = reverse("identification:individual_detail", args=[small.catalogue_id])
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    with django_assert_max_num_queries(len(few)):  # 41 sightings (20 on the page) cost no more queries than 2
        client.get(reverse("identification:individual_detail", args=[busy_whale.catalogue_id]))


def test_the_profile_counts_a_named_observer_of_an_import_once(busy_whale):
    for _ in range(2):
        PhotoFactory(
            status=Photo.Status.CONFIRMED,
            individual=busy_whale,
            sighting__species=busy_whale.species,
            sighting__submitted_by=None,
            sighting__observer_name="Reykjavik Whale Watching",
        )
    profile = whales.whale_profile(busy_whale)
    assert profile.sightings == 43 and profile.photos == 43 and len(profile.timeline) == 20
    assert profile.contributors == 42  # 41 uploaders (one each, by the factory) and one named observer
