"""Issue 16 items 2 and 5, the acceptance tests: a watcher uploads a fluke and a dolphin fin in ONE sighting,
and the real worker ranks each photo against its own species' catalogue only (HW- whales for the fluke, TT-
dolphins for the fin): with the species chosen by hand, and with each select prefilled by the species
classifier (``ml.species``). Each species' tiny model is trained with its own profile (these tests check
where a photo is ranked, not how well)."""

import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import expect

from identification.models import Embedding, Individual, Suggestion
from submissions.models import Photo, Sighting
from tests.browser.conftest import login, upload_ready
from tests.conftest import MODEL_IMAGE_SIZE, register_model, wait_for
from tests.factories import SpeciesFactory, UserFactory, read_dataset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WATCHER = "watcher@example.org"
INDIVIDUALS, PHOTOS = 5, 4


def _train(folder, by_id, out, profile):
    from django.conf import settings

    from ml.train import TrainConfig, train
    from tests.factories import write_csv

    rows = [(img, label) for label, images in by_id.items() for img in images[:-1]]
    write_csv(folder / "gallery.csv", ["Image", "Id"], rows)
    config = TrainConfig(
        csv=str(folder / "gallery.csv"),
        images_dir=str(folder / "images"),
        out_dir=str(Path(settings.ML_ROOT) / "models" / out),
        boxes_csv=str(folder / "boxes.csv"),
        arch="resnet18",
        image_size=MODEL_IMAGE_SIZE,
        epochs=1,
        batch_size=16,
        num_workers=0,
        max_steps=3,
        device="cpu",
        train_localizer=False,
        profile=profile,
    )
    return train(config)


def _catalogue(species, folder, by_id, result, user):
    """``species``' active version and its gallery (all but the last photo of each whale), embedded here."""
    from ml.identifier import Identifier
    from ml.images import compute_hashes, load_image

    version = register_model(result, species=species, is_active=True, gallery_ready=True, promoted_at=timezone.now())
    ident = Identifier.load(result.model_dir, device="cpu")
    held_out = {}
    for n, images in enumerate(by_id.values()):
        whale = Individual.objects.create(catalogue_id=f"{species.code}-{n + 1:04d}", species=species)
        sighting = Sighting.objects.create(species=species, observed_at=timezone.now(), submitted_by=user)
        for img in images[:-1]:
            data = (folder / "images" / img).read_bytes()
            h = compute_hashes(data)
            photo = Photo(sighting=sighting, species=species, sha256=h.sha256, phash=h.phash, individual=whale)
            photo.status, photo.original_filename = Photo.Status.CONFIRMED, img
            photo.image.save(img, ContentFile(data), save=False)
            photo.save()
            vector = ident.embed([ident.prepare(load_image(data)).crop])[0].astype("float32")
            Embedding.objects.create(photo=photo, model_version=version, vector=vector.tobytes())
        held_out[whale.catalogue_id] = folder / "images" / images[-1]
    return version, held_out


def _two_catalogues(tmp_path):
    """Humpbacks and dolphins, each species with its own catalogue and active model; (species, held-out
    photos by catalogue id, data folders)."""
    from ml.synth import generate_dataset
    from ml.synth_fins import generate_fin_dataset

    humpback = SpeciesFactory(profile="humpback_fluke")
    dolphin = SpeciesFactory(
        code="TT", common_name="Common bottlenose dolphin", scientific_name="Tursiops truncatus", profile="dolphin_fin"
    )
    user = UserFactory(email=WATCHER, role="watcher")
    flukes, fins = tmp_path / "flukes", tmp_path / "fins"
    generate_dataset(str(flukes), individuals=INDIVIDUALS, photos=PHOTOS, seed=3, progress=False)
    generate_fin_dataset(str(fins), individuals=INDIVIDUALS, photos=PHOTOS, seed=4, progress=False)
    (fluke_ids, _), (fin_ids, _) = read_dataset(flukes), read_dataset(fins)
    _, fluke_held = _catalogue(humpback, flukes, fluke_ids, _train(flukes, fluke_ids, "hw", "humpback_fluke"), user)
    _, fin_held = _catalogue(dolphin, fins, fin_ids, _train(fins, fin_ids, "tt", "dolphin_fin"), user)
    return (humpback, dolphin), (fluke_held, fin_held), (flukes, fins)


def _ranked_in_own_catalogues(fluke, fin):
    wait_for(
        lambda: Photo.objects.filter(pk__in=[fluke.pk, fin.pk], status=Photo.Status.AWAITING_REVIEW).count() == 2,
        timeout=180,
        message="both photos ranked by the worker",
    )
    for photo, code in ((fluke, "HW-"), (fin, "TT-")):
        ranked = Suggestion.objects.filter(photo=photo, individual__isnull=False).select_related("individual")
        assert ranked and all(s.individual.catalogue_id.startswith(code) for s in ranked)


def test_fluke_and_fin_chosen_by_hand_are_ranked_in_their_own_catalogues(new_page, tmp_path, celery_worker):
    (humpback, dolphin), (fluke_held, fin_held), _ = _two_catalogues(tmp_path)
    page = new_page()
    login(page, WATCHER)
    page.goto("/submit/")
    upload_ready(page)
    fluke_path, fin_path = fluke_held[sorted(fluke_held)[0]], fin_held[sorted(fin_held)[0]]
    page.locator("input[type=file][name=photos]").set_input_files([fluke_path, fin_path])
    page.locator("[name=species]").select_option(label="Humpback whale")  # the sighting's, so the fluke's
    page.get_by_label(f"Species of {fin_path.name}").select_option(label="Common bottlenose dolphin")
    page.locator("[name=observed_date]").fill("2024-08-02")
    page.get_by_role("button", name="Submit sighting").click()
    expect(page).to_have_url(re.compile(r"/me/sightings/$"))
    fluke = Photo.objects.get(original_filename=fluke_path.name, individual__isnull=True)
    fin = Photo.objects.get(original_filename=fin_path.name, individual__isnull=True)
    assert (fluke.species, fin.species, fluke.sighting_id) == (humpback, dolphin, fin.sighting_id)
    _ranked_in_own_catalogues(fluke, fin)


def test_fluke_and_fin_get_suggestions_from_their_own_catalogues(new_page, shots, settings, tmp_path, celery_worker):
    from ml.species import train_species_classifier

    (humpback, dolphin), (fluke_held, fin_held), (flukes, fins) = _two_catalogues(tmp_path)
    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "species")
    train_species_classifier(
        {"humpback_fluke": sorted(flukes.glob("images/*.jpg")), "dolphin_fin": sorted(fins.glob("images/*.jpg"))},
        tmp_path / "species",
        features="thumbnail",  # weight-free and fast; the demo's uses EfficientNet-Lite0 features
    )

    page = new_page()
    login(page, WATCHER)
    page.goto("/submit/")
    upload_ready(page)
    fluke_whale, fin_whale = sorted(fluke_held)[0], sorted(fin_held)[0]
    page.locator("input[type=file][name=photos]").set_input_files([fluke_held[fluke_whale], fin_held[fin_whale]])
    fluke_select = page.get_by_label(f"Species of {fluke_held[fluke_whale].name}")
    fin_select = page.get_by_label(f"Species of {fin_held[fin_whale].name}")
    page.locator("[name=species]").select_option(label="Humpback whale")
    expect(fluke_select).to_have_value("suggested")
    expect(fluke_select.locator("option[value=suggested]")).to_contain_text("Suggested: Humpback whale")
    expect(fin_select.locator("option[value=suggested]")).to_contain_text("Suggested: Common bottlenose dolphin")
    page.locator("[name=observed_date]").fill("2024-08-02")
    shots(page, "fluke and fin with suggestions")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(fin_select.locator("option[value=suggested]")).to_contain_text("Suggested: Common bottlenose dolphin")
    shots(page, "fluke and fin with suggestions at 390 px")
    page.get_by_role("button", name="Submit sighting").click()
    expect(page).to_have_url(re.compile(r"/me/sightings/$"))

    photos = {p.original_filename: p for p in Photo.objects.filter(individual__isnull=True)}
    fluke, fin = photos[fluke_held[fluke_whale].name], photos[fin_held[fin_whale].name]
    assert (fluke.species, fin.species) == (humpback, dolphin)
    assert (fluke.suggested_species, fin.suggested_species) == (humpback, dolphin)
    assert fluke.sighting_id == fin.sighting_id
    _ranked_in_own_catalogues(fluke, fin)
