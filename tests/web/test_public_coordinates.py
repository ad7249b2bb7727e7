"""Issue 13, item 8: a confirmed sighting's exact position is not public; the precision is a setting."""

import pytest
from django.urls import reverse

from tests.web.helpers import IndividualFactory, gallery_photo

pytestmark = pytest.mark.django_db


def test_public_individual_page_shows_coarse_coordinates_by_default(client, settings):
    whale = IndividualFactory()
    gallery_photo(whale, sighting__latitude=66.123456, sighting__longitude=-17.354321)
    page = client.get(reverse("identification:individual_detail", args=[whale.catalogue_id])).content.decode()
    assert "66.1<" in page and "-17.4<" in page
    assert "66.1235" not in page and "-17.3543" not in page

    settings.PUBLIC_COORDINATE_DECIMALS = 3
    page = client.get(reverse("identification:individual_detail", args=[whale.catalogue_id])).content.decode()
    assert "66.123<" in page and "-17.354<" in page
