"""Issue 16 at review: each photo shows its own species and, when it differs, the classifier's suggestion with its
probability; a matched photo's species can still be corrected; the queue lists and filters by the photo's species."""

import pytest
from django.urls import reverse

from submissions.models import Photo
from tests.factories import ModelVersionFactory, PhotoFactory, SightingFactory, SpeciesFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_species():
    humpback = SpeciesFactory()
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    version = ModelVersionFactory(is_active=True, species=humpback)
    return humpback, dolphin, version


def test_the_page_shows_the_photos_species_and_the_classifiers_other_guess(client, moderator, two_species):
    humpback, dolphin, version = two_species
    photo = PhotoFactory(
        sighting=SightingFactory(species=humpback),
        status=Photo.Status.AWAITING_REVIEW,
        model_version=version,
        suggested_species=dolphin,
        species_confidence=0.91,
    )
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "<dt>Species</dt><dd>Humpback whale" in page
    assert "(classifier: Bottlenose dolphin, 91%)" in page
    assert 'id="species-fix"' in page and reverse("identification:correct_species", args=[photo.pk]) in page

    agreed = PhotoFactory(
        sighting=photo.sighting,
        status=Photo.Status.AWAITING_REVIEW,
        model_version=version,
        suggested_species=humpback,
        species_confidence=0.97,
    )
    assert "classifier:" not in client.get(reverse("identification:review_photo", args=[agreed.pk])).content.decode()


def test_the_queue_lists_and_filters_each_photos_own_species(client, moderator, two_species):
    humpback, dolphin, _ = two_species
    sighting = SightingFactory(species=humpback)  # one sighting, a fluke, a fin and a photo of unknown species
    fluke = PhotoFactory(sighting=sighting, status=Photo.Status.AWAITING_REVIEW)
    fin = PhotoFactory(sighting=sighting, species=dolphin, status=Photo.Status.AWAITING_REVIEW)
    unknown = PhotoFactory(sighting=sighting, species=None, status=Photo.Status.AWAITING_REVIEW)
    page = client.get(reverse("identification:review_queue")).content.decode()
    assert "<td>Bottlenose dolphin</td>" in page and "<td>unknown species</td>" in page
    filtered = client.get(reverse("identification:review_queue"), {"species": dolphin.pk}).content.decode()
    ids = {p.pk: reverse("identification:review_photo", args=[p.pk]) for p in (fluke, fin, unknown)}
    assert ids[fin.pk] in filtered and ids[fluke.pk] not in filtered and ids[unknown.pk] not in filtered
