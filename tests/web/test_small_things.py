"""Small things that looked unfinished (issue 12, item 10): a styled 403 that logs one line and no
traceback, a favicon, and ``make run PORT=...`` pointing e-mail links at that port."""

import logging
import subprocess
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def test_a_403_is_a_styled_page_and_one_log_line_without_traceback(client, watcher, caplog):
    caplog.set_level(logging.WARNING, logger="django.request")
    response = client.get(reverse("identification:dashboard"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "You don't have access to this page" in html and 'class="topbar"' in html and "watcher@example.org" in html
    forbidden = [r for r in caplog.records if r.name == "django.request" and getattr(r, "status_code", None) == 403]
    assert len(forbidden) == 1 and "Forbidden" in forbidden[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records), "a 403 wrote a traceback"
    assert "Traceback" not in caplog.text


def test_favicon(client):
    assert finders.find("favicon.svg")
    html = client.get(reverse("home")).content.decode()
    assert 'rel="icon"' in html and "favicon.svg" in html
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_make_run_points_site_url_at_its_port():
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8100", "PY=python"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "SITE_URL=http://127.0.0.1:8100" in dry and "--port 8100" in dry
    assert "SITE_URL" in (REPO / "README.md").read_text()


def test_home_recent_tiles_are_distinct_whales(client):
    from datetime import timedelta

    from django.utils import timezone

    from submissions.models import Photo
    from tests.factories import IndividualFactory, PhotoFactory

    busy, quiet = IndividualFactory(nickname="Busy"), IndividualFactory(nickname="Quiet")
    now = timezone.now()
    PhotoFactory(status=Photo.Status.CONFIRMED, individual=quiet, decided_at=now - timedelta(days=2))
    for i in range(9):  # one sighting decided photo by photo
        PhotoFactory(status=Photo.Status.CONFIRMED, individual=busy, decided_at=now - timedelta(minutes=i))
    recent = list(client.get(reverse("home")).context["recent"])
    assert [p.individual for p in recent] == [busy, quiet]
    assert recent[0].decided_at == max(p.decided_at for p in Photo.objects.filter(individual=busy))


def test_versions_are_numbered_and_settings_folded(client, admin):
    from identification.models import ModelVersion

    version = ModelVersion.objects.create(
        name="run-3-20261201-193727-29366c51",
        artifact_dir="models/x",
        config={"arch": "resnet50", "image_size": 224, "epochs": 20, "lr": 0.0003, "mixup": 0.0, "seed": 0},
    )
    html = client.get(reverse("identification:model_detail", args=[version.pk])).content.decode()
    assert f"Version v{version.pk}" in html
    head, settings = html.split('id="all-settings"', 1)
    assert "Network" in head and "resnet50" in head and "mixup" not in head  # the recipe in words, up front
    assert "All 6 training settings" in settings and "mixup" in settings  # the raw table folded away
    listing = client.get(reverse("identification:model_list")).content.decode()
    assert f"<strong>v{version.pk}</strong>" in listing


def test_home_shows_the_demo_setup_until_a_model_is_active(client):
    """``make run`` starts the site first and trains the demo in the background (issue 12, item 11):
    the home page answers at once and shows the setup's progress."""
    from identification.models import ModelVersion, TrainingRun

    html = client.get(reverse("home")).content.decode()
    assert 'id="setup-progress"' in html and "Preparing the demo catalogue" in html
    TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        options={"epochs": 4, "seed_demo": True},
        progress={"phase": "train", "epoch": 2, "epochs": 4, "step": 0, "steps_per_epoch": 5},
    )
    html = client.get(reverse("home")).content.decode()
    assert "Training the model (25%)" in html and "photos wait in the queue" in html
    ModelVersion.objects.create(name="demo-1", artifact_dir="models/demo", is_active=True)
    assert 'id="setup-progress"' not in client.get(reverse("home")).content.decode()
