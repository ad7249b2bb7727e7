"""The dashboard and registry per species in a real browser (issue 16, item 3): each species with its active
model or "no model yet", the retrain form's species (humpback by default), and the estimate following the
species chosen (each trains on its own photos)."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from identification.models import WorkerHeartbeat
from identification.training import estimate
from ml.step_time import StepTime
from submissions.models import Photo
from tests.browser.conftest import login
from tests.factories import (
    IndividualFactory,
    ModelVersionFactory,
    PhotoFactory,
    SightingFactory,
    SpeciesFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_each_species_shows_its_model_and_the_form_trains_the_one_chosen(new_page, shots, settings):
    settings.ML_TRAIN_MAX_STEPS = 0
    settings.ML_DEFAULT_BATCH_SIZE = 4
    UserFactory(email="admin@example.org", role="admin")
    humpback = SpeciesFactory()
    dolphin = SpeciesFactory(
        common_name="Common bottlenose dolphin", scientific_name="Tursiops truncatus", code="TT", profile="dolphin_fin"
    )
    active = ModelVersionFactory(species=humpback, is_active=True, promoted_at=timezone.now(), name="humpback-v1")
    for n in range(6):  # 6 dolphins x 3 photos: 16 training photos after oversampling = 4 batches of 4
        whale = IndividualFactory(species=dolphin, catalogue_id=f"TT-{n + 1:04d}")
        for _ in range(3):
            PhotoFactory(
                sighting=SightingFactory(species=dolphin),
                species=dolphin,
                status=Photo.Status.CONFIRMED,
                individual=whale,
            )
    WorkerHeartbeat.objects.create(hostname="training@box", device="cpu", queues=["training"], last_seen=timezone.now())
    estimate.record_step_time("training@box", StepTime("resnet18", 128, 4, "cpu", 0.5, 3), "worker start-up")

    page = new_page()
    login(page, "admin@example.org")
    page.goto("/dashboard/")
    cards = page.locator("#active-models")
    expect(cards.locator(f'[data-species="{humpback.pk}"]')).to_contain_text(active.name)
    expect(cards.locator(f'[data-species="{dolphin.pk}"]')).to_contain_text("No Common bottlenose dolphin model yet")
    form = page.locator("form.train-form")
    expect(form.locator("[name=species]")).to_have_value(str(humpback.pk))
    form.locator("[name=arch]").select_option("resnet18")
    form.locator("[name=image_size]").select_option("128")
    form.locator("[name=epochs]").fill("10")
    text = page.locator('#train-estimate [data-estimate="text"]')
    expect(text).to_have_text("about 5 s")  # the humpback has no photos: 1 batch x 10 epochs x 0.5 s
    form.locator("[name=species]").select_option(str(dolphin.pk))
    expect(text).to_have_text("about 20 s")  # 4 dolphin batches x 10 x 0.5 s
    card = page.locator("#species-classifier")
    expect(card).to_contain_text("No species classifier yet")
    expect(card).to_contain_text("Confirmed photos now: Bottlenose dolphin dorsal fin 18")
    card.get_by_role("button", name="Retrain from the catalogue").click()  # one species only: refused in words
    expect(page.locator("ul.messages")).to_contain_text("confirmed photos of two species or more")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shots(page, f"dashboard-{width}")

    page.goto("/dashboard/models/")
    expect(page.locator(f"#species-{humpback.pk}")).to_contain_text(active.name)
    expect(page.locator(f"#species-{dolphin.pk}")).to_contain_text("No Common bottlenose dolphin model yet")
    expect(page.locator(f"#species-{dolphin.pk}")).not_to_contain_text(active.name)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shots(page, f"registry-{width}")
    assert page.errors == []
