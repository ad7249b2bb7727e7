"""One main path per role in a real browser: watcher upload with bad files among good ones, moderator
reject-with-reason and skip by keyboard, admin cancels a running training run (real worker)."""

import re
import time

import pytest
from playwright.sync_api import expect

from identification.models import Decision, TrainingRun
from submissions.models import Photo
from tests.browser.conftest import awaiting_review_queue, login, shortcuts_ready
from tests.factories import SpeciesFactory, UserFactory, jpeg_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _file(name, data, mime="image/jpeg"):
    return {"name": name, "mimeType": mime, "buffer": data}


def test_watcher_upload_reports_each_bad_file_and_keeps_the_good_ones(new_page, shots):
    SpeciesFactory()
    UserFactory(email="watcher@example.org", role="watcher")
    page = new_page()
    login(page, "watcher@example.org")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Submit photos").click()
    page.locator("input[type=file][name=photos]").set_input_files(
        [
            _file("left-fluke.jpg", jpeg_bytes((640, 400), seed=1)),
            _file("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"),
            _file("right-fluke.jpg", jpeg_bytes((640, 400), seed=2)),
            _file("notes.txt", b"saw three whales", "text/plain"),
        ]
    )
    previews = page.locator("#previews li")
    expect(previews).to_have_count(4)
    expect(page.locator("#file-count")).to_have_text("4 photos selected")
    # the page warns about what it can tell before uploading: notes.txt is not a photo
    expect(previews.filter(has_text="notes.txt")).to_have_class(re.compile("is-bad"))
    expect(previews.filter(has_text="notes.txt").locator(".hint")).to_have_text("This doesn't look like a photo.")
    page.locator("[name=observed_date]").fill("2024-08-02")
    page.locator("[name=place_name]").fill("Húsavík")
    shots(page, "four files chosen")
    page.get_by_role("button", name="Submit sighting").click()

    expect(page).to_have_url(re.compile(r"/me/sightings/$"))
    messages = page.locator(".messages")
    expect(messages).to_contain_text("2 photos received")
    expect(messages.locator(".message-error")).to_have_count(2)
    expect(messages.locator(".message-error", has_text="broken.jpg")).to_be_visible()
    expect(messages.locator(".message-error", has_text="notes.txt")).to_be_visible()
    card = page.locator("article.sighting", has_text="Húsavík")
    expect(card.locator(".photo-tile")).to_have_count(2)
    expect(card).to_contain_text("left-fluke.jpg")
    expect(card).to_contain_text("right-fluke.jpg")
    expect(card).not_to_contain_text("broken.jpg")
    shots(page, "good ones kept")
    assert sorted(Photo.objects.values_list("original_filename", flat=True)) == ["left-fluke.jpg", "right-fluke.jpg"]

    # only bad files: nothing is saved, the form comes back with the reason for each file
    page.goto("/submit/")
    page.locator("input[type=file][name=photos]").set_input_files([_file("broken.jpg", b"\xff\xd8 nope")])
    page.locator("[name=observed_date]").fill("2024-08-03")
    page.get_by_role("button", name="Submit sighting").click()
    expect(page).to_have_url(re.compile(r"/submit/$"))
    expect(page.locator(".file-results li.bad")).to_have_count(1)
    expect(page.locator(".file-results li.bad")).to_contain_text("broken.jpg")
    expect(page.locator(".error", has_text="None of the photos could be added")).to_be_visible()
    assert Photo.objects.count() == 2


def test_moderator_skips_and_rejects_with_a_reason_by_keyboard(new_page, shots):
    (first, second), _ = awaiting_review_queue(2)
    UserFactory(email="mod@example.org", role="moderator")
    page = new_page()
    login(page, "mod@example.org")
    page.goto("/review/")
    expect(page.locator("#queue-count")).to_have_text("2")
    page.get_by_role("button", name="Start reviewing").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Photo {first.pk}")
    shortcuts_ready(page)

    page.keyboard.press("s")  # skip
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Photo {second.pk}")
    expect(page.locator(".messages")).to_contain_text(f"Photo {first.pk} skipped")
    shortcuts_ready(page)

    page.keyboard.press("r")  # reject: arms the reason picker
    expect(page.locator("#reject-reason")).to_have_class(re.compile("is-armed"))
    shots(page, "reject armed")
    page.keyboard.press("q")  # ... poor quality
    expect(page.locator(".messages")).to_contain_text(f"Photo {second.pk} rejected (Poor quality)")
    expect(page.locator(".messages")).to_contain_text("The review queue is empty")

    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == Photo.Status.REJECTED and second.reject_reason == "poor_quality"
    assert first.status == Photo.Status.AWAITING_REVIEW  # skipped, still for someone else
    actions = dict(Decision.objects.values_list("photo_id", "action"))
    assert actions == {first.pk: Decision.Action.SKIP, second.pk: Decision.Action.REJECT}
    assert Decision.objects.get(photo=second).reject_reason == "poor_quality"


@pytest.mark.integration
def test_admin_cancels_a_running_training_run(new_page, shots, active_model, celery_worker):
    from identification.tasks import run_training

    # a long run (many steps), so it is still running when the admin cancels it
    run = TrainingRun.objects.create(
        options={"epochs": 200, "arch": "resnet18", "image_size": 64, "fine_tune": False, "max_steps": 100_000},
        started_by=active_model.users["admin"],
    )
    run_training.delay(run.pk)
    page = new_page()
    login(page, active_model.users["admin"].email)
    page.goto("/dashboard/")
    progress = page.locator("#run-progress")
    expect(progress).to_contain_text(f"Run {run.pk}")
    # live progress from the worker: running, with steps counting up
    expect(progress.locator('[data-field="status_display"]')).to_have_text("Running", timeout=120_000)
    expect(progress.locator('[data-field="step"]')).not_to_have_text("0", timeout=120_000)
    shots(page, "running")
    progress.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".messages")).to_contain_text(f"Cancelled training run {run.pk}")
    # cancelled at once (issue 12, item 6: it read "Cancelling…" for 34 s): the page drawn right after
    # the click has no run in progress, and the table says Cancelled
    runs = page.locator("section", has=page.get_by_role("heading", name="Training runs"))
    expect(page.locator("#run-progress")).to_contain_text("No training run in progress")
    expect(runs.locator("tbody tr").first).to_contain_text("Cancelled")
    shots(page, "cancelled")
    # the worker sees the request inside its current forward pass and logs that it stopped
    deadline = time.monotonic() + 120
    while "] Cancelled." not in (TrainingRun.objects.get(pk=run.pk).log or "") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "] Cancelled." in TrainingRun.objects.get(pk=run.pk).log
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and run.model_version is None
