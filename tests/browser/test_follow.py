"""Following a whale in a real browser, with the real Celery worker (issue 14, item 3): a watcher
follows a whale; another watcher's photo of it is confirmed by a moderator on the review page; after
the undo window the worker's mail task sends the follower the "seen again" e-mail (the worker writes
its mail to files here), and the notification is on their page, counted in the menu. The e-mail's
one-click unsubscribe link works once and answers "already unsubscribed" after.

``DOCS_SCREENSHOTS=docs/screenshots`` also saves /following/, /notifications/, search results and a
whale page's follow button at 1280 and 390 px there."""

import email
import os
import re
from email import policy
from pathlib import Path

import pytest
from playwright.sync_api import expect

from follows.models import Follow
from tests.browser.conftest import login, shortcuts_ready
from tests.conftest import wait_for
from tests.factories import UserFactory
from tests.web.helpers import review_setup

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FAN, MODERATOR = "fan@example.org", "mod@example.org"


@pytest.fixture
def mail_dir(request, monkeypatch, tmp_path):
    """The real worker, started with the file e-mail backend so that this test can read what it sends."""
    folder = tmp_path / "mail"
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
    monkeypatch.setenv("EMAIL_FILE_PATH", str(folder))
    request.getfixturevalue("celery_worker")  # after the environment above: the worker inherits it
    return folder


def mails_to(folder: Path, address: str) -> list:
    found = []
    for path in sorted(folder.glob("*.log")) if folder.exists() else []:
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                message = email.message_from_string(chunk.strip() + "\n", policy=policy.default)
                if message["To"] == address:
                    found.append(message)
    return found


def docs_shots(page, name: str) -> None:
    """Screenshots for docs/screenshots at desktop and phone widths, when DOCS_SCREENSHOTS names the folder."""
    folder = os.environ.get("DOCS_SCREENSHOTS")
    if not folder:
        return
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_follower_hears_their_whale_was_seen_again(new_page, shots, mail_dir):
    UserFactory(email=FAN)
    UserFactory(email=MODERATOR, role="moderator")
    photo, individuals, _ = review_setup()  # another watcher's photo of the whale, awaiting review
    whale = individuals[0]

    fan = new_page()
    login(fan, FAN)
    fan.goto(f"/individuals/{whale.catalogue_id}/")
    fan.get_by_role("button", name=f"Follow {whale.catalogue_id}").click()
    expect(fan.locator(".messages")).to_contain_text(f"You follow {whale.catalogue_id}")
    expect(fan.get_by_role("button", name=re.compile("Unfollow"))).to_be_visible()
    docs_shots(fan, "individual-follow")
    fan.get_by_role("link", name="Following").click()
    expect(fan.locator(".follow-table")).to_contain_text(whale.catalogue_id)
    expect(fan.locator(".follow-table")).to_contain_text("Nick 0")
    shots(fan, "following")
    docs_shots(fan, "following")

    moderator = new_page()
    login(moderator, MODERATOR)
    moderator.goto(f"/review/{photo.pk}/")
    shortcuts_ready(moderator)
    moderator.locator(f"li.cand[data-candidate='{whale.pk}'] .confirm-form button").click()
    expect(moderator.locator(".messages")).to_contain_text(f"Photo {photo.pk} confirmed")

    (mail,) = wait_for(lambda: mails_to(mail_dir, FAN), timeout=60, message="the seen-again e-mail")
    assert mail["Subject"] == f"{whale.catalogue_id} \u201cNick 0\u201d was seen again"
    body = mail.get_content()
    assert f"/individuals/{whale.catalogue_id}/" in body and "Husavik" in body
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # a long header may be folded; RFC 2369 clients ignore whitespace inside the angle brackets
    unsubscribe = re.fullmatch(r"<(.+)>", re.sub(r"\s+", "", str(mail["List-Unsubscribe"]))).group(1)
    assert unsubscribe in body

    fan.goto("/")
    expect(fan.locator("#unread-count")).to_contain_text("1")
    fan.get_by_role("link", name=re.compile("Notifications")).click()
    item = fan.locator(".notice-item.is-unread")
    expect(item).to_contain_text("was seen again")
    expect(item).to_contain_text(whale.catalogue_id)
    shots(fan, "notifications")
    docs_shots(fan, "notifications")
    fan.reload()
    expect(fan.locator(".notice-item.is-unread")).to_have_count(0)  # read now
    expect(fan.locator("#unread-count")).to_have_count(0)

    path = re.sub(r"^https?://[^/]+", "", unsubscribe)  # SITE_URL is not the live server's address
    fan.goto(path)
    fan.get_by_role("button", name="Unsubscribe").click()
    expect(fan.locator("h1")).to_have_text("Unsubscribed")
    assert not Follow.objects.filter(user__email=FAN, individual=whale).exists()
    fan.goto(path)
    expect(fan.locator("h1")).to_have_text("Already unsubscribed")


def test_the_header_search_finds_whales_by_place(new_page, shots):
    photo, individuals, _ = review_setup()
    page = new_page()
    page.goto("/")
    page.locator("#site-search").fill("Nick")
    page.locator("#site-search").press("Enter")
    expect(page).to_have_url(re.compile(r"/search/\?q=Nick"))
    expect(page.locator(".search-result")).to_have_count(len(individuals))
    expect(page.locator(".search-result").first).to_contain_text("Matched: nickname")
    shots(page, "search")
    docs_shots(page, "search")
