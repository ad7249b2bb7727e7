"""Watcher-facing services: submitting a sighting with its photos, EXIF prefill, a watcher's photos.

Views call these; they raise ``ValidationError`` with a message a watcher can act on.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from ml.errors import ImageRejected, NotAnImage
from identification import jobs
from ml.images import load_image, phash, read_exif

from .models import Photo, Sighting

log = logging.getLogger(__name__)

# File name extensions we accept; the real format is checked from the bytes by ml.load_image.
IMAGE_EXTENSIONS = {"jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "gif", "mpo"}


@dataclass
class UploadOutcome:
    sighting: Sighting | None
    accepted: list[Photo] = field(default_factory=list)
    duplicates: list[Photo] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def _read_upload(f) -> bytes:
    if hasattr(f, "seek"):
        try:
            f.seek(0)
        except (OSError, ValueError):
            pass
    if hasattr(f, "chunks"):
        return b"".join(f.chunks())
    return f.read()


def _check_file(f) -> tuple[str, bytes | None, object, str]:
    """(display name, bytes or None, image or None, error message)."""
    name = os.path.basename(getattr(f, "name", "") or "photo") or "photo"
    size = getattr(f, "size", None)
    if size is not None and size > settings.MAX_UPLOAD_BYTES:
        return name, None, None, (
            f"This file is {_megabytes(size)}, over the {_megabytes(settings.MAX_UPLOAD_BYTES)} limit per photo."
        )
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in IMAGE_EXTENSIONS:
        return name, None, None, NotAnImage.default_message
    data = _read_upload(f)
    if len(data) > settings.MAX_UPLOAD_BYTES:
        return name, None, None, (
            f"This file is {_megabytes(len(data))}, over the {_megabytes(settings.MAX_UPLOAD_BYTES)} limit per photo."
        )
    try:
        image = load_image(data)
    except ImageRejected as exc:
        return name, None, None, str(exc)
    return name, data, image, ""


def submit_sighting(
    *,
    user,
    species,
    observed_at,
    latitude=None,
    longitude=None,
    place_name: str = "",
    observer_name: str = "",
    notes: str = "",
    files=(),
    licence: str = "",
) -> UploadOutcome:
    """Create a sighting with its valid photos and queue them for identification.

    Bad files are reported in ``rejected`` and never stop the good ones. When no file is valid,
    nothing is saved and ``sighting`` is None.
    """
    files = list(files or [])
    if not files:
        raise ValidationError("Please choose at least one photo of the whale's fluke.")
    if len(files) > settings.MAX_PHOTOS_PER_SIGHTING:
        raise ValidationError(
            f"Please upload at most {settings.MAX_PHOTOS_PER_SIGHTING} photos per sighting "
            f"(you chose {len(files)})."
        )
    if latitude is not None and not -90 <= float(latitude) <= 90:
        raise ValidationError("Latitude must be between -90 and 90.")
    if longitude is not None and not -180 <= float(longitude) <= 180:
        raise ValidationError("Longitude must be between -180 and 180.")

    outcome = UploadOutcome(sighting=None)
    checked = []
    for f in files:
        name, data, image, error = _check_file(f)
        if error:
            outcome.rejected.append((name, error))
        else:
            checked.append((name, data, image))
    if not checked:
        return outcome

    with transaction.atomic():
        sighting = Sighting.objects.create(
            species=species,
            observed_at=observed_at,
            latitude=latitude,
            longitude=longitude,
            place_name=place_name or "",
            observer_name=observer_name or "",
            notes=notes or "",
            submitted_by=user if getattr(user, "is_authenticated", False) else None,
        )
        outcome.sighting = sighting
        for name, data, image in checked:
            sha = hashlib.sha256(data).hexdigest()
            original = (
                Photo.objects.filter(sha256=sha, duplicate_of__isnull=True).order_by("created_at", "pk").first()
            )
            photo = Photo(
                sighting=sighting,
                original_filename=name[:255],
                licence=licence or settings.DEFAULT_PHOTO_LICENCE,
                sha256=sha,
                phash=phash(image),
            )
            if original is not None:
                photo.duplicate_of = original
                photo.status = Photo.Status.REJECTED
                photo.reject_reason = "duplicate"
            photo.image.save(name, ContentFile(data), save=False)
            photo.width, photo.height = image.size  # as displayed (EXIF orientation applied)
            photo.save()
            if original is not None:
                outcome.duplicates.append(photo)
            else:
                outcome.accepted.append(photo)
                jobs.enqueue(jobs.PROCESS_PHOTO, photo.pk)
    return outcome


def exif_prefill(file) -> dict:
    """What the sighting form can fill in from a photo's EXIF (each value may be None)."""
    info = read_exif(file)
    if hasattr(file, "seek"):
        try:
            file.seek(0)
        except (OSError, ValueError):
            pass
    return {
        "observed_at": info.taken_at.isoformat() if info.taken_at else None,
        "latitude": info.latitude,
        "longitude": info.longitude,
    }
