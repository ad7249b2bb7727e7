"""The moderator's comparison tools in a real browser, on a photo the real worker processed.

Zoom and pan keep the point under the cursor fixed; V switches the query between its crop and the
original (with the stored box drawn); B opens the crop-box editor, a drag lands in original pixels,
the box is saved as moderator training data and the worker matches the photo again with the new
crop; H loads ml's occlusion heat-map for the selected candidate.
"""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from identification.models import Decision, Embedding
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.browser.conftest import image_loaded, login, shortcuts_ready
from tests.conftest import wait_for
from tests.factories import upload

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUERY_IMG = "#query-viewer img"
HEATMAP_TIMEOUT_MS = 90_000


def processed_photo(demo) -> Photo:
    """A held-out photo of a known whale, uploaded and taken through the pipeline by the worker."""
    path = demo.held_out[sorted(demo.held_out)[1]]
    photo = submit_sighting(
        user=demo.users["watcher"],
        species=demo.species,
        observed_at=timezone.now(),
        files=[upload(path.name, path.read_bytes())],
    ).accepted[0]

    def settled():
        photo.refresh_from_db()
        return photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)

    wait_for(settled, timeout=180, message=f"photo {photo.pk} to be processed")
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    return photo


def review_page(new_page, photo):
    """The moderator's review page for ``photo``, keys bound."""
    page = new_page()
    login(page, "moderator@example.org")
    page.goto(f"/review/{photo.pk}/")
    shortcuts_ready(page)
    # the side-by-side card sits above the query tools: bring them on screen, as a person scrolls
    page.evaluate("() => document.getElementById('query-viewer').scrollIntoView({block: 'center'})")
    return page


def rect(page, selector: str) -> dict:
    return page.locator(selector).first.evaluate(
        "el => { const r = el.getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height}; }"
    )


def wait_loaded(page, selector: str, timeout: int = 20_000) -> None:
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth > 0; }",
        arg=selector,
        timeout=timeout,
    )


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def test_zoom_pan_and_crop_original_switch(new_page, shots, active_model, celery_worker):
    photo = processed_photo(active_model)
    page = review_page(new_page, photo)
    wait_loaded(page, QUERY_IMG)
    before = rect(page, QUERY_IMG)

    # wheel zoom about the cursor: the image point under it stays under it
    cursor = (before["x"] + 0.3 * before["w"], before["y"] + 0.6 * before["h"])
    page.mouse.move(*cursor)
    for _ in range(3):
        page.mouse.wheel(0, -120)
    page.wait_for_function(
        "([s, w]) => document.querySelector(s).getBoundingClientRect().width > 1.5 * w", arg=[QUERY_IMG, before["w"]]
    )
    zoomed = rect(page, QUERY_IMG)
    assert zoomed["w"] == pytest.approx(before["w"] * 1.2**3, rel=0.01)
    assert (cursor[0] - zoomed["x"]) / zoomed["w"] == pytest.approx(0.3, abs=0.01)
    assert (cursor[1] - zoomed["y"]) / zoomed["h"] == pytest.approx(0.6, abs=0.01)

    # drag pans by exactly the mouse's movement
    drag(page, cursor, (cursor[0] + 50, cursor[1] + 30))
    panned = rect(page, QUERY_IMG)
    assert (panned["x"] - zoomed["x"], panned["y"] - zoomed["y"]) == (
        pytest.approx(50, abs=1),
        pytest.approx(30, abs=1),
    )

    # candidate photos zoom too; 0 resets every viewer
    cand_img = ".cand .viewer img"
    cand_before = rect(page, cand_img)
    page.mouse.move(cand_before["x"] + cand_before["w"] / 2, cand_before["y"] + cand_before["h"] / 2)
    page.mouse.wheel(0, -120)
    page.wait_for_function("s => document.querySelector(s).style.transform.includes('scale(1.2')", arg=cand_img)
    shots(page, "zoomed")
    page.keyboard.press("0")
    assert rect(page, QUERY_IMG) == pytest.approx(before, abs=0.5)
    assert rect(page, cand_img) == pytest.approx(cand_before, abs=0.5)

    # V: the original, at its real size, with the stored box drawn where the box is
    crop_src = page.locator(QUERY_IMG).get_attribute("src")
    page.keyboard.press("v")
    expect(page.locator("#query-viewer")).to_have_attribute("data-mode", "original")
    expect(page.locator(QUERY_IMG)).to_have_attribute("src", photo.image.url)
    wait_loaded(page, QUERY_IMG)
    assert page.locator(QUERY_IMG).evaluate("i => [i.naturalWidth, i.naturalHeight]") == [photo.width, photo.height]
    expect(page.locator("[data-caption-original]")).to_be_visible()
    expect(page.locator(".box-rect")).to_be_visible()
    shown, box_el = rect(page, QUERY_IMG), rect(page, ".box-rect")
    scale = shown["w"] / photo.width
    assert box_el["x"] - shown["x"] == pytest.approx(photo.box_x0 * scale, abs=1.5)
    assert box_el["w"] == pytest.approx((photo.box_x1 - photo.box_x0) * scale, abs=1.5)
    assert box_el["h"] == pytest.approx((photo.box_y1 - photo.box_y0) * scale, abs=1.5)
    shots(page, "original with box")
    page.keyboard.press("v")
    expect(page.locator("#query-viewer")).to_have_attribute("data-mode", "crop")
    expect(page.locator(QUERY_IMG)).to_have_attribute("src", crop_src)
    expect(page.locator(".box-rect")).to_be_hidden()


def test_box_editor_saves_original_pixels_and_the_photo_is_matched_again(new_page, shots, active_model, celery_worker):
    photo = processed_photo(active_model)
    old_crop = photo.crop.name
    page = review_page(new_page, photo)
    missing = []  # a crop replaced under the page must never be requested (it would show broken)
    page.on("response", lambda r: r.status == 404 and "/media/" in r.url and missing.append(r.url))

    page.keyboard.press("b")
    expect(page.locator("#query-viewer.is-editing")).to_have_count(1)
    expect(page.locator("#box-form")).to_be_visible()
    expect(page.locator("#query-viewer")).to_have_attribute("data-mode", "original")
    wait_loaded(page, QUERY_IMG)
    save = page.locator("#box-form").get_by_role("button", name="Save box")
    r = rect(page, QUERY_IMG)

    # a click is not a box
    page.mouse.click(r["x"] + 0.5 * r["w"], r["y"] + 0.5 * r["h"])
    expect(save).to_be_disabled()

    # drag from the bottom-right to the top-left: the box is normalised, in original pixels
    drag(page, (r["x"] + 0.9 * r["w"], r["y"] + 0.8 * r["h"]), (r["x"] + 0.1 * r["w"], r["y"] + 0.15 * r["h"]))
    expected = [0.1 * photo.width, 0.15 * photo.height, 0.9 * photo.width, 0.8 * photo.height]
    expect(page.locator("[data-box-readout]")).to_contain_text("original pixels")
    expect(save).to_be_enabled()
    shots(page, "box drawn")
    save.click()
    expect(page.locator(".messages")).to_contain_text("crop box saved")

    photo.refresh_from_db()
    assert photo.box_source == Photo.BoxSource.MODERATOR and not photo.box_flagged
    assert [photo.box_x0, photo.box_y0, photo.box_x1, photo.box_y1] == pytest.approx(expected, abs=2)
    assert Photo.objects.with_corrected_boxes().filter(pk=photo.pk).exists()  # localizer training data
    decision = Decision.objects.get(photo=photo, action=Decision.Action.BOX)
    assert decision.moderator.email == "moderator@example.org"
    assert decision.details["new"] == pytest.approx(expected, abs=2)

    # the worker re-crops with the moderator's box and ranks the photo again
    def matched_again():
        photo.refresh_from_db()
        return photo.crop.name != old_crop and Embedding.objects.filter(photo=photo).exists()

    wait_for(matched_again, timeout=120, message="the photo to be re-cropped and re-embedded")
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.suggestions.count() == 6
    # meanwhile the page said so and showed the original; it refreshes itself onto the new crop
    expect(page.locator("#query-viewer")).to_have_attribute("data-crop-src", photo.crop.url, timeout=30_000)
    expect(page.locator("[data-rematching]")).to_have_count(0)
    wait_loaded(page, QUERY_IMG)
    assert image_loaded(page, QUERY_IMG)
    assert not missing, missing


def test_heat_map_loads_on_demand_for_the_selected_candidate(new_page, shots, active_model, celery_worker):
    photo = processed_photo(active_model)
    page = review_page(new_page, photo)
    cands = page.locator(".cand[data-candidate]")
    first, second = cands.nth(0), cands.nth(1)
    assert first.locator("[data-explain-img]").get_attribute("src") is None  # nothing computed up front

    page.keyboard.press("h")  # no candidate selected yet: the first
    expect(first.locator("figure.explain")).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('.cand[data-candidate] [data-explain-img]');"
        " return i.complete && i.naturalWidth > 0; }",
        timeout=HEATMAP_TIMEOUT_MS,
    )
    expect(first.locator(".explain-btn")).to_be_enabled()
    expect(first.locator("figure.explain figcaption")).not_to_contain_text("could not")
    size = first.locator("[data-explain-img]").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert min(size) >= 32

    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(second).to_have_class(re.compile(r"\bis-active\b"))
    page.keyboard.press("h")
    expect(second.locator("figure.explain")).to_be_visible()
    src = second.locator("[data-explain-img]").get_attribute("src")
    assert src and src.endswith(f"/explain/{second.get_attribute('data-candidate')}.png")
    second.locator("[data-explain-img]").evaluate(
        "i => new Promise((ok, bad) => i.complete && i.naturalWidth ? ok() : (i.onload = ok, i.onerror = bad))"
    )
    shots(page, "heat-maps")
    page.keyboard.press("h")  # toggles it away again
    expect(second.locator("figure.explain")).to_be_hidden()
    expect(first.locator("figure.explain")).to_be_visible()
