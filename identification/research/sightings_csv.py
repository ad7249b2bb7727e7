"""A sightings CSV with every field: one row per photo, whatever its status, with its sighting,
photographer, licence, whale (catalogue id and nickname) and who confirmed it.

Coordinates are written at the precision the viewer is allowed (``ExportOptions.decimals``).
People appear by display name, never by e-mail address.
"""

from __future__ import annotations

import csv
import io

from django.utils import timezone

from .common import (
    CHUNK_ROWS,
    ExportOptions,
    People,
    display_name,
    iso,
    photo_url,
    photographer,
    photos_with_whale,
    round_coordinate,
    rounding_uncertainty_m,
)

COLUMNS = [
    "sighting_id",
    "observed_at",
    "species",
    "scientific_name",
    "scientific_name_id",
    "latitude",
    "longitude",
    "coordinate_uncertainty_m",
    "place_name",
    "photographer",
    "submitted_by",
    "notes",
    "photo_id",
    "photo_url",
    "original_filename",
    "licence",
    "status",
    "reject_reason",
    "catalogue_id",
    "nickname",
    "identified_by",
    "date_identified",
]


def photo_rows(options: ExportOptions):
    """Yield one dict per photo, oldest sighting first."""
    people = People()
    photos = photos_with_whale(options).order_by("sighting__observed_at", "sighting_id", "pk")
    for photo in photos.iterator(chunk_size=CHUNK_ROWS):
        yield row(photo, options, people)


def row(photo, options: ExportOptions, people: People) -> dict:
    s = photo.sighting
    located = s.latitude is not None
    return {
        "sighting_id": s.pk,
        "observed_at": iso(timezone.localtime(s.observed_at)),
        # the photo's own species (blank: unknown); a sighting can hold a fluke and a fin
        "species": photo.species.common_name if photo.species else "",
        "scientific_name": photo.species.scientific_name if photo.species else "",
        "scientific_name_id": photo.species.scientific_name_id if photo.species else "",
        "latitude": round_coordinate(s.latitude, options.decimals),
        "longitude": round_coordinate(s.longitude, options.decimals),
        "coordinate_uncertainty_m": rounding_uncertainty_m(options.decimals) if located else "",
        "place_name": s.place_name,
        "photographer": photographer(s),
        "submitted_by": display_name(s.submitted_by),
        "notes": s.notes,
        "photo_id": photo.pk,
        "photo_url": photo_url(photo),
        "original_filename": photo.original_filename,
        "licence": photo.licence,
        "status": photo.status,
        "reject_reason": photo.reject_reason,
        "catalogue_id": photo.whale_catalogue_id or "",
        "nickname": photo.whale_nickname or "",
        "identified_by": people.name(photo.confirmed_by_id),
        "date_identified": iso(photo.confirmed_at),
    }


def csv_stream(options: ExportOptions):
    """Yield the CSV a few hundred rows at a time."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for n, item in enumerate(photo_rows(options), 1):
        writer.writerow(item)
        if n % 500 == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()
