"""The review page's layout and keys in a real browser, on factory-made photos (no worker needed).

* Keys and ranks agree: with the "new individual" row at every rank 1..6, each row's printed number
  is the key that acts on it (issue 12, item 1).
* Hidden controls stay hidden: the crop-box form until B, the help panel until ?, whose lines never
  overlap (item 3).
* Side by side: the query and the selected candidate at a useful size and the fluke's 2.09 aspect,
  flipping through the candidate's photos, the heat-map laid over the query (item 2).
"""

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from identification.models import Decision, Embedding, Suggestion
from submissions.models import Photo
from tests.browser.conftest import login, shortcuts_ready
from tests.factories import PhotoFactory, UserFactory, jpeg_bytes
from tests.web.helpers import gallery_photo, review_setup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MODERATOR = "mod@example.org"


def open_review(page, photo):
    page.goto(f"/review/{photo.pk}/")
    shortcuts_ready(page)


def printed_rows(page) -> list[dict]:
    """Each candidate row as the moderator sees it: the printed number, the key on its button, the
    form's shortcut and the whale it confirms (None for the new-individual row)."""
    return page.locator("li.cand[data-key]").evaluate_all("""rows => rows.map(li => {
        const form = li.querySelector('form[data-shortcut]');
        const who = li.querySelector('[name=individual]');
        return {number: li.querySelector('.rank').textContent.trim(),
                kbd: form ? form.querySelector('button kbd').textContent.trim() : null,
                shortcut: form ? form.dataset.shortcut : null,
                individual: who ? Number(who.value) : null};
    })""")


@pytest.mark.parametrize("new_rank", [1, 2, 3, 4, 5, 6])
def test_each_key_acts_on_the_row_printed_with_its_number(new_page, new_rank):
    UserFactory(email=MODERATOR, role="moderator")
    page = new_page()
    login(page, MODERATOR)

    photo, _, _ = review_setup(n_candidates=5, new_rank=new_rank)
    open_review(page, photo)
    rows = printed_rows(page)
    assert [r["number"] for r in rows] == [f"#{n}" for n in range(1, 7)]
    assert all(r["kbd"] == r["shortcut"] == r["number"][1:] for r in rows), rows
    assert rows[new_rank - 1]["individual"] is None
    # the row just after "new individual" (or just before it when it is last): where the keys slipped
    target = new_rank + 1 if new_rank < 6 else new_rank - 1
    expected = rows[target - 1]["individual"]
    page.keyboard.press(str(target))
    expect(page.locator(".messages")).to_contain_text(f"Photo {photo.pk} confirmed")
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CONFIRMED and photo.individual_id == expected

    second, _, _ = review_setup(n_candidates=5, new_rank=new_rank)
    open_review(page, second)
    page.keyboard.press(str(new_rank))  # the new-individual row's own number
    expect(page.locator(".messages")).to_contain_text("New individual")
    second.refresh_from_db()
    assert second.status == Photo.Status.NEW_INDIVIDUAL
    assert Decision.objects.filter(photo=second, action=Decision.Action.NEW_INDIVIDUAL).count() == 1


OVERLAPS_JS = """panel => {
    const boxes = [...panel.querySelectorAll('dt, dd')].map(el => ({el, r: el.getBoundingClientRect()}));
    const hits = [];
    boxes.forEach((a, i) => {
        if (a.el.scrollWidth > a.el.clientWidth + 1) hits.push('overflows: ' + a.el.textContent.trim());
        boxes.slice(i + 1).forEach(b => {
            const x = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
            const y = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
            if (x > 1 && y > 1) hits.push(a.el.textContent.trim() + ' / ' + b.el.textContent.trim());
        });
    });
    return hits;
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_crop_box_controls_and_help_show_only_when_asked(new_page, width):
    """The crop-box form stays hidden until B (a CSS display rule used to override ``hidden``), and
    the ? help panel's lines never overlap one another (issue 12, item 3)."""
    UserFactory(email=MODERATOR, role="moderator")
    photo, _, _ = review_setup()
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, MODERATOR)
    open_review(page, photo)

    box_form = page.locator("#box-form")
    expect(box_form).to_be_hidden()
    expect(page.locator("#box-form button", has_text="Save box")).to_be_hidden()
    page.keyboard.press("b")
    expect(box_form).to_be_visible()
    page.keyboard.press("Escape")
    expect(box_form).to_be_hidden()

    help_panel = page.locator("#shortcut-help")
    expect(help_panel).to_be_hidden()
    page.keyboard.press("?")
    expect(help_panel).to_be_visible()
    assert help_panel.evaluate(OVERLAPS_JS) == []
    page.keyboard.press("?")
    expect(help_panel).to_be_hidden()


def box(page, selector: str) -> dict:
    return page.locator(selector).first.evaluate(
        "el => { const r = el.getBoundingClientRect(); return {w: r.width, h: r.height}; }"
    )


def square_crops(photo, individuals, extra: int = 2):
    """Square crops, as the pipeline stores them (NxN for a 2.09-wide region), and ``extra`` more
    gallery photos of the first candidate to flip through."""
    Embedding.objects.create(photo=photo, model_version=photo.model_version, vector=bytes(8))  # ranked: its crop shows
    for p in [photo, *[Photo.objects.filter(individual=ind).first() for ind in individuals]]:
        p.crop.save("sq.jpg", ContentFile(jpeg_bytes(size=(64, 64), seed=p.pk)), save=True)
    for i in range(extra):
        gallery_photo(individuals[0]).crop.save(
            "sq.jpg", ContentFile(jpeg_bytes(size=(64, 64), seed=90 + i)), save=True
        )


def assert_fluke_aspect(size: dict, min_width: float) -> None:
    assert size["w"] >= min_width, size
    assert abs(size["w"] / size["h"] - 2.09) < 0.03, size  # the fluke's aspect, not the stored square


@pytest.mark.parametrize("width, min_width", [(1280, 450), (390, 300)])
def test_query_and_candidate_side_by_side_at_true_aspect(new_page, width, min_width):
    """Query and the selected candidate at a useful size and the fluke's 2.09 aspect; [ ] flip through
    the candidate's photos; arrows bring another candidate; each candidate has named containers for
    keypoint lines and a match probability (issue 12, item 2)."""
    UserFactory(email=MODERATOR, role="moderator")
    photo, individuals, _ = review_setup(n_candidates=5, new_rank=3)
    square_crops(photo, individuals)
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, MODERATOR)
    open_review(page, photo)

    query = "#compare .compare-query img.is-crop"
    shown = "#compare [data-compare-for]:not([hidden])"
    assert_fluke_aspect(box(page, query), min_width)
    assert_fluke_aspect(box(page, f"{shown} [data-compare-img]"), min_width)
    assert box(page, query) == box(page, f"{shown} [data-compare-img]")
    expect(page.locator(shown)).to_have_attribute("data-compare-for", str(individuals[0].pk))
    assert_fluke_aspect(box(page, ".cand[data-candidate] .cand-thumb img"), 100 if width > 400 else 80)

    first_src = page.locator(f"{shown} [data-compare-img]").get_attribute("src")
    page.keyboard.press("]")
    expect(page.locator(f"{shown} [data-compare-index]")).to_have_text("2")
    second_src = page.locator(f"{shown} [data-compare-img]").get_attribute("src")
    assert second_src != first_src and "crop" in second_src
    page.keyboard.press("[")
    expect(page.locator(f"{shown} [data-compare-img]")).to_have_attribute("src", first_src)

    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator(shown)).to_have_attribute("data-compare-for", str(individuals[1].pk))
    expect(page.locator("#compare [data-compare-for]")).to_have_count(5)
    for name in ("keypoint-lines", "match-probability"):
        expect(page.locator(f"#compare [data-compare-for] [data-{name}]")).to_have_count(5)


@pytest.mark.slow
def test_heat_map_lies_over_the_query_at_its_size(new_page, active_model):
    """H computes the occlusion map for the selected candidate and lays it over the query side by
    side, at exactly the query's size (the old one was a faint 100x25 px strip)."""
    from identification import pipeline

    pipeline.reset()
    label = next(iter(active_model.held_out))
    whale = active_model.individuals[label]
    photo = PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        model_version=active_model.version,
        sighting__species=active_model.species,
        image=ContentFile(active_model.held_out[label].read_bytes(), name="q.jpg"),
    )
    photo.crop.save("sq.jpg", ContentFile(jpeg_bytes(size=(64, 64), seed=3)), save=True)
    reference = Embedding.objects.get(photo=active_model.gallery[label][0], model_version=active_model.version)
    Embedding.objects.create(photo=photo, model_version=active_model.version, vector=reference.vector)  # ranked
    Suggestion.objects.create(
        photo=photo,
        model_version=active_model.version,
        rank=1,
        individual=whale,
        score=0.8,
        best_photo=active_model.gallery[label][0],
    )
    page = new_page()
    login(page, "moderator@example.org")
    open_review(page, photo)
    overlay = page.locator("#compare [data-heat-overlay]")
    expect(overlay).to_be_hidden()
    page.keyboard.press("h")
    expect(overlay).to_be_visible(timeout=90_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-heat-overlay]'); return i.complete && i.naturalWidth > 0; }",
        timeout=90_000,
    )
    assert overlay.get_attribute("src").endswith(f"/explain/{whale.pk}.png")
    size = box(page, "#compare [data-heat-overlay]")
    assert size == box(page, "#compare .compare-query img.is-crop")
    assert_fluke_aspect(size, 450)
    expect(page.locator("[data-heat-caption]")).to_contain_text(whale.catalogue_id)
    page.keyboard.press("h")
    expect(overlay).to_be_hidden()


def synthetic_fluke(photo, individual_seed: int, photo_seed: int) -> None:
    """A synthetic fluke photo (``ml.synth``) and its crop made as the pipeline makes it (square)."""
    import io

    from identification.pipeline.process import crop_png
    from ml.preprocess import affine_crop, crop_box
    from ml.synth import render_photo

    image, fluke = render_photo(individual_seed, photo_seed=photo_seed, size=(640, 428))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=90)
    photo.image.save("fluke.jpg", ContentFile(buf.getvalue()), save=False)
    photo.width, photo.height = image.size
    region = crop_box(fluke, *image.size)
    photo.crop.save("crop.png", ContentFile(crop_png(affine_crop(image, region, 160))), save=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_review_page_fits_the_screen_with_the_new_individual_row(new_page, shots, width):
    """At desktop and phone width the whole review page fits across (it was 473 px wide on a 390 px
    screen) and the new-individual row shows among the candidates. Saves the screenshots of
    docs/screenshots/ (``REVIEW_SCREENSHOTS=docs/screenshots`` writes them there)."""
    import os
    from pathlib import Path

    UserFactory(email=MODERATOR, role="moderator")
    photo, individuals, version = review_setup(n_candidates=5, new_rank=3)
    synthetic_fluke(photo, 11, 5)
    Embedding.objects.create(photo=photo, model_version=version, vector=bytes(8))  # ranked, not re-matching
    for n, ind in enumerate(individuals):
        for p in Photo.objects.filter(individual=ind):
            synthetic_fluke(p, 11 if n == 0 else 20 + n, 40 + p.pk)
    for i in range(2):
        synthetic_fluke(gallery_photo(individuals[0]), 11, 70 + i)
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, MODERATOR)
    open_review(page, photo)
    expect(page.locator(".cand-new", has_text="New individual")).to_be_visible()
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function("() => [...document.images].every(i => !i.getAttribute('src') || i.complete)")
    wide = page.evaluate(
        """w => [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > w + 1 && el.getClientRects().length)
        .map(el => el.tagName + '.' + el.className).slice(0, 8)""",
        width,
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width, wide
    path = shots(page, f"review-{width}")
    if os.environ.get("REVIEW_SCREENSHOTS"):
        target = Path(os.environ["REVIEW_SCREENSHOTS"]) / ("review-desktop.png" if width > 400 else "review-390.png")
        target.write_bytes(path.read_bytes())


def test_the_review_queue_list_starts_on_the_first_phone_screen(new_page):
    """At 390 px the queue's filters fold away (they filled two screens before the list); set filters
    keep them open; the page never scrolls sideways (issue 12, item 10)."""
    UserFactory(email=MODERATOR, role="moderator")
    review_setup()
    page = new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, MODERATOR)
    page.goto("/review/")
    expect(page.locator("#queue-filters")).not_to_have_attribute("open", "")
    first_row = page.locator("table.table tbody tr").first
    expect(first_row).to_be_visible()
    assert first_row.evaluate("tr => tr.getBoundingClientRect().top") < 844
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.locator("#queue-filters summary").click()
    page.locator("#queue-filters [name=place]").fill("Husavik")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#queue-filters")).to_have_attribute("open", "")
    expect(page.locator("#queue-filters summary")).to_contain_text("1 active")


def with_local_features(photo, version):
    """A real RootSIFT extraction of the photo's crop, stored with its embedding as the pipeline stores it."""
    import numpy as np
    from PIL import Image

    from ml.local_features import extract

    with photo.crop.open("rb") as fh:
        crop = np.asarray(Image.open(fh).convert("L"))
    Embedding.objects.update_or_create(
        photo=photo, model_version=version, defaults={"vector": bytes(8), "features": extract(crop).to_bytes()}
    )


@pytest.mark.parametrize("width", [1280, 390])
def test_matched_points_view_opens_with_k_at_desktop_and_phone_width(new_page, shots, width):
    """K opens the active candidate's matched-points view (RootSIFT pairs with its best photo): drawn,
    on screen, within the page's width. ``REVIEW_SCREENSHOTS=docs/screenshots`` saves the screenshots."""
    import os
    from pathlib import Path

    UserFactory(email=MODERATOR, role="moderator")
    photo, individuals, version = review_setup(n_candidates=5, new_rank=3)
    synthetic_fluke(photo, 11, 5)
    best = gallery_photo(individuals[0])
    synthetic_fluke(best, 11, 71)  # the same synthetic whale, another photo
    for p in (photo, best):
        with_local_features(p, version)
    Suggestion.objects.filter(photo=photo, individual=individuals[0]).update(best_photo=best, inliers=24)
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, MODERATOR)
    open_review(page, photo)
    page.keyboard.press("k")
    figure = page.locator(f'#compare [data-compare-for="{individuals[0].pk}"] figure.points')
    expect(figure).to_be_visible()
    img = figure.locator("[data-points-img]")
    page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    # drawn at the side-by-side pane's width, not the candidate row's narrow score column (~230 px before)
    assert img.bounding_box()["width"] >= min(500, width - 80)
    figure.scroll_into_view_if_needed()
    path = page.screenshot(path=str(shots(page, f"matched-points-{width}").with_suffix(".view.png")))
    if os.environ.get("REVIEW_SCREENSHOTS"):
        (Path(os.environ["REVIEW_SCREENSHOTS"]) / f"review-matched-points-{width}.png").write_bytes(path)
