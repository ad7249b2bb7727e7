"""The site search (issue 14, item 4): catalogue ids, nicknames, places and contributors; paginated;
only the catalogue; never an internal id or an e-mail address in what it shows."""

import re

import pytest
from django.urls import reverse

from identification.views.search import SEARCH_PAGE
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, UserFactory
from tests.web.helpers import gallery_photo

pytestmark = pytest.mark.django_db


def found(client, q, page=1) -> list[str]:
    response = client.get(reverse("identification:search"), {"q": q, "page": page})
    assert response.status_code == 200
    return re.findall(r'class="whale-link" href="/individuals/([^/]+)/"', response.content.decode())


@pytest.fixture
def catalogue():
    anna = UserFactory(email="anna.berg@example.org", first_name="Anna", last_name="Berg")
    # distinctive primary keys, so that the test below can tell one in the page's text
    salt = IndividualFactory(id=987001, catalogue_id="HW-0101", nickname="Salt")
    comet = IndividualFactory(id=987002, catalogue_id="HW-0102", nickname="Comet")
    gallery_photo(salt, id=876001, sighting=SightingFactory(id=765001, place_name="Husavik harbour", submitted_by=anna))
    gallery_photo(comet, id=876002, sighting=SightingFactory(place_name="Tromsø", observer_name="Kari Nordmann"))
    hidden = IndividualFactory(catalogue_id="HW-0103")  # only a photo awaiting review: its place is not public
    PhotoFactory(
        individual=hidden, status=Photo.Status.AWAITING_REVIEW, sighting=SightingFactory(place_name="Secret cove")
    )
    return salt, comet, hidden


def test_search_finds_by_id_nickname_place_and_contributor(client, catalogue):
    assert found(client, "hw-01") == ["HW-0101", "HW-0102", "HW-0103"]
    assert found(client, "com") == ["HW-0102"]
    assert found(client, "husavik") == ["HW-0101"]
    assert found(client, "anna berg") == ["HW-0101"]
    assert found(client, "nordmann") == ["HW-0102"]
    assert found(client, "secret cove") == []  # not confirmed: not in the catalogue
    assert found(client, "anna.berg@example.org") == [] and found(client, "example.org") == []


def test_search_results_say_why_and_show_no_internal_ids(client, catalogue):
    salt, comet, _ = catalogue
    html = client.get(reverse("identification:search"), {"q": "Husavik"}).content.decode()
    assert "seen near Husavik harbour" in html
    text = re.sub(r"<[^>]+>", " ", html)  # what a reader sees, not the attributes
    assert "HW-0101" in text
    for pk in ("987001", "987002", "876001", "876002", "765001"):
        assert pk not in text
    assert "@example.org" not in html


def test_search_is_paginated(client):
    for n in range(SEARCH_PAGE + 3):
        IndividualFactory(catalogue_id=f"HW-2{n:03d}")
    first, second = found(client, "HW-2"), found(client, "HW-2", page=2)
    assert len(first) == SEARCH_PAGE and len(second) == 3 and not set(first) & set(second)


def test_an_empty_or_overlong_query_is_answered(client, catalogue):
    assert found(client, "") == [] and found(client, "   ") == []
    assert found(client, "x" * 5000) == []
