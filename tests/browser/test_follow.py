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
def mail_dir(celery_worker):
    """Where the real worker writes the e-mail it sends (the file backend, set when it started): tests tell
    their messages apart by recipient."""
    return celery_worker.mail_dir


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


def test_a_watcher_uploads_from_the_map_follows_the_matched_whale_and_hears_it_seen_again(
    new_page, shots, mail_dir, active_model
):
    """Issue 14's journey in one piece: a watcher places a sighting by clicking the upload form's map and sends a
    photo; the real worker ranks it; a moderator confirms it as a whale, so the watcher follows that whale
    automatically (their /following/ page lists it); when another watcher's photo of the same whale is confirmed,
    the first watcher gets the "seen again" e-mail and the notification."""
    from django.core.files.base import ContentFile

    from identification.models import Suggestion
    from submissions.models import Photo
    from tests.browser.test_maps import open_upload_map
    from tests.factories import PhotoFactory, SightingFactory

    path = active_model.held_out[sorted(active_model.held_out)[0]]
    watcher_email, moderator_email = "map.watcher@example.org", active_model.users["moderator"].email
    UserFactory(email=watcher_email, role="watcher")  # not the gallery's photographer: follows nothing yet
    watcher = new_page()
    login(watcher, watcher_email)
    open_upload_map(watcher)(40, -30)  # north-east of the map's 20°N 0°E centre
    expect(watcher.locator("#picker-status")).to_contain_text("Position set to")
    lat, lon = (float(watcher.locator(f"[name={f}]").input_value()) for f in ("latitude", "longitude"))
    watcher.locator("input[type=file][name=photos]").set_input_files(path)
    watcher.locator("[name=species]").select_option(label=str(active_model.species))
    watcher.locator("[name=observed_date]").fill("2026-07-14")
    watcher.get_by_role("button", name="Submit sighting").click()
    expect(watcher.locator(".messages")).to_contain_text("1 photo received")
    photo = Photo.objects.get(sighting__submitted_by__email=watcher_email, original_filename=path.name)
    assert (photo.sighting.latitude, photo.sighting.longitude) == (pytest.approx(lat), pytest.approx(lon))
    assert lat > 20 and lon > 0  # where the click was, not a default
    wait_for(lambda: Photo.objects.get(pk=photo.pk).status == Photo.Status.AWAITING_REVIEW, timeout=180)

    moderator = new_page()
    login(moderator, moderator_email)
    moderator.goto(f"/review/{photo.pk}/")
    shortcuts_ready(moderator)
    first = moderator.locator("li.cand[data-candidate]").first
    whale_id = first.locator(".cand-info a").inner_text().strip()
    first.locator(".confirm-form button").click()
    expect(moderator.locator(".messages")).to_contain_text(f"Photo {photo.pk} confirmed as {whale_id}")
    # after the undo window the worker tells the watcher, and they follow the whale their photo was matched to
    matched = Follow.objects.filter(user__email=watcher_email, individual__catalogue_id=whale_id, automatic=True)
    wait_for(matched.exists, timeout=60, message="the automatic follow")
    watcher.goto("/following/")
    expect(watcher.locator(".follow-table")).to_contain_text(whale_id)

    whale = Photo.objects.get(pk=photo.pk).individual
    other = PhotoFactory(
        sighting=SightingFactory(species=active_model.species, place_name="Husavik"),
        status=Photo.Status.AWAITING_REVIEW,
        model_version=active_model.version,
    )
    other.crop.save("q.png", ContentFile(path.read_bytes()), save=True)
    Suggestion.objects.create(photo=other, model_version=active_model.version, rank=1, individual=whale, score=0.9)
    Suggestion.objects.create(photo=other, model_version=active_model.version, rank=2, individual=None, score=0.5)
    moderator.goto(f"/review/{other.pk}/")
    shortcuts_ready(moderator)
    moderator.locator(f"li.cand[data-candidate='{whale.pk}'] .confirm-form button").click()
    expect(moderator.locator(".messages")).to_contain_text(f"Photo {other.pk} confirmed as {whale_id}")

    def seen_again():
        return [m for m in mails_to(mail_dir, watcher_email) if m["Subject"].endswith("was seen again")]

    (mail,) = wait_for(seen_again, timeout=60, message="the seen-again e-mail")
    assert mail["Subject"].startswith(f"{whale_id} ")
    assert f"/individuals/{whale_id}/" in mail.get_content() and "Husavik" in mail.get_content()
    watcher.goto("/notifications/")
    unread = watcher.locator(".notice-item.is-unread")
    expect(unread).to_have_count(2)  # their photo identified, then the whale seen again by someone else
    expect(unread.filter(has_text="Your photo was identified")).to_have_count(1)
    expect(unread.filter(has_text="was seen again")).to_contain_text(whale_id)
    shots(watcher, "watcher hears their whale was seen again")
