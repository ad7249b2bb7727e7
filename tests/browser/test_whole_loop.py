"""The acceptance test: the whole loop in a real browser, with the real Celery worker.

A watcher signs up and drops a photo of a known whale on /submit/; the worker finds, crops and ranks;
a moderator confirms a candidate with a keyboard shortcut; the watcher's page names the whale; an admin
retrains (3 steps: the worker runs with ML_TRAIN_MAX_STEPS=3), watches the run, promotes the new version
and sees it active once the gallery is re-embedded.
"""

import base64
import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from identification.models import Decision, ModelVersion, TrainingRun
from submissions.models import Photo
from tests.browser.conftest import image_loaded, login, shortcuts_ready, upload_ready
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PIPELINE_TIMEOUT_MS = 180_000
TRAINING_TIMEOUT_MS = 300_000

DROP_FILES_JS = """([selector, files]) => {
  const dt = new DataTransfer();
  for (const [name, type, b64] of files) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    dt.items.add(new File([bytes], name, { type }));
  }
  const zone = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}"""


def drop_files(page, selector, paths):
    """Drag and drop files from the desktop onto ``selector`` (the DragEvents a real drop fires)."""
    files = [[p.name, "image/jpeg", base64.b64encode(p.read_bytes()).decode()] for p in paths]
    page.evaluate(DROP_FILES_JS, [selector, files])


def test_whole_loop_upload_review_notify_retrain_promote(new_page, shots, active_model, celery_worker):
    label = sorted(active_model.held_out)[0]
    photo_path = active_model.held_out[label]
    true_whale = active_model.individuals[label]

    # ---- a watcher signs up and submits a sighting by drag and drop
    watcher = new_page()
    watcher.goto("/")
    watcher.locator(".nav-user").get_by_role("link", name="Sign up").click()
    watcher.locator("[name=email]").fill("orca.fan@example.org")
    watcher.locator("[name=password1]").fill("Tail-flukes-2024")
    watcher.locator("[name=password2]").fill("Tail-flukes-2024")
    watcher.get_by_role("button", name="Sign up").click()
    expect(watcher.locator("h1")).to_have_text("Check your email")  # signed in once the address is confirmed
    confirm_mail = [m for m in mail.outbox if m.to == ["orca.fan@example.org"]][-1]
    watcher.goto(re.search(r"https?://\S+/accounts/confirm-email/\S+/", confirm_mail.body).group(0))
    watcher.get_by_role("button", name="Confirm").click()
    expect(watcher).to_have_url(re.compile(r"/submit/$"))
    expect(watcher.locator(".messages")).to_contain_text("Welcome aboard")

    upload_ready(watcher)
    drop_files(watcher, "#dropzone", [photo_path])
    expect(watcher.locator("#previews li")).to_have_count(1)
    expect(watcher.locator("#previews li .name")).to_have_text(photo_path.name)
    expect(watcher.locator("#file-count")).to_have_text("1 photo selected")
    watcher.locator("[name=species]").select_option(label=str(active_model.species))
    watcher.locator("[name=observed_date]").fill("2024-07-14")
    watcher.locator("[name=observed_time]").fill("09:30")
    watcher.locator("[name=latitude]").fill("66.0449")
    watcher.locator("[name=longitude]").fill("-17.3389")
    watcher.locator("[name=place_name]").fill("Skjálfandi Bay")
    watcher.locator("[name=notes]").fill("Breached twice, then fluked up.")
    shots(watcher, "watcher submit form")
    watcher.get_by_role("button", name="Submit sighting").click()

    expect(watcher).to_have_url(re.compile(r"/me/sightings/$"))
    expect(watcher.locator(".messages")).to_contain_text("1 photo received")
    sighting_card = watcher.locator("article.sighting", has_text="Skjálfandi Bay")
    tile = sighting_card.locator(".photo-tile")
    expect(tile).to_have_count(1)
    expect(tile).to_contain_text(photo_path.name)
    photo = Photo.objects.get(sighting__submitted_by__email="orca.fan@example.org")
    # the page polls and reloads by itself while the worker localizes, crops and ranks
    expect(tile.locator(".badge")).to_have_text("Awaiting review", timeout=PIPELINE_TIMEOUT_MS)
    photo.refresh_from_db()
    assert photo.crop and photo.suggestions.count() == 6
    assert image_loaded(watcher, f'[data-photo-id="{photo.pk}"] img')  # the crop, served from MEDIA_URL
    shots(watcher, "watcher awaiting review")

    # ---- a moderator reviews it and confirms a candidate with the keyboard
    moderator = new_page()
    login(moderator, active_model.users["moderator"].email)
    moderator.get_by_role("navigation", name="Main").get_by_role("link", name="Review", exact=True).click()
    expect(moderator.locator("#queue-count")).to_have_text("1")
    moderator.get_by_role("button", name="Start reviewing").click()
    expect(moderator.get_by_role("heading", name=f"Photo {photo.pk}")).to_be_visible()
    query_img = moderator.get_by_role("region", name="Query").get_by_role("img").first
    expect(query_img).to_be_visible()
    expect(query_img).to_have_attribute("src", photo.crop.url)  # the crop the worker made, not the upload
    assert query_img.evaluate("img => img.complete && img.naturalWidth > 0"), "the crop did not load"
    candidates = moderator.locator(".confirm-form[data-shortcut]")
    expect(candidates).to_have_count(5)
    rows = moderator.locator("li.cand[data-candidate]")
    keys = rows.evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == candidates.evaluate_all("forms => forms.map(f => f.dataset.shortcut)")  # key = printed rank
    assert keys == rows.evaluate_all("rows => rows.map(r => r.querySelector('.rank').textContent.trim().slice(1))")
    listed = [rows.nth(i).locator(".cand-info a").inner_text().strip() for i in range(5)]
    # the true whale when the tiny model ranks it in the top 5, else the first candidate
    chosen = true_whale.catalogue_id if true_whale.catalogue_id in listed else listed[0]
    key = keys[listed.index(chosen)]
    shots(moderator, "moderator review page")
    shortcuts_ready(moderator)
    moderator.locator("body").press(key)  # no click: the shortcut submits the confirm form
    expect(moderator.locator(".messages")).to_contain_text(f"Photo {photo.pk} confirmed as {chosen}")
    expect(moderator.locator(".messages")).to_contain_text("The review queue is empty")
    decision = Decision.objects.get(photo=photo)
    assert decision.action == Decision.Action.CONFIRM and decision.individual.catalogue_id == chosen
    assert decision.moderator.email == active_model.users["moderator"].email

    # ---- the watcher's page names the whale
    watcher.reload()
    expect(tile.locator(".badge")).to_have_text("Confirmed")
    expect(tile.locator("a.whale-link")).to_contain_text(chosen)
    shots(watcher, "watcher whale named")
    tile.locator("a.whale-link").click()
    expect(watcher.get_by_role("heading", level=1)).to_contain_text(chosen)

    # ---- an admin retrains, watches the run, compares metrics and promotes the new version
    old = active_model.version
    admin = new_page()
    login(admin, active_model.users["admin"].email)
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Models", exact=True).click()
    expect(admin.get_by_role("heading", name="Model dashboard")).to_be_visible()
    expect(admin.locator(".dash-top")).to_contain_text(old.name)
    admin.locator("[name=epochs]").fill("1")
    admin.locator("[name=arch]").select_option("resnet18")
    admin.locator("[name=image_size]").select_option("128")
    admin.get_by_role("button", name="Start training").click()
    expect(admin.locator(".messages")).to_contain_text("queued")
    run = TrainingRun.objects.get()
    progress = admin.locator("#run-progress")
    expect(progress).to_contain_text(f"Run {run.pk}")
    expect(progress.locator('[data-field="status_display"]')).to_have_text(re.compile("Queued|Running"))
    # live progress: dashboard.js polls progress.json; the worker writes steps and the log tail
    expect(progress.locator('[data-field="log_tail"]')).to_contain_text("Exported", timeout=TRAINING_TIMEOUT_MS)
    shots(admin, "admin training progress")
    # when the run finishes the page reloads itself: no run in progress, the run listed as succeeded
    expect(progress).to_contain_text("No training run in progress", timeout=TRAINING_TIMEOUT_MS)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    new = run.model_version
    runs_table = admin.locator("section", has=admin.get_by_role("heading", name="Training runs"))
    expect(runs_table.locator("tbody tr").first).to_contain_text("Succeeded")
    versions = admin.locator("section", has=admin.get_by_role("heading", name="Model versions"))
    new_row = versions.locator("tbody tr", has_text=new.name)
    old_row = versions.locator("tbody tr", has_text=old.name)
    expect(old_row.locator(".badge")).to_have_text("active")
    expect(new_row.locator(".badge")).to_have_count(0)
    # the new version's metrics beside the active one's: MAP@5, top-1, top-5, new precision/recall
    for row in (new_row, old_row):
        expect(row.locator("td.mono").nth(1)).to_have_text(re.compile(r"^(\d\.\d{3}|—)$"))
    assert re.fullmatch(r"\d\.\d{3}", new_row.locator("td.mono").nth(1).inner_text()), "no MAP@5 for the new run"
    shots(admin, "admin run finished")

    # the registry page shows the new version's plots beside the active one's
    new_row.get_by_role("link", name=new.label).click()  # the version number; the run stamp beside it
    for version in (new, old):
        img = f'#plots img[alt="loss plot of {version.name}"]'
        expect(admin.locator(img)).to_have_count(1)
        admin.locator(img).scroll_into_view_if_needed()  # lazy-loaded: bring it into view first
        wait_for(lambda: image_loaded(admin, img), timeout=30, message=f"the loss plot of {version.name}")
    shots(admin, "admin plots side by side")
    admin.go_back()

    new_row.get_by_role("button", name="Promote").click()
    expect(admin.locator(".messages")).to_contain_text(f"Promoting {new.name}")

    def new_version_active():
        admin.reload()
        return new_row.locator(".badge").count() == 1

    wait_for(new_version_active, timeout=180, interval=2, message="the promoted version to become active")
    expect(admin.locator(".dash-top")).to_contain_text(new.name)
    expect(old_row.locator(".badge")).to_have_count(0)
    expect(old_row.get_by_role("button", name="Promote")).to_be_visible()  # and could be promoted back
    assert ModelVersion.objects.get(is_active=True) == new
    assert new.embeddings.count() >= sum(len(v) for v in active_model.gallery.values()) + 1
    shots(admin, "admin new version active")

    # ... and rolls back, in the browser too: the previous version is active again once re-embedded
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("button", name="Roll back").click()  # the humpback group's (the only species with a model)
    expect(admin.locator(".messages")).to_contain_text("Rolling back")  # the POST has answered

    def old_version_active():
        admin.reload()
        return old_row.locator(".badge").count() == 1

    wait_for(old_version_active, timeout=180, interval=2, message="the rolled-back version to become active")
    expect(admin.locator(".dash-top")).to_contain_text(old.name)
    assert ModelVersion.objects.get(is_active=True) == old
    shots(admin, "admin rolled back")
