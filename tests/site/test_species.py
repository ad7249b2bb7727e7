"""Species is checked (issues 12 and 16), through a REAL Celery worker: a photo of another species is never
ranked against the humpback catalogue, cannot be confirmed as a humpback, and the moderator sees why;
correcting the photo's species ranks it within its new species' catalogue."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from identification.models import Decision, Embedding, Individual, Suggestion
from identification.review.curation import correct_species
from identification.review.decisions import confirm_match, name_new_individual
from submissions.models import Photo
from submissions.services import submit_sighting
from tests.conftest import wait_for
from tests.factories import SpeciesFactory, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_another_species_is_not_matched_until_a_moderator_corrects_it(client, active_model, celery_worker):
    sperm = SpeciesFactory(code="SW", common_name="Sperm whale", scientific_name="Physeter macrocephalus", profile="")
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

    def reviewable():
        photo.refresh_from_db()
        return photo.status == Photo.Status.AWAITING_REVIEW

    wait_for(reviewable, timeout=120, message="the worker to pass the sperm-whale photo to review")
    assert photo.species == sperm and photo.model_version is None
    assert not Embedding.objects.filter(photo=photo).exists()  # no model of its species: never embedded
    assert not Suggestion.objects.filter(photo=photo).exists()  # never ranked against the humpbacks
    moderator = active_model.users["moderator"]
    humpback_whale = active_model.individuals[label]
    with pytest.raises(ValidationError, match="filed as Sperm whale"):
        confirm_match(photo=photo, moderator=moderator, individual=humpback_whale)

    client.force_login(moderator)
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert 'id="species-warning"' in page and "Sperm whale has no identification profile" in page
    assert reverse("identification:correct_species", args=[photo.pk]) in page

    response = client.post(
        reverse("identification:correct_species", args=[photo.pk]), {"species": active_model.species.pk}
    )
    assert response.status_code == 302
    photo.refresh_from_db()
    assert photo.species == active_model.species
    assert photo.sighting.species == active_model.species  # its only photo: the sighting follows
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


def _fin_catalogue(active_model, demo_model, demo_identifier, label):
    """A second species with its own active model and a one-whale gallery: a gallery photo of ``label``."""
    from django.core.files.base import ContentFile

    from ml.images import compute_hashes, load_image
    from submissions.models import Sighting
    from tests.conftest import register_model

    fins = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", scientific_name="Tursiops truncatus")
    fins.profile = "dolphin_fin"
    fins.save()
    version = register_model(demo_model, species=fins, is_active=True, gallery_ready=True)
    dolphin = Individual.objects.create(catalogue_id="TT-0001", species=fins)
    data = active_model.gallery[label][0].image.read()
    h = compute_hashes(data)
    sighting = Sighting.objects.create(species=fins, observed_at=timezone.now())
    photo = Photo(sighting=sighting, species=fins, sha256=h.sha256, phash=h.phash, status=Photo.Status.CONFIRMED)
    photo.individual = dolphin
    photo.image.save("fin.jpg", ContentFile(data), save=False)
    photo.save()
    vector = demo_identifier.embed([demo_identifier.prepare(load_image(data)).crop])[0]
    Embedding.objects.create(photo=photo, model_version=version, vector=vector.astype("float32").tobytes())
    return fins, dolphin


def test_each_species_is_ranked_only_against_its_own_catalogue(
    active_model, demo_model, demo_identifier, celery_worker
):
    label, other = list(active_model.held_out)[:2]
    fins, dolphin = _fin_catalogue(active_model, demo_model, demo_identifier, label)
    # a photo filed as a fin meets only the fin gallery, one filed as a fluke only the humpbacks
    as_fin, as_fluke = (
        submit_sighting(
            user=active_model.users["watcher"],
            species=species,
            observed_at=timezone.now(),
            files=[upload(path.name, path.read_bytes())],
        ).accepted[0]
        for species, path in (
            (fins, active_model.held_out[label]),
            (active_model.species, active_model.held_out[other]),
        )
    )
    for photo in (as_fin, as_fluke):
        wait_for(
            lambda p=photo: Photo.objects.filter(pk=p.pk, status=Photo.Status.AWAITING_REVIEW).exists(),
            timeout=120,
            message="the worker to rank both photos",
        )
    fin_whales = set(Suggestion.objects.filter(photo=as_fin).values_list("individual__species__code", flat=True))
    fluke_whales = set(Suggestion.objects.filter(photo=as_fluke).values_list("individual__species__code", flat=True))
    assert fin_whales == {"TT", None}  # TT-0001 and "new individual"
    assert fluke_whales - {None} == {"HW"} and Suggestion.objects.filter(photo=as_fluke).count() == 6
    assert Photo.objects.get(pk=as_fin.pk).model_version.species == fins
    with pytest.raises(ValidationError, match="filed as Humpback"):
        confirm_match(photo=as_fluke, moderator=active_model.users["moderator"], individual=dolphin)


def test_a_species_without_a_model_waits_for_review_and_says_why(client, active_model, celery_worker):
    fins = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", scientific_name="Tursiops truncatus")
    fins.profile = "dolphin_fin"
    fins.save()
    path = next(iter(active_model.held_out.values()))
    photo = submit_sighting(
        user=active_model.users["watcher"],
        species=fins,
        observed_at=timezone.now(),
        files=[upload(path.name, path.read_bytes())],
    ).accepted[0]
    wait_for(
        lambda: Photo.objects.filter(pk=photo.pk, status=Photo.Status.AWAITING_REVIEW).exists(),
        timeout=120,
        message="the worker to pass the fin photo to review",
    )
    assert not Suggestion.objects.filter(photo=photo).exists()
    client.force_login(active_model.users["moderator"])
    page = client.get(reverse("identification:review_photo", args=[photo.pk])).content.decode()
    assert "There is no identification model for Bottlenose dolphin yet" in page
    assert "data-rematching" not in page  # it is not "being matched again": nothing will match it until a model
    individual = name_new_individual(photo=photo, moderator=active_model.users["moderator"])
    assert individual.catalogue_id == "TT-0001" and individual.species == fins
