"""The upload form after a validation error, in a real browser (issue 12, item 5): a missing species
or date never costs the chosen photos (checked before they leave the page); an error only the server
finds keeps every typed field and says plainly that the photos must be chosen again; the species is
preselected (humpback, or the watcher's last one)."""

import re

import pytest
from playwright.sync_api import expect

from submissions.models import Photo
from tests.browser.conftest import login, upload_ready
from tests.factories import SpeciesFactory, UserFactory, jpeg_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCHER = "watcher@example.org"


def two_photos():
    return [
        {"name": f"fluke-{i}.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes((640, 400), seed=i)} for i in (1, 2)
    ]


def open_form(new_page):
    humpback = SpeciesFactory()
    sperm = SpeciesFactory(code="SW", common_name="Sperm whale", scientific_name="Physeter macrocephalus")
    UserFactory(email=WATCHER, role="watcher")
    page = new_page()
    login(page, WATCHER)
    page.goto("/submit/")
    upload_ready(page)
    return page, humpback, sperm


def test_a_missing_species_keeps_the_photos_and_every_field(new_page):
    page, humpback, sperm = open_form(new_page)
    species = page.locator("[name=species]")
    expect(species).to_have_value(str(humpback.pk))  # preselected: the species the catalogue identifies
    species.select_option("")
    page.locator("input[type=file][name=photos]").set_input_files(two_photos())
    page.locator("[name=observed_date]").fill("2024-08-02")
    page.locator("[name=place_name]").fill("Húsavík")
    page.get_by_role("button", name="Submit sighting").click()

    expect(page.locator(".field.has-error", has=species)).to_contain_text("Choose a species.")
    expect(species).to_be_focused()
    expect(page.locator("#previews li")).to_have_count(2)
    assert page.locator("input[type=file][name=photos]").evaluate("i => i.files.length") == 2
    expect(page.locator("[name=place_name]")).to_have_value("Húsavík")
    assert not Photo.objects.exists()

    species.select_option(str(sperm.pk))
    page.get_by_role("button", name="Submit sighting").click()
    expect(page).to_have_url(re.compile(r"/me/sightings/$"))
    expect(page.locator(".messages")).to_contain_text("2 photos received")
    assert sorted(Photo.objects.values_list("original_filename", flat=True)) == ["fluke-1.jpg", "fluke-2.jpg"]

    page.goto("/submit/")  # the watcher's last species comes first next time
    expect(page.locator("[name=species]")).to_have_value(str(sperm.pk))


def test_a_server_side_error_keeps_the_fields_and_says_to_choose_the_photos_again(new_page):
    page, _, sperm = open_form(new_page)
    page.locator("[name=species]").select_option(str(sperm.pk))
    page.locator("input[type=file][name=photos]").set_input_files(two_photos())
    page.locator("[name=observed_date]").fill("2999-01-01")  # only the server knows "in the future"
    page.locator("[name=place_name]").fill("Skjálfandi Bay")
    page.locator("[name=notes]").fill("two adults, one calf")
    page.get_by_role("button", name="Submit sighting").click()

    expect(page).to_have_url(re.compile(r"/submit/$"))
    expect(page.locator(".error", has_text="can't be in the future")).to_be_visible()
    lost = page.locator("#photos-lost")
    expect(lost).to_contain_text("Your 2 photos were not uploaded")
    expect(lost).to_contain_text("choose the photos again")
    expect(page.locator("[name=place_name]")).to_have_value("Skjálfandi Bay")
    expect(page.locator("[name=notes]")).to_have_value("two adults, one calf")
    expect(page.locator("[name=species]")).to_have_value(str(sperm.pk))
    assert not Photo.objects.exists()
