"""What the public maps show: sightings as GeoJSON, a whale's track, and the one rule for public positions.

The rule (``public_coordinate``, also behind the ``public_coordinate`` template filter): every position that a
public page or endpoint gives is rounded to ``PUBLIC_COORDINATE_DECIMALS`` (1 = 0.1°, about 11 km). A sighting not
confirmed yet (its photos still in the pipeline or awaiting review) is on the sightings map too, marked
unconfirmed, with neither its place name nor its photos: a watcher's exact spot is never public before a
moderator has looked, and not after either. Moderators and administrators get finer positions only in the
research exports (``research.common.coordinate_decimals``).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from submissions.models import Photo

from .models import Individual

UNCONFIRMED_STATUSES = (*Photo.PENDING_STATUSES, Photo.Status.AWAITING_REVIEW)


def public_coordinate(value) -> float | None:
    """``value`` (degrees) rounded to ``PUBLIC_COORDINATE_DECIMALS``; None stays None."""
    if value is None or value == "":
        return None
    return round(float(value), int(settings.PUBLIC_COORDINATE_DECIMALS))


def public_photos(sightings):
    """The public photos of ``sightings`` (a Sighting QuerySet, already narrowed by the sightings page's
    filter): in the gallery, or still on their way to review."""
    return Photo.objects.filter(
        Q(status__in=Photo.GALLERY_STATUSES, individual__isnull=False) | Q(status__in=UNCONFIRMED_STATUSES),
        sighting__in=sightings.values("pk"),
    )


def sightings_geojson(sightings) -> dict:
    """One GeoJSON point per sighting of ``sightings`` with a position and a public photo, confirmed (with
    its whales) or not, in one query.

    Properties are short on purpose (the map of 100k sightings is one response): ``d`` the date,
    ``c`` confirmed, ``w`` the catalogue ids, ``p`` the place name (confirmed sightings only)."""
    rows = (
        public_photos(sightings)
        .filter(sighting__latitude__isnull=False, sighting__longitude__isnull=False)
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
    sightings: dict[int, dict] = {}
    for sid, lat, lon, when, place, status, whale in rows.iterator(chunk_size=5000):
        s = sightings.get(sid)
        if s is None:
            s = sightings[sid] = {"lat": lat, "lon": lon, "d": when.date().isoformat(), "w": [], "p": place}
        if status in Photo.GALLERY_STATUSES and whale and whale not in s["w"]:
            s["w"].append(whale)
    return {"type": "FeatureCollection", "features": [_sighting_feature(s) for s in sightings.values()]}


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
