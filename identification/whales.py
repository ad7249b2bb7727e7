"""The whale page a watcher shares: its best photo, the facts, and a timeline of its sightings with credits.

Only the gallery counts (confirmed photos and the photo that named a new whale): a photo awaiting review is
not yet evidence that this whale was there. Photographers are credited as the research exports credit them
(``research.common.photographer``: the observer named on the sighting, else the uploader, never an e-mail
address), with the licence each photo was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F
from django.http import Http404

from submissions.models import Photo, Sighting

from .models import Individual
from .research.common import photographer


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
    timeline: list[TimelineEntry]


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


def whale_profile(individual: Individual) -> WhaleProfile:
    """Everything the whale page shows, in a fixed number of queries (the timeline is one query)."""
    photos = list(
        gallery_photos(individual)
        .select_related("sighting__submitted_by__profile")
        .order_by("-sighting__observed_at", "-sighting_id", "pk")
    )
    timeline: dict[int, TimelineEntry] = {}
    contributors: set = set()
    for photo in photos:
        s = photo.sighting
        entry = timeline.get(s.pk)
        if entry is None:
            entry = timeline[s.pk] = TimelineEntry(sighting=s, photographer=photographer(s))
            contributors.add(s.submitted_by_id or ("name", entry.photographer))
        entry.photos.append(photo)
    seen = [e.sighting.observed_at for e in timeline.values()]
    best = best_photo(individual)
    if best is not None:
        best.credit = photographer(best.sighting)
    return WhaleProfile(
        individual=individual,
        best_photo=best,
        first_seen=min(seen, default=None),
        last_seen=max(seen, default=None),
        sightings=len(timeline),
        photos=len(photos),
        contributors=len(contributors),
        timeline=list(timeline.values()),
    )


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
