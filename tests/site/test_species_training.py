"""Each species is trained, benchmarked, promoted and rolled back on its own (issue 16, item 3): a run for the
dolphin trains on dolphin photos only, minus the dolphin's own frozen holdout, and registers a dolphin version;
promoting it leaves the humpback's active version active; the registry shows each with its own holdout."""

import csv

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from identification.forms import TrainingForm
from identification.models import HoldoutSet, ModelVersion, TrainingRun
from identification.pipeline.reembed import reembed_gallery
from identification.training import registry
from identification.training.dataset import current_holdout, export_dataset, training_queryset
from identification.training.localizer import start_localizer_retrain
from identification.training.runs import execute_run, run_dir, start_training_run
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, SpeciesFactory, UserFactory

pytestmark = pytest.mark.django_db


def _dolphin():
    return SpeciesFactory(
        common_name="Common bottlenose dolphin", scientific_name="Tursiops truncatus", code="TT", profile="dolphin_fin"
    )


def _gallery(species, whales: int, photos: int, singles: int = 0) -> list[Photo]:
    """``whales`` individuals of ``species`` with ``photos`` confirmed photos each, and ``singles`` with one."""
    out = []
    for n in range(whales + singles):
        whale = IndividualFactory(species=species, catalogue_id=f"{species.code}-{n + 1:04d}")
        sighting = SightingFactory(species=species)
        for _ in range(photos if n < whales else 1):
            out.append(
                PhotoFactory(sighting=sighting, species=species, status=Photo.Status.CONFIRMED, individual=whale)
            )
    return out


def _admin():
    user = UserFactory(role="admin")
    return type(user).objects.get(pk=user.pk)  # re-read: the role's permissions


def test_each_species_trains_on_its_own_photos_minus_its_own_holdout(tmp_path):
    humpback, dolphin = SpeciesFactory(), _dolphin()
    humpback_photos = {p.pk for p in _gallery(humpback, 6, 3)}
    dolphin_photos = {p.pk for p in _gallery(dolphin, 6, 3, singles=1)}

    snapshot = export_dataset(tmp_path / "dolphin", dolphin)
    held = current_holdout(dolphin)
    assert held is not None and held.species == dolphin and current_holdout(humpback) is None
    assert set(held.photo_ids) <= dolphin_photos and len(held.photo_ids) == 5 + 1  # 5 known whales + 1 new
    assert set(snapshot["photo_ids"]) == dolphin_photos - set(held.photo_ids)
    labels = {row["Id"] for row in csv.DictReader(open(tmp_path / "dolphin" / "train.csv"))}
    assert labels and all(label.startswith("TT-") for label in labels)

    export_dataset(tmp_path / "humpback", humpback)  # the humpback's own holdout, of its own photos
    assert HoldoutSet.objects.count() == 2 and set(current_holdout(humpback).photo_ids) <= humpback_photos
    assert set(training_queryset().values_list("pk", flat=True)) == humpback_photos - set(
        current_holdout(humpback).photo_ids
    )  # no species: the humpback's


def test_the_retrain_form_offers_identifiable_species_and_refuses_the_others(client):
    humpback, dolphin = SpeciesFactory(), _dolphin()
    minke = SpeciesFactory(common_name="Minke whale", scientific_name="Balaenoptera acutorostrata", code="MW")
    assert minke.profile == "humpback_fluke"
    minke.profile = ""  # kept for review, never identified
    minke.save()
    form = TrainingForm()
    assert form["species"].initial == humpback.pk
    assert set(form.fields["species"].queryset) == {humpback, dolphin}
    posted = {"species": minke.pk, "epochs": 1, "arch": "resnet18", "image_size": 224}
    bad = TrainingForm(posted)
    assert not bad.is_valid() and "species" in bad.errors
    admin = _admin()
    with pytest.raises(ValidationError, match="no species profile"):
        start_training_run(user=admin, species=minke)
    client.force_login(admin)
    response = client.post(reverse("identification:start_training"), posted)
    assert response.status_code == 200 and "Choose a species with a profile" in response.content.decode()
    assert not TrainingRun.objects.exists()
    client.post(reverse("identification:start_training"), {**posted, "species": dolphin.pk})
    assert TrainingRun.objects.get().species == dolphin
    # a fin is cropped from the full frame: no localizer to retrain
    with pytest.raises(ValidationError, match="full frame"):
        start_localizer_retrain(user=admin, species=dolphin)


def test_a_species_without_a_model_says_so(client):
    SpeciesFactory()
    _dolphin()
    client.force_login(_admin())
    for name in ("identification:dashboard", "identification:model_list"):
        html = client.get(reverse(name)).content.decode()
        assert "No Humpback whale model yet" in html and "No Common bottlenose dolphin model yet" in html, name


@pytest.mark.slow
@override_settings(ML_TRAIN_MAX_STEPS=3, TRAINING_HEARTBEAT_S=600)
def test_a_dolphin_run_registers_a_dolphin_version_whose_promotion_leaves_the_humpback_model(active_model, client):
    demo = active_model
    dolphin = _dolphin()
    dolphin_photos = {p.pk for p in _gallery(dolphin, 6, 3, singles=1)}
    humpback_photos = {p.pk for photos in demo.gallery.values() for p in photos}
    admin = _admin()

    run = start_training_run(user=admin, species=dolphin, epochs=1, arch="resnet18", image_size=64)
    assert execute_run(run.pk) == "succeeded"
    run.refresh_from_db()
    version = run.model_version
    assert version.species == dolphin and not version.is_active
    held = set(current_holdout(dolphin).photo_ids)
    trained = set(version.training_snapshot["photo_ids"])
    assert trained == dolphin_photos - held and not trained & humpback_photos
    labels = {row["Id"] for row in csv.DictReader(open(run_dir(run.pk) / "data" / "train.csv"))}
    assert labels and all(label.startswith("TT-") for label in labels)
    assert "fine-tuning from" not in run.log  # never from the humpback's model
    assert version.config["profile"] == "dolphin_fin"  # the dolphin profile's crop, mirrors and augmentation
    # compared like with like: no dolphin model is active, so nothing to compare with (not the humpback's)
    detail = registry.version_detail(version)
    assert detail["active"] is None and detail["active_evaluation"] is None

    registry.promote_model_version(version=version, user=admin)
    assert reembed_gallery(version.pk) == "promoted"  # the queued task's body, in this process
    assert ModelVersion.objects.active_for(dolphin).get() == version
    assert ModelVersion.objects.active_for(demo.species).get() == demo.version  # the humpback's stays
    with pytest.raises(ValidationError, match="no earlier model version of the Common bottlenose dolphin"):
        registry.rollback_model(user=admin, species=dolphin)  # the humpback's promoted version is not a candidate

    registry.evaluate_on_holdout(demo.version)
    registry.evaluate_on_holdout(version)
    client.force_login(admin)
    html = client.get(reverse("identification:model_list")).content.decode()
    sections = {
        species.pk: html.split(f'id="species-{species.pk}"')[1].split("</section>")[0]
        for species in (demo.species, dolphin)
    }
    assert demo.version.name in sections[demo.species.pk] and demo.version.name not in sections[dolphin.pk]
    assert version.name in sections[dolphin.pk] and version.name not in sections[demo.species.pk]
    assert 'data-holdout-size="5"' in sections[demo.species.pk]  # 5 known humpbacks held out
    assert 'data-holdout-size="6"' in sections[dolphin.pk]  # 5 known dolphins + 1 new
    assert "not evaluated" not in sections[dolphin.pk] and "not evaluated" not in sections[demo.species.pk]
