"""The retrain form's estimate in a real browser (issue 12, item 6): it follows the fields as they
change, says where its step time came from, and warns past an hour on a CPU worker."""

import os
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from identification.models import WorkerHeartbeat
from identification.training import estimate
from ml.step_time import StepTime
from tests.browser.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_estimate_follows_the_form_and_warns_past_an_hour_on_a_cpu(new_page, shots, settings):
    settings.ML_TRAIN_MAX_STEPS = 0
    UserFactory(email="admin@example.org", role="admin")
    WorkerHeartbeat.objects.create(hostname="training@box", device="cpu", queues=["training"], last_seen=timezone.now())
    batch = settings.ML_DEFAULT_BATCH_SIZE
    estimate.record_step_time("training@box", StepTime("resnet50", 224, batch, "cpu", 200.0, 3), "worker start-up")
    estimate.record_step_time("training@box", StepTime("resnet18", 128, batch, "cpu", 0.5, 3), "requested by admin")
    page = new_page()
    login(page, "admin@example.org")
    page.goto("/dashboard/")
    box = page.locator("#train-estimate")
    form = page.locator("form.train-form")
    form.locator("[name=arch]").select_option("resnet18")
    form.locator("[name=image_size]").select_option("128")
    form.locator("[name=epochs]").fill("10")
    expect(box.locator('[data-estimate="text"]')).to_have_text("about 5 s")  # 10 epochs x 1 batch x 0.5 s
    expect(box.locator('[data-estimate="source"]')).to_contain_text("measured on training@box (cpu)")
    expect(box.locator('[data-estimate="warning"]')).to_be_hidden()
    form.locator("[name=arch]").select_option("resnet50")
    form.locator("[name=image_size]").select_option("224")
    form.locator("[name=epochs]").fill("20")
    expect(box.locator('[data-estimate="text"]')).to_have_text("about 1 h 06 min")  # 20 x 200 s
    expect(box.locator('[data-estimate="warning"]')).to_be_visible()
    expect(box.locator('[data-estimate="warning"]')).to_contain_text("more than an hour on a CPU worker")
    shots(page, "estimate-warning")
    if os.environ.get("REVIEW_SCREENSHOTS"):  # docs/screenshots: the form with its estimate, 1280 and 390 px
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            target = Path(os.environ["REVIEW_SCREENSHOTS"]) / f"retrain-estimate-{width}.png"
            form.screenshot(path=str(target))
        page.set_viewport_size({"width": 1280, "height": 900})
    form.locator("[name=image_size]").select_option("160")
    expect(box.locator('[data-estimate="text"]')).to_have_text("not measured yet")
    expect(box.locator('[data-estimate="warning"]')).to_be_hidden()
    assert page.errors == []
