"""Issue 16 item 2 in a real browser: each chosen photo gets its own species select ("Unknown species"
among the choices), and a sighting of a fluke and a fin saves each photo with its own species. Without a
species classifier folder the selects start on "Same as the sighting" and the page says nothing about a
suggestion. (The suggestions from each species' own catalogue need the per-species pipeline: see
``test_fluke_and_fin_get_suggestions_from_their_own_catalogues``.)"""

import re

import pytest
from playwright.sync_api import expect

from submissions.models import Photo
from tests.browser.conftest import login, upload_ready
from tests.factories import SpeciesFactory, UserFactory, jpeg_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCHER = "watcher@example.org"


def photo(name: str, seed: int) -> dict:
    return {"name": name, "mimeType": "image/jpeg", "buffer": jpeg_bytes((640, 400), seed=seed)}


def test_each_photo_gets_its_own_species(new_page, shots):
    humpback = SpeciesFactory(profile="humpback_fluke")
    dolphin = SpeciesFactory(
        code="TT", common_name="Common bottlenose dolphin", scientific_name="Tursiops truncatus", profile="dolphin_fin"
    )
    UserFactory(email=WATCHER, role="watcher")
    page = new_page()
    login(page, WATCHER)
    page.goto("/submit/")
    upload_ready(page)
    page.locator("input[type=file][name=photos]").set_input_files(
        [photo("fluke.jpg", 1), photo("fin.jpg", 2), photo("blurry.jpg", 3)]
    )
    selects = page.locator("#previews select[name=photo_species]")
    expect(selects).to_have_count(3)
    expect(selects.nth(0)).to_have_value("")  # no classifier here: the sighting's species
    expect(page.locator("#previews")).not_to_contain_text("Suggested")
    page.get_by_label("Species of fin.jpg").select_option(label="Common bottlenose dolphin")
    page.get_by_label("Species of blurry.jpg").select_option(label="Unknown species")
    page.get_by_role("button", name="Remove fluke.jpg").click()  # the choices stay with their photos
    expect(page.get_by_label("Species of fin.jpg")).to_have_value(str(dolphin.pk))
    page.locator("input[type=file][name=photos]").set_input_files([photo("fluke.jpg", 1)])
    page.locator("[name=observed_date]").fill("2024-08-02")
    page.set_viewport_size({"width": 1280, "height": 900})
    shots(page, "upload per-photo species 1280")
    page.set_viewport_size({"width": 390, "height": 844})
    shots(page, "upload per-photo species 390")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Submit sighting").click()
    expect(page).to_have_url(re.compile(r"/me/sightings/$"))
    species = dict(Photo.objects.values_list("original_filename", "species"))
    assert species == {"fin.jpg": dolphin.pk, "blurry.jpg": None, "fluke.jpg": humpback.pk}
