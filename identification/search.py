"""The site search: one box for catalogue ids, nicknames, places and contributors. Every answer is a
whale (its page is what a visitor wants), matched by its id or nickname, by a place where a confirmed
photo of it was taken, or by the public name of someone who photographed it. Only the catalogue (photos
in the gallery) is searched, never e-mail addresses, and nothing shows an internal id. Plain
``icontains`` lookups, so SQLite and PostgreSQL answer alike."""

from __future__ import annotations

from django.db.models import Count, Max, Q, Value
from django.db.models.functions import Concat

from submissions.models import Photo

from .models import Individual
from .research.common import display_name, not_an_email

MAX_QUERY = 100
SHOWN_REASONS = 3


def clean_query(q: str) -> str:
    return " ".join((q or "").split())[:MAX_QUERY]


def _by_people(q: str):
    """Gallery photos whose photographer (named on the sighting, or the uploader's full name) matches.
    A query with an @ matches nobody: the search never finds people by address."""
    if "@" in q:
        return Photo.objects.none()
    return (
        Photo.objects.in_gallery()
        .alias(uploader=Concat("sighting__submitted_by__first_name", Value(" "), "sighting__submitted_by__last_name"))
        .filter(Q(sighting__observer_name__icontains=q) | Q(uploader__icontains=q))
    )


def _by_place(q: str):
    return Photo.objects.in_gallery().filter(sighting__place_name__icontains=q)


def search_whales(q: str):
    """Active whales matching ``q`` (see the module docstring), with photo count and last sighting,
    in catalogue-id order. An empty query matches nothing."""
    q = clean_query(q)
    if not q:
        return Individual.objects.none()
    gallery = Q(photos__status__in=Photo.GALLERY_STATUSES)
    matches = (
        Q(catalogue_id__icontains=q)
        | Q(nickname__icontains=q)
        | Q(pk__in=_by_place(q).values("individual_id"))
        | Q(pk__in=_by_people(q).values("individual_id"))
    )
    return (
        Individual.objects.active()
        .filter(matches)
        .select_related("species")
        .annotate(
            photo_count=Count("photos", filter=gallery),
            last_seen=Max("photos__sighting__observed_at", filter=gallery),
        )
        .order_by("catalogue_id")
    )


def reasons(individual, q: str) -> list[str]:
    """Why ``individual`` matched, for its result line: the places and photographers that matched."""
    q = clean_query(q)
    found = []
    if q.lower() in individual.catalogue_id.lower():
        found.append(f"catalogue id {individual.catalogue_id}")
    if individual.nickname and q.lower() in individual.nickname.lower():
        found.append(f"nickname \u201c{individual.nickname}\u201d")
    places = _by_place(q).filter(individual=individual).values_list("sighting__place_name", flat=True)
    found += [f"seen near {p}" for p in sorted(set(places))[:SHOWN_REASONS]]
    people = set()
    for photo in _by_people(q).filter(individual=individual).select_related("sighting__submitted_by")[:50]:
        name = not_an_email(photo.sighting.observer_name) or display_name(photo.sighting.submitted_by)
        if name and q.lower() in name.lower():
            people.add(name)
    found += [f"photographed by {p}" for p in sorted(people)[:SHOWN_REASONS]]
    return found
