"""Browser tests: Debian Chromium driven by Playwright (sync API) against pytest-django's live server.

* ``browser`` (session): one headless Chromium (``/usr/bin/chromium``; Playwright's own download is not used).
* ``new_page`` (function): ``new_page()`` opens a page in a fresh context (its own cookies: one per role),
  with the live server as base URL; ``login(page, email)`` signs a user in through the login form.
* ``shots`` (function): ``shots(page, "name")`` saves a full-page screenshot under a per-test folder
  (``BROWSER_SHOTS=/some/dir`` keeps them somewhere stable).

The live server needs transactional database access (``django_db(transaction=True)``), so the real
Celery worker (``celery_worker``) sees what the pages write and the pages see what the worker writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# The sync Playwright API runs an event loop in this thread; Django's ORM calls made by the test itself
# (factories, assertions) would otherwise be refused as "async unsafe".
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 20_000  # default for one locator action / expectation
PASSWORD = "whales-test"  # tests.factories.PASSWORD


@pytest.fixture(scope="session")
def playwright_sync():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_sync):
    b = playwright_sync.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def new_page(browser, live_server):
    contexts = []

    def make():
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # uncaught JavaScript errors: a page with a broken script fails the test
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        for page in context.pages:
            assert not getattr(page, "errors", []), f"JavaScript errors on {page.url}: {page.errors}"
        context.close()


@pytest.fixture
def shots(request, tmp_path_factory):
    base = os.environ.get("BROWSER_SHOTS")
    folder = Path(base) / request.node.name if base else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def shot(page, name: str) -> Path:
        path = folder / f"{next(counter):02d}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    shot.folder = folder
    return shot


def login(page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would."""
    from playwright.sync_api import expect

    page.goto("/accounts/login/")
    page.locator("[name=login]").fill(email)
    page.locator("[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".nav-user")).to_contain_text(email)


def shortcuts_ready(page) -> None:
    """Wait until review.js has bound its keys (it is deferred: the page can show before it runs)."""
    from playwright.sync_api import expect

    expect(page.locator("body[data-shortcuts=ready]")).to_have_count(1)


def upload_ready(page) -> None:
    """Wait until upload.js has bound its drop and preview handlers (deferred, like review.js: a drop
    dispatched before it ran was lost, and the previews never appeared)."""
    from playwright.sync_api import expect

    expect(page.locator("#submit-form[data-ready=true]")).to_have_count(1)


def image_loaded(page, selector: str) -> bool:
    """True when the <img> matched by ``selector`` loaded (served and decoded) with a non-zero size."""
    return page.locator(selector).first.evaluate("img => img.complete && img.naturalWidth > 0")


def awaiting_review_queue(n: int, individuals: int = 5):
    """``n`` photos awaiting review (factories), each with the five individuals ranked plus a "new
    individual" row, as the worker would have written them. Returns (photos oldest first, individuals)."""
    from identification.models import Suggestion
    from submissions.models import Photo
    from tests.factories import IndividualFactory, ModelVersionFactory, PhotoFactory, SpeciesFactory

    species = SpeciesFactory()
    version = ModelVersionFactory(is_active=True, gallery_ready=True)
    whales = [IndividualFactory(species=species, nickname=f"Whale {i + 1}") for i in range(individuals)]
    photos = []
    for i in range(n):
        photo = PhotoFactory(
            sighting__species=species,
            status=Photo.Status.AWAITING_REVIEW,
            model_version=version,
            original_filename=f"fluke-{i + 1:03d}.jpg",
        )
        ranked = whales[i % individuals :] + whales[: i % individuals]
        Suggestion.objects.bulk_create(
            [
                Suggestion(photo=photo, model_version=version, rank=r, individual=w, score=round(0.9 - 0.1 * r, 3))
                for r, w in enumerate(ranked, 1)
            ]
            + [Suggestion(photo=photo, model_version=version, rank=len(ranked) + 1, individual=None, score=0.2)]
        )
        photos.append(photo)
    return photos, whales
