"""The review page's layout and keys in a real browser, on factory-made photos (no worker needed).

* Keys and ranks agree: with the "new individual" row at every rank 1..6, each row's printed number
  is the key that acts on it (issue 12, item 1).
* Hidden controls stay hidden: the crop-box form until B, the help panel until ?, whose lines never
  overlap (item 3).
"""
import pytest
from playwright.sync_api import expect

from identification.models import Decision
from submissions.models import Photo
from tests.browser.conftest import login, shortcuts_ready
from tests.factories import UserFactory
from tests.web.helpers import review_setup

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
