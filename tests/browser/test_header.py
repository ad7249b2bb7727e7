"""The site header in a real browser: one row at 1280 px and wider (brand, links, search and account side by
side) for every role, the longest being an admin's dozen links with a notification badge; below 820 px the menu
button.
Screenshots of the home, sightings and whale pages at 1280 and 390 px (``BROWSER_SHOTS`` keeps them)."""

import pytest
from playwright.sync_api import expect

from follows.models import Notification
from tests.browser.conftest import login
from tests.factories import UserFactory
from tests.web.helpers import IndividualFactory, gallery_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [("/", "home"), ("/sightings/", "sightings"), ("/individuals/HW-0031/", "whale")]


def header_rows(page) -> list[float]:
    """The distinct vertical centres of the header's parts: brand, each link, the search box, the account."""
    return page.evaluate(
        """() => {
          const parts = [...document.querySelectorAll('.nav > .brand, .nav-links > li')];
          const centres = parts.filter(el => el.getClientRects().length).map(el => {
            const r = el.getBoundingClientRect(); return Math.round((r.top + r.bottom) / 2);
          });
          return [...new Set(centres)].sort((a, b) => a - b);
        }"""
    )


@pytest.mark.parametrize(
    "role, width",
    [("anonymous", 1280), ("watcher", 1280), ("moderator", 1280), ("admin", 1280), ("admin", 1536), ("admin", 1920)],
)
def test_header_is_one_row_from_1280(new_page, shots, role, width):
    """The content is at most 1200 px wide at any width from 1280 up: the header fits in it on one row."""
    whale = IndividualFactory(catalogue_id="HW-0031")
    gallery_photo(whale, sighting__latitude=64.1, sighting__longitude=-21.9, sighting__place_name="Faxaflói")
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    if role != "anonymous":
        user = UserFactory(email=f"a.rather.long.address.{role}@example.org", role=role)
        Notification.objects.create(user=user, kind="seen_again", key=f"t{user.pk}", subject="Seen again", body="-")
        login(page, user.email)
    for url, name in PAGES if width == 1280 else PAGES[:1]:
        page.goto(url)
        shots(page, f"{name}-{role}-{width}")
        rows = header_rows(page)
        assert max(rows) - min(rows) <= 4, (url, rows)  # one row: every part centred on the same line
        assert page.locator(".topbar").bounding_box()["height"] <= 72
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("role", ["anonymous", "admin"])
def test_below_820_the_links_are_behind_the_menu_button(new_page, shots, role):
    whale = IndividualFactory(catalogue_id="HW-0031")
    gallery_photo(whale, sighting__latitude=64.1, sighting__longitude=-21.9)
    page = new_page()
    if role != "anonymous":
        login(page, UserFactory(email=f"{role}@example.org", role=role).email)
    page.set_viewport_size({"width": 390, "height": 844})
    for url, name in PAGES:
        page.goto(url)
        burger = page.get_by_role("button", name="Menu")
        expect(burger).to_be_visible()
        expect(page.locator("#nav-links")).to_be_hidden()
        assert len(header_rows(page)) == 1  # the brand and the button
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shots(page, f"{name}-{role}-390")
    burger.click()
    expect(page.locator("#nav-links")).to_be_visible()
    shots(page, f"menu-open-{role}-390")
