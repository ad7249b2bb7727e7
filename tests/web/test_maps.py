"""Issue 14, item 1: the public maps (sightings GeoJSON, a whale's track, the upload form's map) and the rule
that no public page or endpoint gives a sighting's exact position, confirmed or not."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from identification import maps
from submissions.models import Photo
from tests.factories import SpeciesFactory, UserFactory
from tests.web.helpers import IndividualFactory, PhotoFactory, gallery_photo, login

pytestmark = pytest.mark.django_db

EXACT = (47.123456, -52.654321)  # an unconfirmed watcher's spot: no public response may carry it


def days_ago(n):
    return timezone.now() - timedelta(days=n)


def features(client, **params):
    response = client.get(reverse("submissions:sightings_map"), params)
    assert response.status_code == 200, response.content
    return response.json()["features"]


def test_geojson_has_confirmed_and_unconfirmed_sightings_rounded(client):
    whale = IndividualFactory(catalogue_id="HW-0042")
    gallery_photo(whale, sighting__latitude=64.1466, sighting__longitude=-21.9426, sighting__place_name="Faxaflói")
    PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        sighting__latitude=EXACT[0],
        sighting__longitude=EXACT[1],
        sighting__place_name="My secret cove",
    )
    PhotoFactory(status=Photo.Status.REJECTED, sighting__latitude=10.0, sighting__longitude=10.0)
    PhotoFactory(status=Photo.Status.AWAITING_REVIEW)  # no position: not on the map

    by_confirmed = {f["properties"]["c"]: f for f in features(client)}
    assert set(by_confirmed) == {True, False}  # the rejected one is not public
    confirmed, unconfirmed = by_confirmed[True], by_confirmed[False]
    assert confirmed["geometry"]["coordinates"] == [-21.9, 64.1]
    assert confirmed["properties"]["w"] == ["HW-0042"] and confirmed["properties"]["p"] == "Faxaflói"
    assert unconfirmed["geometry"]["coordinates"] == [-52.7, 47.1]
    assert "p" not in unconfirmed["properties"] and unconfirmed["properties"]["w"] == []


def test_geojson_filters_by_species_dates_and_whale(client):
    other_species = SpeciesFactory(code="SW", common_name="Sperm whale")
    a, b = IndividualFactory(), IndividualFactory()
    gallery_photo(a, sighting__latitude=1.0, sighting__longitude=1.0, sighting__observed_at=days_ago(40))
    gallery_photo(b, sighting__latitude=2.0, sighting__longitude=2.0, sighting__observed_at=days_ago(5))
    PhotoFactory(
        status=Photo.Status.UPLOADED, sighting__species=other_species, sighting__latitude=3.0, sighting__longitude=3.0
    )

    def lats(**params):
        return sorted(f["geometry"]["coordinates"][1] for f in features(client, **params))

    assert lats() == [1.0, 2.0, 3.0]
    assert lats(species=other_species.code) == [3.0]
    assert lats(individual=a.catalogue_id.lower()) == [1.0]  # ids are matched without case
    since = (timezone.now() - timedelta(days=10)).date().isoformat()
    assert lats(observed_after=since) == [2.0, 3.0]
    assert lats(observed_before=since) == [1.0]


def test_geojson_names_a_bad_filter(client):
    url = reverse("submissions:sightings_map")
    response = client.get(url, {"individual": "HW-9999", "observed_after": "soon"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["individual"] == ["No whale in the catalogue has the id “HW-9999”."] and "observed_after" in errors
    response = client.get(url, {"observed_after": "2024-05-01", "observed_before": "2024-04-01"})
    assert response.status_code == 400
    assert response.json()["errors"]["observed_before"] == ["The end date is before the start date."]


def test_geojson_box_is_at_the_viewers_precision(client):
    """The map picks sightings with the page's filter: a box edge finer than the public 0.1° cannot find a
    sighting's exact spot (66.04 is seen as 66.0, so "from 66.03" leaves it out)."""
    gallery_photo(IndividualFactory(), sighting__latitude=66.04, sighting__longitude=-17.34)
    assert [f["geometry"]["coordinates"][1] for f in features(client, lat_min="66.0")] == [66.0]
    assert features(client, lat_min="66.03") == []


def test_a_merged_whale_filters_as_the_whale_it_joined(client):
    target = IndividualFactory()
    merged = IndividualFactory(merged_into=target)
    gallery_photo(target, sighting__latitude=5.0, sighting__longitude=5.0)
    gallery_photo(IndividualFactory(), sighting__latitude=6.0, sighting__longitude=6.0)
    assert [f["properties"]["w"] for f in features(client, individual=merged.catalogue_id)] == [[target.catalogue_id]]


def test_sightings_page_keeps_valid_filters_and_reports_the_bad_one(client):
    whale = IndividualFactory()
    gallery_photo(whale, sighting__place_name="Húsavík", sighting__latitude=66.04, sighting__longitude=-17.34)
    page = client.get(reverse("submissions:sightings"), {"individual": "nope"}).content.decode()
    assert "No whale in the catalogue has the id “nope”." in page
    assert "Húsavík" in page  # the bad field narrows nothing
    assert 'data-map="sightings"' in page and "map.geojson?individual=nope" in page  # the map reads the same filters


def many_sightings():
    """Eleven sightings in three 0.1° cells: six confirmed of two whales near 64.1 -21.9 (one sighting with two
    photos of both), two confirmed near 66.0 -17.3, and three awaiting review, one at the exact spot ``EXACT``
    (seen as 47.1 -52.7) and two in the first cell. A rejected one is on no map."""
    a, b = IndividualFactory(catalogue_id="HW-0101"), IndividualFactory(catalogue_id="HW-0102")
    for i in range(5):
        gallery_photo(a if i % 2 else b, sighting__latitude=64.1 + i / 100 - 0.02, sighting__longitude=-21.93)
    both = gallery_photo(a, sighting__latitude=64.14, sighting__longitude=-21.88, sighting__place_name="Faxaflói")
    gallery_photo(b, sighting=both.sighting)
    for lat in (65.96, 66.04):
        gallery_photo(b, sighting__latitude=lat, sighting__longitude=-17.3, sighting__place_name="Skjálfandi")
    for lat, lon in (EXACT, (64.06, -21.94), (64.13, -21.91)):
        PhotoFactory(status=Photo.Status.AWAITING_REVIEW, sighting__latitude=lat, sighting__longitude=lon)
    PhotoFactory(status=Photo.Status.REJECTED, sighting__latitude=10.0, sighting__longitude=10.0)
    return a, b


def test_many_sightings_come_as_cells_whose_counts_add_up(client, settings):
    settings.MAP_POINT_LIMIT = 10
    many_sightings()
    data = client.get(reverse("submissions:sightings_map")).json()
    assert data["cells"] is True and data["total"] == 11
    cells = {tuple(f["geometry"]["coordinates"]): f["properties"] for f in data["features"]}
    assert cells == {
        (-21.9, 64.1): {"n": 8, "nc": 6, "nw": 2},
        (-17.3, 66.0): {"n": 2, "nc": 2, "nw": 1},
        (-52.7, 47.1): {"n": 1, "nc": 0, "nw": 0},
    }
    assert sum(c["n"] for c in cells.values()) == 11  # every public sighting with a position, each once


def test_a_cell_holds_the_sightings_its_box_finds(client, settings):
    """The map's cells group by the filter box's own rounding: the box half a cell around a cell's centre (the
    popup's "Show these sightings" link) finds exactly its sightings, and few enough come back as points."""
    settings.MAP_POINT_LIMIT = 10
    many_sightings()
    box = {"lat_min": "64.05", "lat_max": "64.15", "lon_min": "-21.95", "lon_max": "-21.85"}
    data = client.get(reverse("submissions:sightings_map"), box).json()
    assert data["cells"] is False and data["total"] == 8 and len(data["features"]) == 8
    assert {tuple(f["geometry"]["coordinates"]) for f in data["features"]} == {(-21.9, 64.1)}
    assert sum(1 for f in data["features"] if f["properties"]["c"]) == 6


def test_few_sightings_stay_points_with_popups(client, settings):
    settings.MAP_POINT_LIMIT = 11  # as many as there are: still points
    a, _ = many_sightings()
    data = client.get(reverse("submissions:sightings_map")).json()
    assert data["cells"] is False and data["total"] == 11 and len(data["features"]) == 11
    assert {"d", "c", "w"} <= set(data["features"][0]["properties"])
    settings.MAP_POINT_LIMIT = 10  # narrowed to one whale, a larger set is points again
    data = client.get(reverse("submissions:sightings_map"), {"individual": a.catalogue_id}).json()
    assert data["cells"] is False and data["total"] == 3
    places = sorted(f["properties"].get("p", "") for f in data["features"])
    assert places == ["", "", "Faxaflói"] and all(a.catalogue_id in f["properties"]["w"] for f in data["features"])


def test_cells_carry_no_place_names_photos_or_exact_positions(client, settings):
    settings.MAP_POINT_LIMIT = 0
    many_sightings()
    body = client.get(reverse("submissions:sightings_map")).content.decode()
    assert '"cells":true' in body
    assert "Faxaflói" not in body and "Skjálfandi" not in body and "HW-01" not in body and ".jpg" not in body
    for exact in exact_forms(*EXACT):
        assert not re.search(rf"(?<![\d.]){re.escape(exact)}", body), exact


def test_track_is_in_time_order_with_a_line_and_popups(client):
    whale = IndividualFactory()
    late = gallery_photo(whale, sighting__latitude=20.0, sighting__longitude=-150.0, sighting__observed_at=days_ago(1))
    early = gallery_photo(
        whale, sighting__latitude=50.0, sighting__longitude=-130.0, sighting__observed_at=days_ago(300)
    )
    middle = gallery_photo(
        whale,
        sighting__latitude=30.04,
        sighting__longitude=-140.06,
        sighting__observed_at=days_ago(100),
        sighting__place_name="Open sea",
    )
    gallery_photo(whale, sighting__latitude=None, sighting__longitude=None)  # no position: not on the track
    PhotoFactory(status=Photo.Status.AWAITING_REVIEW, individual=whale, sighting__latitude=0.0, sighting__longitude=0)

    data = client.get(reverse("identification:individual_track", args=[whale.catalogue_id])).json()
    points = [f for f in data["features"] if f["geometry"]["type"] == "Point"]
    (line,) = [f for f in data["features"] if f["geometry"]["type"] == "LineString"]
    assert [p["properties"]["date"] for p in points] == [
        p.sighting.observed_at.date().isoformat() for p in (early, middle, late)
    ]
    assert line["geometry"]["coordinates"] == [[-130.0, 50.0], [-140.1, 30.0], [-150.0, 20.0]]
    assert points[1]["properties"]["place"] == "Open sea"
    assert points[1]["properties"]["photo"] == middle.crop.url


def test_track_of_an_unknown_whale_is_404(client):
    response = client.get(reverse("identification:individual_track", args=["HW-0000"]))
    assert response.status_code == 404


def test_public_rounding_follows_the_one_setting(settings):
    settings.PUBLIC_COORDINATE_DECIMALS = 2
    assert maps.public_coordinate(EXACT[0]) == 47.12
    settings.PUBLIC_COORDINATE_DECIMALS = 0
    assert maps.public_coordinate(EXACT[1]) == -53.0
    assert maps.public_coordinate(None) is None


def exact_forms(lat: float, lon: float) -> list[str]:
    """Every way the exact position (or a part finer than the public 0.1°) could be written."""
    forms = []
    for value in (lat, lon):
        for decimals in range(2, 7):
            forms.append(f"{value:.{decimals}f}")
        forms.append(repr(value))
    return forms


@pytest.mark.parametrize("limit", [2000, 0], ids=["points", "cells"])
@pytest.mark.parametrize("role", ["anonymous", "watcher", "moderator"])
def test_no_public_page_or_endpoint_reveals_an_unconfirmed_position(client, settings, role, limit):
    settings.MAP_POINT_LIMIT = limit  # the map as points, and as cells
    whale = IndividualFactory()
    gallery_photo(whale, sighting__latitude=47.2, sighting__longitude=-52.6)
    pending = PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        individual=None,
        sighting__latitude=EXACT[0],
        sighting__longitude=EXACT[1],
        sighting__species=whale.species,
    )
    if role != "anonymous":
        login(client, UserFactory(email=f"{role}@example.org", role=role))
    urls = [
        reverse("home"),
        reverse("submissions:sightings"),
        reverse("submissions:sightings_map"),
        reverse("submissions:sightings_map") + f"?species={whale.species.code}",
        reverse("identification:individuals"),
        reverse("identification:individual_detail", args=[whale.catalogue_id]),
        reverse("identification:individual_track", args=[whale.catalogue_id]),
    ]
    for url in urls:
        body = client.get(url).content.decode()
        for exact in exact_forms(*EXACT):
            assert not re.search(rf"(?<![\d.]){re.escape(exact)}", body), (url, exact)
    assert "47.1" in client.get(urls[2]).content.decode()  # it is on the map, blurred
    assert pending.pk


def test_upload_refuses_an_off_map_position_with_a_clear_message(client):
    login(client, UserFactory(email="w@example.org", role="watcher"))
    species = SpeciesFactory()
    response = client.post(
        reverse("submissions:submit"),
        {"species": species.pk, "observed_date": "2024-08-01", "latitude": "95", "longitude": "-200"},
    )
    page = response.content.decode()
    assert "This latitude is off the map: it must be between -90 and 90 (south is negative)." in page
    assert "This longitude is off the map: it must be between -180 and 180 (west is negative)." in page
    assert not Photo.objects.exists()


def test_upload_form_has_the_picker_map_and_the_offline_layer(client, settings):
    login(client, UserFactory(email="w@example.org", role="watcher"))
    settings.MAP_TILE_URL = ""
    page = client.get(reverse("submissions:submit")).content.decode()
    assert 'data-map="picker"' in page and 'data-tile-url=""' in page and "world-50m" in page
    settings.MAP_TILE_URL = "https://tiles.example.org/{z}/{x}/{y}.png"
    page = client.get(reverse("submissions:submit")).content.decode()
    assert 'data-tile-url="https://tiles.example.org/{z}/{x}/{y}.png"' in page
