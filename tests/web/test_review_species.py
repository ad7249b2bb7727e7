"""Issue 16 at review: each photo shows its own species and, when it differs, the classifier's suggestion with its
probability; a matched photo's species can still be corrected; the queue lists and filters by the photo's species."""

import pytest
from django.urls import reverse

from submissions.models import Photo
from tests.factories import (
    ModelVersionFactory,
    PhotoFactory,
    SightingFactory,
    SpeciesFactory,
    photo_the_classifier_disputes,
)

pytestmark = pytest.mark.django_db


def test_the_page_shows_the_photos_species_and_the_classifiers_other_guess(client, moderator):
    photo, humpback, _ = photo_the_classifier_disputes()
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "<dt>Species</dt><dd>Humpback whale" in page
    assert "(classifier: Bottlenose dolphin, 91%)" in page
    assert 'id="species-fix"' in page and reverse("identification:correct_species", args=[photo.pk]) in page

    agreed = PhotoFactory(
        sighting=photo.sighting,
        status=Photo.Status.AWAITING_REVIEW,
        model_version=photo.model_version,
        suggested_species=humpback,
        species_confidence=0.97,
    )
    assert "classifier:" not in client.get(reverse("identification:review_photo", args=[agreed.pk])).content.decode()


def test_the_queue_lists_and_filters_each_photos_own_species(client, moderator):
    humpback = SpeciesFactory()
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    sighting = SightingFactory(species=humpback)  # one sighting, a fluke, a fin and a photo of unknown species
    fluke = PhotoFactory(sighting=sighting, status=Photo.Status.AWAITING_REVIEW)
    fin = PhotoFactory(sighting=sighting, species=dolphin, status=Photo.Status.AWAITING_REVIEW)
    unknown = PhotoFactory(sighting=sighting, species=None, status=Photo.Status.AWAITING_REVIEW)
    page = client.get(reverse("identification:review_queue")).content.decode()
    assert "<td>Bottlenose dolphin</td>" in page and "<td>unknown species</td>" in page
    filtered = client.get(reverse("identification:review_queue"), {"species": dolphin.pk}).content.decode()
    ids = {p.pk: reverse("identification:review_photo", args=[p.pk]) for p in (fluke, fin, unknown)}
    assert ids[fin.pk] in filtered and ids[fluke.pk] not in filtered and ids[unknown.pk] not in filtered


def test_the_matched_points_are_drawn_the_way_the_versions_folder_verifies(tmp_path, settings):
    """The review page's keypoint lines use the matching of the profile the version's folder was trained for (its
    config.json), as the worker ranked with it; a folder from before profiles is a humpback fluke's."""
    import json

    from identification.review.evidence import _matching
    from ml.profiles import DEFAULT_MATCHING, SEAL_FACE

    settings.ML_ROOT = str(tmp_path)
    for name, config in {"seal": {"profile": "seal_face"}, "fluke": {"profile": "humpback_fluke"}, "old": None}.items():
        (tmp_path / name).mkdir()
        if config is not None:
            (tmp_path / name / "config.json").write_text(json.dumps(config))
    humpback = SpeciesFactory()  # the species row says humpback; the seal folder still decides for its version
    assert _matching(ModelVersionFactory(species=humpback, artifact_dir="seal")) == SEAL_FACE.local_matching
    assert SEAL_FACE.local_matching != DEFAULT_MATCHING
    assert _matching(ModelVersionFactory(species=humpback, artifact_dir="fluke")) == DEFAULT_MATCHING
    assert _matching(ModelVersionFactory(species=humpback, artifact_dir="old")) == DEFAULT_MATCHING
