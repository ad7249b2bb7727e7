"""Issue 16: a photo of unknown species (the classifier was unsure, the watcher did not say) goes to review with no
suggestions, is never forced into the humpback gallery, cannot be confirmed or named until a moderator sets its
species, and once set is ranked within that species' catalogue. Real pipeline (in this process) and model."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import reverse

from identification.models import Embedding, Suggestion
from identification.pipeline.process import process_photo, rerank_photo
from identification.review.curation import correct_species
from identification.review.decisions import confirm_match, name_new_individual
from submissions.models import Photo
from tests.factories import PhotoFactory, SightingFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_an_unknown_species_waits_unranked_until_a_moderator_sets_it(client, active_model):
    label = next(iter(active_model.held_out))
    path = active_model.held_out[label]
    photo = PhotoFactory(
        sighting=SightingFactory(species=active_model.species),  # filed under the humpback, the photo unknown
        species=None,
        image=ContentFile(path.read_bytes(), name=path.name),
        width=800,
        height=500,
    )
    assert process_photo(photo.pk) == "no model"
    photo.refresh_from_db()
    assert photo.status == Photo.Status.AWAITING_REVIEW and photo.model_version is None
    assert not Suggestion.objects.filter(photo=photo).exists() and not Embedding.objects.filter(photo=photo).exists()

    moderator = active_model.users["moderator"]
    client.force_login(moderator)
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "The species of this photo is unknown" in page and 'id="species-warning"' in page
    assert "Matching again" not in page  # unmatched, not being re-matched
    with pytest.raises(ValidationError, match="species is unknown"):
        confirm_match(photo=photo, moderator=moderator, individual=active_model.individuals[label])
    with pytest.raises(ValidationError, match="species is unknown"):
        name_new_individual(photo=photo, moderator=moderator)

    correct_species(photo=photo, moderator=moderator, species=active_model.species)
    assert rerank_photo(photo.pk) == "ok"  # the task correct_species queued, run here
    photo.refresh_from_db()
    assert photo.species == active_model.species and photo.model_version == active_model.version
    ranked = Suggestion.objects.filter(photo=photo, individual__isnull=False)
    assert ranked.exists() and set(ranked.values_list("individual__species", flat=True)) == {active_model.species.pk}
