"""The API's pages and the filters it shares with the HTML pages: one ``SightingFilter`` and one
``IndividualFilter`` answer the same query the same way on /sightings/, /individuals/ and the API."""

import ast
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import IndividualFactory, SpeciesFactory
from tests.web.helpers import gallery_photo

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parent.parent.parent


def _catalogue():
    humpback = SpeciesFactory()
    blue = SpeciesFactory(code="BW", common_name="Blue whale")
    north = gallery_photo(IndividualFactory(species=humpback), sighting__place_name="Húsavík", sighting__latitude=66.04)
    south = gallery_photo(IndividualFactory(species=blue), sighting__place_name="Azores", sighting__latitude=38.5)
    return north.sighting, south.sighting


@pytest.mark.parametrize(
    "query,expected",
    [
        ({}, {"north", "south"}),
        ({"place": "húsa"}, {"north"}),
        ({"species": "BW"}, {"south"}),
        ({"lat_min": 50}, {"north"}),
    ],
)
def test_sightings_page_and_api_share_one_filter(client, query, expected):
    north, south = _catalogue()
    names = {north.pk: "north", south.pk: "south"}
    page = client.get(reverse("submissions:sightings"), query)
    assert {names[s.pk] for s in page.context["page"]} == expected
    api = client.get(reverse("api:sighting-list"), query).json()
    assert {names[s["id"]] for s in api["results"]} == expected


def test_sightings_page_shows_the_form_and_public_precision(client):
    _catalogue()
    html = client.get(reverse("submissions:sightings"), {"lat_min": 60}).content.decode()
    assert 'name="lat_min"' in html and 'name="place"' in html
    assert "66.0, " in html and "66.040" not in html  # PUBLIC_COORDINATE_DECIMALS (1), as the individual page
    bad = client.get(reverse("submissions:sightings"), {"lat_min": "north"})
    assert bad.status_code == 200 and "Enter a number." in bad.content.decode()


def test_page_map_and_api_name_an_unknown_whale_the_same_way(client):
    """One definition, one message: the page shows it on the field (and still lists every sighting), the
    map's GeoJSON and the API answer 400 with it."""
    _catalogue()
    message = "No whale in the catalogue has the id “HW-9999”."
    page = client.get(reverse("submissions:sightings"), {"individual": "HW-9999"})
    assert message in page.content.decode() and len(page.context["page"]) == 2
    geojson = client.get(reverse("submissions:sightings_map"), {"individual": "HW-9999"})
    assert geojson.status_code == 400 and geojson.json()["errors"]["individual"] == [message]
    api = client.get(reverse("api:sighting-list"), {"individual": "HW-9999"})
    assert api.status_code == 400 and api.json()["errors"]["individual"] == [message], api.json()


def test_individuals_page_and_api_share_one_filter(client):
    lumpy = IndividualFactory(nickname="Lumpy")
    IndividualFactory(nickname="Other")
    page = client.get(reverse("identification:individuals"), {"q": "lump"})
    assert [i.pk for i in page.context["page"]] == [lumpy.pk]
    api = client.get(reverse("api:individual-list"), {"q": "lump"}).json()
    assert [i["catalogue_id"] for i in api["results"]] == [lumpy.catalogue_id]


def test_swagger_page_uses_local_assets_and_the_schema_loads(client):
    html = client.get(reverse("api:docs")).content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "<script>" not in html  # the page's own script is a separate file
    schema = client.get(reverse("api:schema"), {"format": "json"}).json()
    assert schema["openapi"].startswith("3.") and "/api/v1/sightings/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"


def test_browsable_api_renders_html_for_a_browser(client):
    response = client.get(reverse("api:species-list"), HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "Species List" in response.content.decode()


def test_nothing_imports_the_api_app():
    """api/ sits on top: identification, submissions, accounts and whalesite never import it (the URLconf
    and settings name it as strings)."""
    offenders = []
    for package in ("identification", "submissions", "accounts", "whalesite", "ml"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n == "api" or n.startswith("api.")]
    assert offenders == []
