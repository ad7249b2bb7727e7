"""Species is checked (issue 12, item 4), through a REAL Celery worker: a photo of a sighting filed as
another species is never ranked against the humpback catalogue, cannot be confirmed as a humpback,
and the moderator sees why; correcting the species ranks it."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from identification.models import Decision, Embedding, Suggestion
from identification.review.curation import correct_species
from identification.review.decisions import confirm_match
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.conftest import wait_for
from tests.factories import SpeciesFactory, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_another_species_is_not_matched_until_a_moderator_corrects_it(client, active_model, celery_worker):
    sperm = SpeciesFactory(code="SW", common_name="Sperm whale", scientific_name="Physeter macrocephalus")
    label = next(iter(active_model.held_out))
    path = active_model.held_out[label]
    photo = submit_sighting(
        user=active_model.users["watcher"],
        species=sperm,
        observed_at=timezone.now(),
        files=[upload(path.name, path.read_bytes())],
    ).accepted[0]

    def ranked(count):
        def check():
            photo.refresh_from_db()
            return (
                photo.status == Photo.Status.AWAITING_REVIEW
                and Embedding.objects.filter(photo=photo).exists()
                and Suggestion.objects.filter(photo=photo).count() == count
            )

        return check

    wait_for(ranked(0), timeout=120, message="the worker to process the sperm-whale photo")
    assert photo.status == Photo.Status.AWAITING_REVIEW, photo.failure_reason
    assert not Suggestion.objects.filter(photo=photo).exists()  # never ranked against the humpbacks
    moderator = active_model.users["moderator"]
    humpback_whale = active_model.individuals[label]
    with pytest.raises(ValidationError, match="filed as Sperm whale"):
        confirm_match(photo=photo, moderator=moderator, individual=humpback_whale)

    client.force_login(moderator)
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert 'id="species-warning"' in page and "filed as <strong>Sperm whale</strong>" in page
    assert reverse("identification:correct_species", args=[photo.pk]) in page

    response = client.post(
        reverse("identification:correct_species", args=[photo.pk]), {"species": active_model.species.pk}
    )
    assert response.status_code == 302
    photo.refresh_from_db()
    assert photo.sighting.species == active_model.species
    assert (
        Decision.objects.filter(photo=photo, action=Decision.Action.SPECIES, details={"old": "SW", "new": "HW"}).count()
        == 1
    )
    wait_for(ranked(6), timeout=120, message="the worker to rank the photo as a humpback")
    assert "species-warning" not in client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    confirm_match(photo=photo, moderator=moderator, individual=humpback_whale)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CONFIRMED and photo.individual == humpback_whale
    with pytest.raises(ValidationError, match="awaiting review"):
        correct_species(photo=photo, moderator=moderator, species=sperm)
