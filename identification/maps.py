"""What the public maps show: sightings as GeoJSON, a whale's track, and the one rule for public positions.

The rule (``public_coordinate``, also behind the ``public_coordinate`` template filter): every position that a
public page or endpoint gives is rounded to ``PUBLIC_COORDINATE_DECIMALS`` (1 = 0.1°, about 11 km). A sighting not
confirmed yet (its photos still in the pipeline or awaiting review) is on the sightings map too, marked
unconfirmed, with neither its place name nor its photos: a watcher's exact spot is never public before a
moderator has looked, and not after either. Moderators and administrators get finer positions only in the
research exports (``research.common.coordinate_decimals``).

Past ``MAP_POINT_LIMIT`` sightings the sightings map is one feature per cell of that same precision with its
counts (``sighting_cells``, grouped in SQL): 100k sightings are a few thousand cells, and a cell's position is
the public one of every sighting in it, so grouping reveals nothing the points would not.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Floor

from submissions.models import Photo

from .models import Individual

UNCONFIRMED_STATUSES = (*Photo.PENDING_STATUSES, Photo.Status.AWAITING_REVIEW)
CONFIRMED = Q(status__in=Photo.GALLERY_STATUSES, individual__isnull=False)


def public_coordinate(value) -> float | None:
    """``value`` (degrees) rounded to ``PUBLIC_COORDINATE_DECIMALS``; None stays None."""
    if value is None or value == "":
        return None
    return round(float(value), int(settings.PUBLIC_COORDINATE_DECIMALS))


def public_photos(sightings):
    """The public photos of ``sightings`` (a Sighting QuerySet, already narrowed by the sightings page's
    filter): in the gallery, or still on their way to review."""
    return Photo.objects.filter(
        CONFIRMED | Q(status__in=UNCONFIRMED_STATUSES),
        sighting__in=sightings.values("pk"),
    )


def seen_coordinate(path: str, decimals: int):
    """The coordinate at ``path`` rounded in SQL to ``decimals`` (half up: ``floor(x * 10^d + 0.5) / 10^d``, in
    floating point on PostgreSQL and SQLite alike; a numeric cast and round costs three times as much over 100k
    rows). The sightings filter's box compares with it and the map's cells group by it, so a cell holds exactly
    the sightings that a box around its centre finds."""
    factor = Value(float(10**decimals))
    return Floor(F(path) * factor + Value(0.5)) / factor


def _positioned(sightings):
    return public_photos(sightings).filter(sighting__latitude__isnull=False, sighting__longitude__isnull=False)


def sighting_cells(sightings):
    """``sightings`` with a position and a public photo, grouped in SQL by their public position (a cell of
    ``PUBLIC_COORDINATE_DECIMALS``, 0.1°): ``lat``, ``lon``, ``n`` sightings, ``confirmed`` of them with a whale
    named, ``whales`` distinct whales. One row per cell, whatever the number of sightings."""
    decimals = int(settings.PUBLIC_COORDINATE_DECIMALS)
    return (
        _positioned(sightings)
        .annotate(
            lat=seen_coordinate("sighting__latitude", decimals), lon=seen_coordinate("sighting__longitude", decimals)
        )
        .values("lat", "lon")
        .annotate(
            n=Count("sighting_id", distinct=True),
            confirmed=Count("sighting_id", distinct=True, filter=CONFIRMED),
            whales=Count("individual_id", distinct=True, filter=CONFIRMED),
        )
        .order_by("lat", "lon")
    )


def sightings_geojson(sightings, limit: int | None = None) -> dict:
    """The sightings map of ``sightings``: one point per sighting (``sighting_points``) when there are at most
    ``limit`` (``MAP_POINT_LIMIT``) of them, else one point per cell with its counts (``sighting_cells``): the
    whole map of 100k sightings is a few thousand cells instead of 16 MB. Either way a position is the public
    one (0.1°), never a sighting's own. ``cells`` and ``total`` (sightings) tell the map which it got."""
    limit = int(settings.MAP_POINT_LIMIT) if limit is None else limit
    # at most ``limit`` photos means at most ``limit`` sightings: a LIMIT query, no need to group them all
    if _positioned(sightings).values("pk")[: limit + 1].count() > limit:
        cells = list(sighting_cells(sightings))
        total = sum(c["n"] for c in cells)
        if total > limit:
            features = [_cell_feature(c) for c in cells]
            return {"type": "FeatureCollection", "cells": True, "total": total, "features": features}
    features = sighting_points(sightings)
    return {"type": "FeatureCollection", "cells": False, "total": len(features), "features": features}


def _cell_feature(cell: dict) -> dict:
    point = [public_coordinate(cell["lon"]), public_coordinate(cell["lat"])]
    props = {"n": cell["n"], "nc": cell["confirmed"], "nw": cell["whales"]}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": point}, "properties": props}


def sighting_points(sightings) -> list[dict]:
    """One GeoJSON point per sighting of ``sightings`` with a position and a public photo, confirmed (with
    its whales) or not, in one query.

    Properties are short on purpose: ``d`` the date, ``c`` confirmed, ``w`` the catalogue ids, ``p`` the place
    name (confirmed sightings only)."""
    rows = (
        _positioned(sightings)
        .order_by("sighting_id")
        .values_list(
            "sighting_id",
            "sighting__latitude",
            "sighting__longitude",
            "sighting__observed_at",
            "sighting__place_name",
            "status",
            "individual__catalogue_id",
        )
    )
    points: dict[int, dict] = {}
    for sid, lat, lon, when, place, status, whale in rows.iterator(chunk_size=5000):
        s = points.get(sid)
        if s is None:
            s = points[sid] = {"lat": lat, "lon": lon, "d": when.date().isoformat(), "w": [], "p": place}
        if status in Photo.GALLERY_STATUSES and whale and whale not in s["w"]:
            s["w"].append(whale)
    return [_sighting_feature(s) for s in points.values()]


def _sighting_feature(s: dict) -> dict:
    confirmed = bool(s["w"])
    props = {"d": s["d"], "c": confirmed, "w": s["w"]}
    if confirmed and s["p"]:
        props["p"] = s["p"]
    point = [public_coordinate(s["lon"]), public_coordinate(s["lat"])]
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": point}, "properties": props}


def track_geojson(individual: Individual, thumb_url=None) -> dict:
    """The whale's confirmed sightings in time order, each a point (date, place, a photo), and the line
    joining them. ``thumb_url(photo)`` gives a photo's address (the view's storage URL by default)."""
    photos = (
        Photo.objects.in_gallery()
        .filter(individual=individual)
        .select_related("sighting")
        .order_by("sighting__observed_at", "sighting_id", "pk")
    )
    thumb_url = thumb_url or _photo_url
    points: dict[int, dict] = {}
    for photo in photos:
        s = photo.sighting
        if s.latitude is None or s.longitude is None or s.pk in points:
            continue
        points[s.pk] = {
            "type": "Feature",
            "geometry": {
                "type": "Point",
                "coordinates": [public_coordinate(s.longitude), public_coordinate(s.latitude)],
            },
            "properties": {
                "n": len(points) + 1,
                "date": s.observed_at.date().isoformat(),
                "place": s.place_name,
                "photo": thumb_url(photo),
            },
        }
    features = list(points.values())
    if len(features) > 1:
        line = [f["geometry"]["coordinates"] for f in features]
        features.append({"type": "Feature", "geometry": {"type": "LineString", "coordinates": line}, "properties": {}})
    return {"type": "FeatureCollection", "features": features}


def _photo_url(photo) -> str:
    image = photo.crop or photo.image
    return image.url if image else ""
