"""A moderator works through a queue with the keyboard alone: no clicks from logging in to the last photo.

The queue is ``QUEUE_SIZE`` demo photos (50, the acceptance target; ``KEYBOARD_QUEUE_SIZE`` changes it):
new synthetic photos of the catalogue's whales (``ml.synth``), uploaded in sightings of 20 and taken
through the pipeline by the real Celery worker, so every page shows what the worker wrote: crop,
five ranked candidates and "new individual". Decisions re-rank batch-mates on the worker meanwhile.
The elapsed time is printed (run with ``-s``), never asserted.
"""

import io
import os
import re
import time

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from identification.models import Decision
from ml.synth import render_photo
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.browser.conftest import shortcuts_ready
from tests.conftest import wait_for
from tests.factories import PASSWORD, upload

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE_SIZE = int(os.environ.get("KEYBOARD_QUEUE_SIZE", "50"))


def demo_queue(demo, n: int) -> list[Photo]:
    """``n`` new photos of the catalogue's whales through the pipeline; returns them awaiting review."""
    labels = sorted(demo.individuals)
    files = []
    for i in range(n):
        image, _box = render_photo(int(labels[i % len(labels)][2:], 16), photo_seed=7000 + i)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=92)
        files.append(upload(f"fluke-{i + 1:03d}.jpg", buf.getvalue()))
    photos = []
    for start in range(0, n, settings.MAX_PHOTOS_PER_SIGHTING):
        outcome = submit_sighting(
            user=demo.users["watcher"],
            species=demo.species,
            observed_at=timezone.now(),
            files=files[start : start + settings.MAX_PHOTOS_PER_SIGHTING],
        )
        assert not outcome.rejected, outcome.rejected
        photos += outcome.accepted
    ids = [p.pk for p in photos]

    def processed():
        return (
            not Photo.objects.filter(pk__in=ids)
            .exclude(status__in=(Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED))
            .exists()
        )

    wait_for(processed, timeout=300, message=f"the worker to process {n} photos")
    failed = dict(Photo.objects.filter(pk__in=ids, status=Photo.Status.FAILED).values_list("pk", "failure_reason"))
    assert not failed, failed
    return photos


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
    return [f"candidate:{i % 5}"], Photo.Status.CONFIRMED  # the (i % 5 + 1)-th whale, by its printed number


def focus_by_tab(page, accessible_text: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if accessible_text in page.evaluate("() => document.activeElement && document.activeElement.innerText || ''"):
            return
    raise AssertionError(f"could not reach {accessible_text!r} with Tab")


def test_moderator_clears_the_queue_with_the_keyboard_only(new_page, shots, active_model, celery_worker):
    photos = demo_queue(active_model, QUEUE_SIZE)
    page = new_page()

    started = time.monotonic()
    page.goto("/accounts/login/?next=/review/")  # a bookmark; from here on only keys
    expect(page.locator("input[autofocus]")).to_be_focused()  # autofocus lands before we type
    page.keyboard.type("moderator@example.org")  # the email field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#queue-count")).to_have_text(str(QUEUE_SIZE))
    focus_by_tab(page, "Start reviewing")
    page.keyboard.press("Enter")

    expected, chosen = {}, {}
    for i in range(QUEUE_SIZE):
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_have_text(re.compile(r"^Photo \d+\b"))
        pk = int(re.match(r"Photo (\d+)", heading.inner_text()).group(1))
        assert pk not in expected, f"photo {pk} shown twice"
        expect(page.locator(".confirm-form[data-shortcut]")).to_have_count(5)
        expect(page.locator("#query-viewer img")).to_have_attribute("src", re.compile(r"crop"))  # the worker's crop
        shortcuts_ready(page)
        keys, status = plan(i)
        if status == Photo.Status.CONFIRMED:  # the whale on screen at that key, as the moderator saw it
            nth = 1 if keys[0] == "ArrowDown" else int(keys[0].split(":")[1])
            form = page.locator(".confirm-form[data-shortcut]").nth(nth)
            if keys[0] != "ArrowDown":
                keys = [form.get_attribute("data-shortcut")]  # its printed rank is its key
            chosen[pk] = int(form.locator("[name=individual]").get_attribute("value"))
        if i == 0:
            shots(page, "first photo")
        for key in keys:
            page.keyboard.press(key)
        expected[pk] = status
    expect(page.locator(".messages")).to_contain_text("The review queue is empty")
    elapsed = time.monotonic() - started
    shots(page, "queue done")
    print(
        f"\nkeyboard-only review of {QUEUE_SIZE} pipeline-made photos: {elapsed:.1f} s "
        f"({elapsed / QUEUE_SIZE:.2f} s per photo)"
    )

    assert set(expected) == {p.pk for p in photos}
    statuses = dict(Photo.objects.filter(pk__in=expected).values_list("pk", "status"))
    assert statuses == expected
    assert Decision.objects.filter(moderator__email="moderator@example.org").count() == QUEUE_SIZE
    assert dict(Photo.objects.filter(pk__in=chosen).values_list("pk", "individual_id")) == chosen
