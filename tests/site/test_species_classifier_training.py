"""``manage.py train_species_classifier``: the upload form's species classifier learns from the catalogue's
confirmed photos (``identification.training.species_classifier``), and the form then suggests from it."""

from __future__ import annotations

import csv

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from identification.training.species_classifier import catalogue_photos
from ml.images import load_image
from submissions import services, species_guess
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, SpeciesFactory, UserFactory, upload

pytestmark = pytest.mark.django_db


def _synthetic(tmp_path, name, generate, seed):
    generate(str(tmp_path / name), individuals=5, photos=4, seed=seed, progress=False)
    with open(tmp_path / name / "train.csv") as fh:
        return [(tmp_path / name / "images" / r["Image"], r["Id"]) for r in csv.DictReader(fh)]


def _catalogue(species, photos, status=Photo.Status.CONFIRMED):
    whales = {}
    for path, label in photos:
        whale = whales.get(label) or whales.setdefault(label, IndividualFactory(species=species))
        PhotoFactory(
            sighting=SightingFactory(species=species),
            individual=whale,
            status=status,
            image=ContentFile(path.read_bytes(), name=path.name),
        )


@pytest.fixture
def catalogue(tmp_path):
    from ml.synth import generate_dataset
    from ml.synth_fins import generate_fin_dataset

    humpback = SpeciesFactory(profile="humpback_fluke")
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    flukes = _synthetic(tmp_path, "flukes", generate_dataset, 1)
    fins = _synthetic(tmp_path, "fins", generate_fin_dataset, 2)
    # the last whale of each is kept out: its photos are the test photos, of individuals never trained on
    _catalogue(humpback, [p for p in flukes if p[1] != flukes[-1][1]])
    _catalogue(dolphin, [p for p in fins if p[1] != fins[-1][1]])
    _catalogue(dolphin, fins[:3], status=Photo.Status.AWAITING_REVIEW)  # not confirmed: never learned from
    return humpback, dolphin, flukes[-1][0], fins[-1][0]


def test_the_classifier_learns_the_confirmed_photos_and_the_form_suggests_from_it(catalogue, settings, tmp_path):
    from ml.species import SpeciesClassifier

    humpback, dolphin, new_fluke, new_fin = catalogue
    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "species")
    assert species_guess.suggest(load_image(new_fin.read_bytes())) is None  # none yet
    call_command("train_species_classifier", "--features", "thumbnail", "--min-photos", "8")
    meta = (tmp_path / "species" / "classifier.json").read_text()
    assert '"humpback_fluke": 16' in meta and '"dolphin_fin": 16' in meta  # 4 whales x 4 confirmed photos each
    # it learned the catalogue: each confirmed photo is suggested as its own species
    for photo in Photo.objects.filter(status=Photo.Status.CONFIRMED):
        with photo.image.open("rb") as fh:
            assert species_guess.suggest(load_image(fh.read())).best == photo.individual.species
    # and the form asks the folder just written (photos of whales it never saw: whatever it says, it says it here)
    model = SpeciesClassifier.load(tmp_path / "species")
    for path in (new_fluke, new_fin):
        guess = model.predict(load_image(path.read_bytes()))
        best = max(guess.probabilities, key=guess.probabilities.get)
        assert species_guess.suggest(load_image(path.read_bytes())).best.profile == best


def test_a_sighting_is_classified_in_one_batch_as_each_photo_alone(catalogue, settings, tmp_path, monkeypatch):
    """``submit_sighting`` runs the classifier once for all of a sighting's photos, and each photo keeps what the
    form's per-photo endpoint says of it: batching changes the cost, never a suggestion."""
    from ml.species import SpeciesClassifier

    humpback, _, new_fluke, new_fin = catalogue
    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "species")
    call_command("train_species_classifier", "--features", "thumbnail", "--min-photos", "8")
    paths = [new_fluke, new_fin, *sorted((tmp_path / "fins" / "images").glob("*"))[:2]]
    alone = {p.name: services.species_suggestion(upload(p.name, p.read_bytes())) for p in paths}
    batches: list[int] = []
    predict_many = SpeciesClassifier.predict_many

    def counted(self, images):  # the real classifier, counted: how many photos each call classifies
        batches.append(len(images))
        return predict_many(self, images)

    monkeypatch.setattr(SpeciesClassifier, "predict_many", counted)
    outcome = services.submit_sighting(
        user=UserFactory(role="watcher"),
        species=humpback,
        observed_at=timezone.now(),
        files=[upload(p.name, p.read_bytes()) for p in paths],
        species_choices=[services.SUGGESTED] * len(paths),
    )
    assert batches == [len(paths)]
    assert len(outcome.accepted) == len(paths)
    for photo in Photo.objects.filter(pk__in=[p.pk for p in outcome.accepted]):
        expected = alone[photo.original_filename]
        assert photo.suggested_species == expected.best
        assert photo.species_confidence == pytest.approx(expected.probability, abs=1e-6)
        assert photo.species == expected.species  # left on the suggestion (None: unknown species)


def test_each_species_is_taken_evenly_over_its_whales(catalogue):
    photos = catalogue_photos(per_profile=6)
    assert {k: len(v) for k, v in photos.items()} == {"humpback_fluke": 6, "dolphin_fin": 6}
    assert len({p.individual_id for p in photos["dolphin_fin"]}) == 4  # every whale before any whale's second
    assert all(p.status == Photo.Status.CONFIRMED for p in photos["dolphin_fin"])


def test_one_species_is_not_enough(catalogue, settings, tmp_path):
    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "species")
    with pytest.raises(
        CommandError,
        match=r"50 confirmed photos of two species profiles or more \(have (humpback_fluke: 16|dolphin_fin: 16), ",
    ):
        call_command("train_species_classifier", "--features", "thumbnail", "--min-photos", "50")
    assert not (tmp_path / "species").exists()


def test_the_dashboard_retrains_it_on_the_training_worker(
    client, catalogue, settings, tmp_path, django_capture_on_commit_callbacks
):
    """The admin's button queues the task after the commit; the task body writes the folder the form reads and
    the dashboard then shows what it learned. Too few photos: refused in words, nothing queued."""
    from identification.training.species_classifier import retrain_species_classifier
    from tests.factories import UserFactory

    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "species")
    settings.SPECIES_CLASSIFIER_FEATURES = "thumbnail"
    settings.SPECIES_CLASSIFIER_MIN_PHOTOS = 8
    client.force_login(UserFactory(role="admin"))
    page = client.get(reverse("identification:dashboard")).content.decode()
    assert "No species classifier yet" in page and "Humpback whale fluke 16" in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("identification:retrain_species_classifier"))
    assert response.status_code == 302 and len(callbacks) == 1
    assert retrain_species_classifier() == "trained on {'dolphin_fin': 16, 'humpback_fluke': 16}"
    page = client.get(reverse("identification:dashboard")).content.decode()
    assert "thumbnail features" in page and "Bottlenose dolphin dorsal fin</dt><dd>16 photos" in page

    Photo.objects.filter(individual__species__profile="dolphin_fin").delete()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("identification:retrain_species_classifier"))
    assert not callbacks
    page = client.get(reverse("identification:dashboard")).content.decode()
    assert "needs 8 confirmed photos of two species or more (have Humpback whale fluke 16)" in page
    assert retrain_species_classifier().startswith("skipped: ")  # a message queued before the photos went
