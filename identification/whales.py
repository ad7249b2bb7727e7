"""The whale page a watcher shares: its best photo, the facts, and a timeline of its sightings with credits.

Only the gallery counts (confirmed photos and the photo that named a new whale): a photo awaiting review is
not yet evidence that this whale was there. Photographers are credited as the research exports credit them
(``research.common.photographer``: the observer named on the sighting, else the uploader, never an e-mail
address), with the licence each photo was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Max, Min
from django.http import Http404

from submissions.models import Photo, Sighting

from .models import Individual
from .research.common import photographer

TIMELINE_PAGE = 20  # sightings per page of a whale's timeline: a whale seen 500 times is 25 short pages


@dataclass
class TimelineEntry:
    sighting: Sighting
    photographer: str
    photos: list[Photo] = field(default_factory=list)


@dataclass
class WhaleProfile:
    individual: Individual
    best_photo: Photo | None
    first_seen: datetime | None
    last_seen: datetime | None
    sightings: int
    photos: int
    contributors: int
    timeline: list[TimelineEntry]  # one page of it
    page: Page | None = None


def gallery_photos(individual: Individual):
    return Photo.objects.in_gallery().filter(individual=individual)


def best_photo(individual: Individual) -> Photo | None:
    """The photo to put on top and in the share preview: a fluke box the localizer was sure of (or a
    moderator drew), then the most confident box, then the most pixels, then the newest sighting."""
    return (
        gallery_photos(individual)
        .select_related("sighting__submitted_by__profile")
        .order_by(
            "box_flagged",
            F("box_confidence").desc(nulls_last=True),
            F("width").desc(nulls_last=True),
            "-sighting__observed_at",
            "-pk",
        )
        .first()
    )


def whale_sightings(individual: Individual):
    """The sightings with a gallery photo of ``individual``."""
    return Sighting.objects.filter(pk__in=gallery_photos(individual).values("sighting_id"))


def contributors(sightings) -> int:
    """How many people photographed ``sightings``: each uploader once, and for a sighting with no uploader (an
    import) the observer it names, as ``photographer`` credits them."""
    uploaders = sightings.exclude(submitted_by=None).values("submitted_by_id").distinct().count()
    named = {photographer(s) for s in sightings.filter(submitted_by=None).only("observer_name", "submitted_by")}
    return uploaders + len(named)


def whale_profile(individual: Individual, page=None) -> WhaleProfile:
    """Everything the whale page shows, in a fixed number of queries whatever the number of its sightings: the
    facts are aggregates, and the timeline is one page (``TIMELINE_PAGE`` sightings, newest first; ``page`` as
    ``Paginator.get_page`` reads it: a bad or out-of-range number gives the first or the last page)."""
    sightings = whale_sightings(individual)
    facts = sightings.aggregate(n=Count("pk"), first=Min("observed_at"), last=Max("observed_at"))
    paginator = Paginator(sightings.order_by("-observed_at", "-pk"), TIMELINE_PAGE)
    paginator.count = facts["n"]  # known already: no second COUNT
    timeline_page = paginator.get_page(page)
    best = best_photo(individual)
    if best is not None:
        best.credit = photographer(best.sighting)
    return WhaleProfile(
        individual=individual,
        best_photo=best,
        first_seen=facts["first"],
        last_seen=facts["last"],
        sightings=facts["n"],
        photos=gallery_photos(individual).count(),
        contributors=contributors(sightings),
        timeline=timeline(individual, [s.pk for s in timeline_page]),
        page=timeline_page,
    )


def timeline(individual: Individual, sighting_ids: list[int]) -> list[TimelineEntry]:
    """The timeline entries of these sightings (newest first), each with its gallery photos of the whale, in one
    query."""
    photos = (
        gallery_photos(individual)
        .filter(sighting_id__in=sighting_ids)
        .select_related("sighting__submitted_by__profile")
        .order_by("-sighting__observed_at", "-sighting_id", "pk")
    )
    entries: dict[int, TimelineEntry] = {}
    for photo in photos:
        s = photo.sighting
        entry = entries.get(s.pk)
        if entry is None:
            entry = entries[s.pk] = TimelineEntry(sighting=s, photographer=photographer(s))
        entry.photos.append(photo)
    return list(entries.values())


def share_text(profile: WhaleProfile) -> str:
    """The one line a link preview shows under the title."""
    whale = profile.individual
    name = f"{whale.catalogue_id} “{whale.nickname}”" if whale.nickname else whale.catalogue_id
    if not profile.sightings:
        return f"{whale.species.common_name} {name}: not seen in a confirmed photo yet."
    times = "once" if profile.sightings == 1 else f"{profile.sightings} times"
    first, last = profile.first_seen.year, profile.last_seen.year
    span = f"in {first}" if first == last else f"between {first} and {last}"
    people = "1 contributor" if profile.contributors == 1 else f"{profile.contributors} contributors"
    return f"{whale.species.common_name} {name}: seen {times} {span}, photographed by {people}."


def preview_image(profile: WhaleProfile):
    """The file of the share preview: the best photo's crop (a fluke, no EXIF), else the photo."""
    best = profile.best_photo
    if best is None:
        return None
    return best.crop or best.image or None


def whale_or_404(catalogue_id: str) -> Individual:
    """The whale with this catalogue id (merged ones too: callers follow ``merged_into``), or a 404 whose
    message the 404 page shows. One wording for every page and action that takes a whale id in its URL."""
    individual = Individual.objects.select_related("species", "merged_into").filter(catalogue_id=catalogue_id).first()
    if individual is None:
        raise Http404(f"No whale in the catalogue has the id \u201c{catalogue_id[:40]}\u201d.")
    return individual
