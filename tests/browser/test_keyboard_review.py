"""A moderator works through a queue with the keyboard only: no clicks from logging in to the last photo.

``QUEUE_SIZE`` photos (10 in CI; the acceptance target is 50: ``KEYBOARD_QUEUE_SIZE=50``) are made with
factories, each with five ranked candidates and a "new individual" row, as the worker writes them.
The elapsed time is printed (run with ``-s``), never asserted.
"""
import os
import re
import time

import pytest
from playwright.sync_api import expect

from identification.models import Decision
from submissions.models import Photo
from tests.browser.conftest import awaiting_review_queue, shortcuts_ready
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUEUE_SIZE = int(os.environ.get("KEYBOARD_QUEUE_SIZE", "10"))


def plan(i: int) -> tuple[list[str], str]:
    """The keys for the i-th photo and the status it should end in."""
    if i % 9 == 4:
        return ["s"], Photo.Status.AWAITING_REVIEW  # skipped: left for another moderator
    if i % 7 == 3:
        return ["n"], Photo.Status.NEW_INDIVIDUAL
    if i % 5 == 2:
        return ["r", "f"], Photo.Status.REJECTED  # reject, not a fluke
    if i % 6 == 5:
        return ["ArrowDown", "ArrowDown", "Enter"], Photo.Status.CONFIRMED  # second candidate via arrows
    return [str(i % 5 + 1)], Photo.Status.CONFIRMED


def focus_by_tab(page, accessible_text: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if accessible_text in page.evaluate("() => document.activeElement && document.activeElement.innerText || ''"):
            return
    raise AssertionError(f"could not reach {accessible_text!r} with Tab")


def test_moderator_clears_the_queue_with_the_keyboard_only(new_page, shots):
    photos, whales = awaiting_review_queue(QUEUE_SIZE)
    UserFactory(email="keys@example.org", role="moderator")
    page = new_page()

    started = time.monotonic()
    page.goto("/accounts/login/?next=/review/")  # a bookmark; from here on only keys
    expect(page.locator("input[autofocus]")).to_be_focused()  # autofocus lands before we type
    page.keyboard.type("keys@example.org")  # the email field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#queue-count")).to_have_text(str(QUEUE_SIZE))
    focus_by_tab(page, "Start reviewing")
    page.keyboard.press("Enter")

    expected = {}
    for i, photo in enumerate(photos):
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(rf"^Photo {photo.pk}\b"))
        expect(page.locator(".confirm-form[data-shortcut]")).to_have_count(5)
        shortcuts_ready(page)
        keys, status = plan(i)
        if i == 0:
            shots(page, "first photo")
        for key in keys:
            page.keyboard.press(key)
        expected[photo.pk] = status
    expect(page.locator(".messages")).to_contain_text("The review queue is empty")
    elapsed = time.monotonic() - started
    shots(page, "queue done")
    print(f"\nkeyboard-only review of {QUEUE_SIZE} photos: {elapsed:.1f} s ({elapsed / QUEUE_SIZE:.2f} s per photo)")

    statuses = dict(Photo.objects.filter(pk__in=expected).values_list("pk", "status"))
    assert statuses == expected
    assert Decision.objects.filter(moderator__email="keys@example.org").count() == QUEUE_SIZE
    # confirm keys picked the candidate at that rank
    for i, photo in enumerate(photos):
        keys, status = plan(i)
        if status == Photo.Status.CONFIRMED:
            rank = 2 if keys[0] == "ArrowDown" else int(keys[0])
            photo.refresh_from_db()
            assert photo.individual == photo.suggestions.get(rank=rank).individual
