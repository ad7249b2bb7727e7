"""The bulk import page in Chromium: upload a sheet and a ZIP through the form, read each row's status
and reason, import the valid rows, and watch the progress (``static/js/imports.js``) reach the end on
the real worker. At 390 px the page fits across. ``IMPORT_SCREENSHOTS=docs/screenshots`` keeps the shots."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.factories import SpeciesFactory, UserFactory
from tests.imports.helpers import photos, photos_zip, row, sheet_csv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _keep(page, name: str, shots) -> None:
    shots(page, name)
    if os.environ.get("IMPORT_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["IMPORT_SCREENSHOTS"]) / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 390])
def test_import_page_checks_rows_then_imports_the_valid_ones_with_live_progress(
    new_page, shots, celery_worker, tmp_path, width
):
    SpeciesFactory()
    UserFactory(email="mod@example.org", role="moderator")
    rows = [row(f"p{i:04d}.jpg", catalogue_id=f"HW-{800 + i % 3:04d}") for i in range(6)]
    rows += [row("p0006.jpg", observed_at="14/07/2024"), row("gone.jpg"), row("p0007.jpg", latitude="91")]
    (tmp_path / "catalogue.csv").write_bytes(sheet_csv(rows).read())
    (tmp_path / "photos.zip").write_bytes(photos_zip(photos(8)).read())

    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    login(page, "mod@example.org")
    page.goto("/imports/")
    page.locator("[name=sheet]").set_input_files(str(tmp_path / "catalogue.csv"))
    page.locator("[name=archive]").set_input_files(str(tmp_path / "photos.zip"))
    page.get_by_role("button", name="Check the sheet").click()

    expect(page.get_by_role("button", name="Import the 6 valid rows only")).to_be_visible()
    expect(page.locator('tr[data-row="8"]')).to_contain_text("is not a date and time")
    expect(page.locator('tr[data-row="9"]')).to_contain_text("No file named 'gone.jpg' in the ZIP.")
    expect(page.locator('tr[data-row="10"]')).to_contain_text("latitude 91 is out of range")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    _keep(page, f"import-checked-{width}", shots)

    page.get_by_role("button", name="Import the 6 valid rows only").click()
    expect(page.locator("#import-progress")).to_be_visible()
    # imports.js reloads the page once progress.json says done: the rows then show their final status
    expect(page.locator('[data-field="status"]')).to_have_text("Done", timeout=120_000)
    expect(page.locator('[data-field="done"]')).to_have_text("6")
    expect(page.locator('tr[data-status="imported"]')).to_have_count(6)
    expect(page.locator('tr[data-status="skipped"]')).to_have_count(3)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    _keep(page, f"import-done-{width}", shots)
