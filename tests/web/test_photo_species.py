"""Issue 16 item 2: each photo of a sighting has its own species (the watcher's choice, prefilled from the
species classifier's suggestion), and the per-photo suggestion endpoint. These run without a classifier
folder (the site's state until one is trained): the form then has no suggestion and says nothing about one."""

import pytest
from django.urls import reverse

from submissions import services
from submissions.models import Photo
from submissions.species_guess import Suggestion
from tests.factories import jpeg_bytes, sighting_form, upload
from tests.web.helpers import SpeciesFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_species():
    humpback = SpeciesFactory(profile="humpback_fluke")
    dolphin = SpeciesFactory(
        common_name="Common bottlenose dolphin", scientific_name="Tursiops truncatus", code="TT", profile="dolphin_fin"
    )
    return humpback, dolphin


def _post(client, species, photos, choices=None):
    data = sighting_form(species)
    data["photos"] = photos
    if choices is not None:
        data["photo_species"] = choices
    return client.post(reverse("submissions:submit"), data)


def test_each_photo_keeps_the_species_the_watcher_chose(client, watcher, two_species):
    humpback, dolphin = two_species
    photos = [
        upload("fluke.jpg", jpeg_bytes(seed=1)),
        upload("fin.jpg", jpeg_bytes(seed=2)),
        upload("x.jpg", jpeg_bytes(seed=3)),
    ]
    response = _post(client, humpback, photos, [str(humpback.pk), str(dolphin.pk), "unknown"])
    assert response.status_code == 302
    by_name = {p.original_filename: p for p in Photo.objects.all()}
    assert by_name["fluke.jpg"].species == humpback
    assert by_name["fin.jpg"].species == dolphin
    assert by_name["x.jpg"].species is None  # unknown species: review, never matched
    assert by_name["fin.jpg"].sighting.species == humpback  # the sighting keeps the watcher's species


def test_without_choices_each_photo_takes_the_sightings_species(client, watcher, two_species):
    """A form sent without JavaScript has no per-photo selects: the sighting's species is each photo's."""
    _, dolphin = two_species
    response = _post(client, dolphin, [upload("a.jpg", jpeg_bytes(seed=4)), upload("b.jpg", jpeg_bytes(seed=5))])
    assert response.status_code == 302
    assert list(Photo.objects.values_list("species", flat=True)) == [dolphin.pk, dolphin.pk]
    assert not Photo.objects.filter(suggested_species__isnull=False).exists()
    assert not Photo.objects.filter(species_confidence__isnull=False).exists()


def test_left_on_suggestion_without_classifier_is_the_sightings_species(client, watcher, two_species):
    humpback, _ = two_species
    assert _post(client, humpback, [upload("a.jpg", jpeg_bytes(seed=6))], ["suggested"]).status_code == 302
    assert Photo.objects.get().species == humpback


def test_a_bad_file_keeps_the_next_photos_choice_in_line(client, watcher, two_species):
    """Choices follow the files' order, also when a file before them is refused."""
    humpback, dolphin = two_species
    photos = [upload("bad.jpg", b"not a photo at all"), upload("fin.jpg", jpeg_bytes(seed=7))]
    assert _post(client, humpback, photos, ["unknown", str(dolphin.pk)]).status_code == 302
    assert Photo.objects.get().species == dolphin


def test_a_species_not_in_the_list_falls_back_with_a_notice(client, watcher, two_species):
    humpback, _ = two_species
    response = _post(client, humpback, [upload("a.jpg", jpeg_bytes(seed=8))], ["99999"])
    assert response.status_code == 302
    assert Photo.objects.get().species == humpback
    notices = [str(m) for m in response.wsgi_request._messages]
    assert any("species was not in our list" in m for m in notices)


def test_form_offers_unknown_species_and_no_suggestion_without_a_classifier(client, watcher, two_species):
    html = client.get(reverse("submissions:submit")).content.decode()
    assert 'id="photo-species-template"' in html and 'value="unknown"' in html and "Unknown species" in html
    assert "Common bottlenose dolphin" in html
    assert "data-species-url" not in html and "Suggested" not in html


def test_species_endpoint_needs_a_signed_in_post(client):
    url = reverse("submissions:species")
    assert client.post(url, {"photo": upload("a.jpg", jpeg_bytes())}).status_code == 302  # to sign-in


def test_species_endpoint_without_classifier_and_with_bad_files(client, watcher, two_species):
    url = reverse("submissions:species")
    assert client.get(url).status_code == 405
    assert client.post(url, {}).status_code == 400
    bad = client.post(url, {"photo": upload("notes.txt", b"hello", "text/plain")})
    assert bad.status_code == 400 and ".txt" in bad.json()["error"]
    broken = client.post(url, {"photo": upload("a.jpg", jpeg_bytes()[:200])})
    assert broken.status_code == 400 and broken.json()["error"]
    assert client.post(url, {"photo": upload("a.jpg", jpeg_bytes())}).json() == {"available": False}


def test_species_endpoint_is_rate_limited_per_user(client, watcher, settings):
    settings.SPECIES_READS_PER_HOUR = 2
    url = reverse("submissions:species")
    for _ in range(2):
        assert client.post(url, {"photo": upload("a.jpg", jpeg_bytes())}).status_code == 200
    response = client.post(url, {"photo": upload("a.jpg", jpeg_bytes())})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0 and "species" in response.json()["error"]


def test_a_photo_left_on_an_unsure_suggestion_is_unknown_species(two_species):
    """Below the classifier's threshold its species is None: the photo goes to review as unknown species,
    never into the humpback gallery because the sighting said humpback."""
    humpback, dolphin = two_species
    unsure = Suggestion(species=None, best=humpback, probability=0.41)
    sure = Suggestion(species=dolphin, best=dolphin, probability=0.97)
    assert services.photo_species(services.SUGGESTED, unsure, humpback) is None
    assert services.photo_species(services.SUGGESTED, sure, humpback) == dolphin
    assert services.photo_species(humpback, sure, dolphin) == humpback  # the watcher's correction wins
    assert services.photo_species(services.UNKNOWN, sure, humpback) is None
    assert services.photo_species(None, sure, humpback) == humpback  # no select: the sighting's
    assert unsure.as_json() == {
        "species": None,
        "species_id": None,
        "label": "Unknown species",
        "probability": 0.41,
        "best": {"species": "HW", "label": "Humpback whale"},
    }


# ------------------------------------------------------------------ with a real species classifier (ml.species)


@pytest.fixture
def classifier(tmp_path, settings, two_species):
    import ml.species as ml_species
    from ml.synth import generate_dataset
    from ml.synth_fins import generate_fin_dataset

    generate_dataset(str(tmp_path / "flukes"), individuals=4, photos=4, seed=1, progress=False)
    generate_fin_dataset(str(tmp_path / "fins"), individuals=4, photos=4, seed=2, progress=False)
    data = {
        "humpback_fluke": sorted((tmp_path / "flukes" / "images").glob("*.jpg")),
        "dolphin_fin": sorted((tmp_path / "fins" / "images").glob("*.jpg")),
    }
    ml_species.train_species_classifier(data, tmp_path / "species", features="thumbnail")  # weight-free, fast
    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "species")
    return ml_species.SpeciesClassifier.load(tmp_path / "species"), data


def _expected(model, data: bytes, two_species):
    from ml.images import load_image

    guess = model.predict(load_image(data))
    by_profile = {s.profile: s for s in two_species}
    best = max(guess.probabilities, key=guess.probabilities.get)
    return by_profile.get(guess.profile), by_profile[best], guess.probabilities[best]


def test_endpoint_answers_what_the_classifier_says(client, watcher, classifier, two_species):
    model, data = classifier
    for path in (data["humpback_fluke"][0], data["dolphin_fin"][0]):
        species, best, probability = _expected(model, path.read_bytes(), two_species)
        answer = client.post(reverse("submissions:species"), {"photo": upload(path.name, path.read_bytes())}).json()
        assert answer["available"] is True
        assert answer["species"] == (species.code if species else None)
        assert answer["best"]["species"] == best.code and answer["probability"] == pytest.approx(probability, abs=1e-3)
    assert 'data-species-url="' in client.get(reverse("submissions:submit")).content.decode()


def test_upload_stores_the_choice_beside_the_suggestion(client, watcher, classifier, two_species):
    model, data = classifier
    humpback, dolphin = two_species
    fluke, fin = data["humpback_fluke"][1], data["dolphin_fin"][1]
    photos = [upload("fluke.jpg", fluke.read_bytes()), upload("fin.jpg", fin.read_bytes())]
    assert _post(client, humpback, photos, ["suggested", str(humpback.pk)]).status_code == 302
    stored = {p.original_filename: p for p in Photo.objects.all()}
    species, best, probability = _expected(model, fluke.read_bytes(), two_species)
    assert stored["fluke.jpg"].species == species  # left on the suggestion (None when unsure)
    assert stored["fluke.jpg"].suggested_species == best
    assert stored["fluke.jpg"].species_confidence == pytest.approx(probability, abs=1e-6)
    _, fin_best, _ = _expected(model, fin.read_bytes(), two_species)
    assert stored["fin.jpg"].species == humpback  # the watcher's choice, whatever the classifier said
    assert stored["fin.jpg"].suggested_species == fin_best
