"""The review page's species line in a real browser: the photo's species, the classifier's other guess with its
probability, and the "Wrong species?" correction that opens to a species form (1280 and 390 px)."""

import pytest

from tests.browser.conftest import login
from tests.factories import UserFactory, photo_the_classifier_disputes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_species_line_shows_the_classifier_and_opens_the_correction(new_page, shots):
    from playwright.sync_api import expect

    photo, humpback, _ = photo_the_classifier_disputes()
    UserFactory(email="moderator@example.org", role="moderator")
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
