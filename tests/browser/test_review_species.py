"""The review page's species line in a real browser: the photo's species, the classifier's other guess with its
probability, and the "Wrong species?" correction that opens to a species form (1280 and 390 px)."""

import pytest

from submissions.models import Photo
from tests.browser.conftest import login
from tests.factories import ModelVersionFactory, PhotoFactory, SightingFactory, SpeciesFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_species_line_shows_the_classifier_and_opens_the_correction(new_page, shots):
    from playwright.sync_api import expect

    humpback = SpeciesFactory()
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    version = ModelVersionFactory(is_active=True, species=humpback)
    UserFactory(email="moderator@example.org", role="moderator")
    photo = PhotoFactory(
        sighting=SightingFactory(species=humpback),
        status=Photo.Status.AWAITING_REVIEW,
        model_version=version,
        suggested_species=dolphin,
        species_confidence=0.91,
    )
    page = new_page()
    login(page, "moderator@example.org")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/review/{photo.pk}/")
        species = page.locator(".facts dd").first
        expect(species).to_contain_text("Humpback whale")
        expect(species).to_contain_text("(classifier: Bottlenose dolphin, 91%)")
        form = page.locator("#species-fix form")
        expect(form).to_be_hidden()
        page.locator("#species-fix summary").click()
        expect(form).to_be_visible()
        expect(form.locator("select")).to_have_value(str(humpback.pk))
        shots(page, f"review-species-{width}")
