"""Issue 14, items 5 and 6 in a real browser: password reset and account deletion end to end (the mails
read from Django's test outbox), the menu by keyboard at phone and desktop width, and the account and
upload pages at 390 px. ``ACCOUNTS_SCREENSHOTS=docs/screenshots`` saves the pages' screenshots there."""

import os
import re
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import expect

from submissions.models import Photo
from tests.browser.conftest import PASSWORD, login
from tests.factories import UserFactory
from tests.web.helpers import IndividualFactory, gallery_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "ana@example.org"


def keep(page, shots, name: str) -> None:
    """A full-page screenshot, also under $ACCOUNTS_SCREENSHOTS (docs/screenshots/) when that is set."""
    path = shots(page, name)
    if os.environ.get("ACCOUNTS_SCREENSHOTS"):
        (Path(os.environ["ACCOUNTS_SCREENSHOTS"]) / f"{name}.png").write_bytes(path.read_bytes())


def fits(page, width: int) -> None:
    wide = page.evaluate(
        """w => [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > w + 1 && el.getClientRects().length)
        .map(el => el.tagName + '.' + el.className).slice(0, 8)""",
        width,
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, wide


def link_in_last_mail(to: str) -> str:
    message = [m for m in mail.outbox if m.to == [to]][-1]
    return re.search(r"https?://\S+", message.body).group(0)


def test_password_reset_end_to_end(new_page, shots):
    UserFactory(email=EMAIL)
    page = new_page()
    page.goto("/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.locator("[name=email]").fill(EMAIL)
    page.get_by_role("button", name="Reset My Password").click()
    expect(page.locator("h1")).to_contain_text("Password Reset")
    link = link_in_last_mail(EMAIL)
    assert "/accounts/password/reset/key/" in link
    page.goto(link)
    page.locator("[name=password1]").fill("New-fluke-pass-77")
    page.locator("[name=password2]").fill("New-fluke-pass-77")
    page.get_by_role("button", name="Change Password").click()
    expect(page.locator("#main")).to_contain_text("Your password is now changed")

    page.goto("/accounts/login/")
    page.locator("[name=login]").fill(EMAIL)
    page.locator("[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".form-errors")).to_contain_text("don't match")  # the old password is gone
    page.locator("[name=password]").fill("New-fluke-pass-77")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".nav-user")).to_contain_text(EMAIL)
    page.goto(link)  # a used link is refused with a way forward
    expect(page.locator("#main")).to_contain_text("invalid")


def test_account_deletion_end_to_end_keeps_photos_as_former_contributor(new_page, shots):
    UserFactory(email=EMAIL)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(email=EMAIL)
    photo = gallery_photo(IndividualFactory(), sighting__submitted_by=user)
    page = new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, EMAIL)
    page.get_by_role("button", name="Menu").click()
    page.locator(".nav-user").get_by_role("link", name=EMAIL).click()
    page.locator("[name=display_name]").fill("Ana S.")
    page.locator("[name=credit_line]").fill("Ana Silva / Ocean Trips")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator(".messages")).to_contain_text("profile is saved")
    fits(page, 390)
    keep(page, shots, "accounts-profile-390")
    page.get_by_role("link", name="Delete my account…").click()
    fits(page, 390)
    keep(page, shots, "accounts-delete-390")
    page.get_by_label("Keep them in the catalogue").check()
    page.locator("[name=password]").fill("wrong")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator(".field .error")).to_contain_text("not your password")
    page.locator("[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator(".messages")).to_contain_text("Your account is deleted")
    expect(page.locator(".nav-user a[href='/accounts/login/']")).to_have_count(1)  # signed out

    page.goto(f"/individuals/{photo.individual.catalogue_id}/")
    expect(page.locator("#main")).to_contain_text("Photo: former contributor")
    assert Photo.objects.filter(pk=photo.pk, sighting__submitted_by=None).exists()
    page.goto("/accounts/login/")
    page.locator("[name=login]").fill(EMAIL)
    page.locator("[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".form-errors")).to_contain_text("don't match")


@pytest.mark.parametrize("width", [390, 1280])
def test_menu_is_reachable_by_keyboard_at_every_width(new_page, width):
    page = new_page()
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/")
    catalogue = page.get_by_role("navigation", name="Main").get_by_role("link", name="Catalogue")
    burger = page.get_by_role("button", name="Menu")
    if width > 820:
        expect(burger).to_be_hidden()
        expect(catalogue).to_be_visible()
        return
    expect(burger).to_have_attribute("aria-expanded", "false")
    expect(burger).to_have_attribute("aria-controls", "nav-links")
    expect(catalogue).to_be_hidden()
    for _ in range(4):  # skip link, brand, then the button
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('nav-burger')"):
            break
    expect(burger).to_be_focused()
    page.keyboard.press("Enter")
    expect(burger).to_have_attribute("aria-expanded", "true")
    expect(catalogue).to_be_visible()
    page.keyboard.press("Tab")  # the menu opens on the header's search box, then its links
    expect(page.locator("#site-search")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # past the search button
    expect(catalogue).to_be_focused()
    page.keyboard.press("Escape")
    expect(burger).to_have_attribute("aria-expanded", "false")
    expect(burger).to_be_focused()
    expect(catalogue).to_be_hidden()
    page.keyboard.press("Space")
    expect(catalogue).to_be_visible()


@pytest.mark.parametrize("width", [1280, 390])
def test_account_pages_and_upload_fit_the_screen(new_page, shots, width):
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/accounts/signup/")
    fits(page, width)
    keep(page, shots, f"accounts-signup-{width}")
    page.goto("/accounts/password/reset/")
    fits(page, width)
    UserFactory(email=EMAIL)
    login(page, EMAIL)
    for url, name in [("/accounts/profile/", "profile"), ("/accounts/profile/delete/", "delete"), ("/submit/", "")]:
        page.goto(url)
        fits(page, width)
        if name and width > 400:
            keep(page, shots, f"accounts-{name}-{width}")
    if width < 400:
        keep(page, shots, "upload-390")


def test_sign_in_with_the_keyboard_only(new_page):
    """The path test_keyboard_review takes (autofocus, Tab, Enter), without its worker and model."""
    UserFactory(email=EMAIL)
    page = new_page()
    page.goto("/accounts/login/?next=/accounts/profile/")
    expect(page.locator("input[autofocus]")).to_be_focused()
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/accounts/profile/$"))
