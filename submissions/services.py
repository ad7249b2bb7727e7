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
from django.core.files.base import ContentFile, File
from django.db import transaction

from identification.pipeline.queue import queue_photo
from ml.errors import ImageRejected, NotAnImage
from ml.images import load_image, phash, read_exif

from . import species_guess
from .models import Photo, Sighting

log = logging.getLogger(__name__)

# File name extensions we accept; the real format is checked from the bytes by ml.load_image.
IMAGE_EXTENSIONS = {"jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "gif", "mpo", "heic", "heif"}


@dataclass
class UploadOutcome:
    sighting: Sighting | None
    accepted: list[Photo] = field(default_factory=list)
    duplicates: list[Photo] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    resumed: list[Photo] = field(default_factory=list)  # the watcher's own photo, sent before, still pending
    repeated: list[tuple[str, str]] = field(default_factory=list)  # (name, first name) of a file sent twice at once

    @property
    def queued(self) -> bool:
        """Every new or resumed photo reached the broker (False during an outage: saved, sent later)."""
        ids = [p.pk for p in self.accepted + self.resumed]
        return not Photo.objects.filter(pk__in=ids, queued_at__isnull=True).exists()


def _megabytes(n: int) -> str:
    """A size as a watcher reads it: MB, or KB below one (a 60 KB cap is not "0 MB")."""
    if n < 1024 * 1024:
        return f"{max(1, round(n / 1024))} KB"
    return f"{n / (1024 * 1024):.0f} MB"


def _too_big(n: int) -> str:
    return f"This file is {_megabytes(n)}, over the {_megabytes(settings.MAX_UPLOAD_BYTES)} limit per photo."


EMPTY_FILE = "This file is empty (0 bytes): perhaps it was still being copied. Please choose the photo again."
NO_EXTENSION = "This file has no file extension and is not an image we can read (JPEG, PNG, WebP, TIFF or HEIC)."


def _refused_extension(ext: str) -> str:
    return f"Files ending in .{ext} can't be used as a photo: please send a JPEG, PNG, WebP, TIFF or HEIC photo."


def _read_upload(f) -> bytes:
    if hasattr(f, "seek"):
        try:
            f.seek(0)
        except (OSError, ValueError):
            pass
    if hasattr(f, "chunks"):
        return b"".join(f.chunks())
    return f.read()


@dataclass
class Checked:
    """A valid upload, reduced to what saving it needs: its bytes and decoded image are dropped once checked,
    so a request of many photos holds one photo in memory at a time (and each one's 224-px classifier view until
    the sighting is classified); ``content`` is saved from the upload's own (temporary) file, in chunks."""

    name: str
    content: object  # a django File
    sha256: str
    phash: str
    size: tuple[int, int]  # as displayed (EXIF orientation applied)
    suggestion: species_guess.Suggestion | None = None  # the species classifier's, when asked and there is one
    view: object = None  # the classifier's small view of the photo, until its sighting is classified (``_classify``)
    choice: object = None  # the watcher's species for this photo (see ``photo_species``)


SUGGESTED = species_guess.SUGGESTED
UNKNOWN = species_guess.UNKNOWN


def photo_species(choice, suggestion: species_guess.Suggestion | None, sighting_species):
    """A photo's species from the watcher's choice: a ``Species``; ``UNKNOWN`` (None: review, never matched);
    ``SUGGESTED``, the classifier's species — None when it was below its threshold, so an unsure photo goes to
    review as unknown rather than into the humpback gallery — or the sighting's without a classifier; anything
    else (no choice: a form sent without JavaScript, the API) is the sighting's species."""
    if choice == UNKNOWN:
        return None
    if choice == SUGGESTED:
        return suggestion.species if suggestion is not None else sighting_species
    if choice is not None and not isinstance(choice, str):
        return choice
    return sighting_species


def _view(image):
    """The classifier's view of a decoded photo; one it cannot make is logged and the photo kept, unsuggested."""
    try:
        return species_guess.view(image)
    except Exception:
        log.exception("the species classifier could not read a photo")
        return None


def _classify(checked: list[Checked]) -> None:
    """Each photo's suggestion, the whole batch in one pass of the classifier, and the views dropped. Should the
    batch fail, each photo is tried alone, so one photo the classifier chokes on never costs the others theirs."""
    photos = [good for good in checked if good.view is not None]
    views = [good.view for good in photos]
    for good in photos:
        good.view = None
    try:
        for good, suggestion in zip(photos, species_guess.suggest_many(views)):
            good.suggestion = suggestion
        return
    except Exception:
        log.exception("the species classifier failed on a batch of %d photos; trying each alone", len(views))
    for good, view in zip(photos, views):
        try:
            good.suggestion = species_guess.suggest(view)
        except Exception:
            log.exception("the species classifier failed on %s", good.name)


def _check_file(f) -> tuple[str, Checked | None, str]:
    """(display name, the checked upload or None, error message). The format comes from the bytes: the
    extension only turns away other kinds of file (a name without one is judged by its bytes alone)."""
    name = os.path.basename(getattr(f, "name", "") or "photo") or "photo"
    size = getattr(f, "size", None)
    if size is not None and (error := size_error(size)):
        return name, None, error
    if error := extension_error(name):
        return name, None, error
    data = _read_upload(f)
    good, error = check_photo(name, data, f if isinstance(f, File) else None, classify=True)
    return name, good, error


def size_error(size: int) -> str:
    """The per-photo size cap (uploads and bulk imports), in words; "" when within it."""
    return _too_big(size) if size > settings.MAX_UPLOAD_BYTES else ""


def extension_error(name: str) -> str:
    """Other kinds of file, turned away by their extension; a name without one is judged by its bytes."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _refused_extension(ext[:10]) if ext and ext not in IMAGE_EXTENSIONS else ""


def check_photo(name: str, data: bytes, content=None, classify: bool = False) -> tuple[Checked | None, str]:
    """The checks every photo passes, uploaded or imported: size, then ``ml.images`` (type, truncation,
    pixel cap), then its hashes. (checked, "") or (None, the reason). ``content`` is the file to store
    (the upload's own); the bytes are stored when it is None. ``classify``: also keep the species classifier's
    view of the image already decoded here (``_classify`` turns a sighting's views into suggestions)."""
    if not data:
        return None, EMPTY_FILE
    if error := size_error(len(data)):
        return None, error
    try:
        image = load_image(data)
    except NotAnImage as exc:
        return None, str(exc) if "." in name else NO_EXTENSION
    except ImageRejected as exc:
        return None, str(exc)
    content = content if content is not None else ContentFile(data)
    view = _view(image) if classify else None
    return Checked(name, content, hashlib.sha256(data).hexdigest(), phash(image), image.size, view=view), ""


def held_original(sha256: str) -> Photo | None:
    """The photo already held with these bytes (the first one saved), or None: the duplicate rule."""
    return Photo.objects.filter(sha256=sha256, duplicate_of__isnull=True).order_by("created_at", "pk").first()


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
    species_choices=(),
) -> UploadOutcome:
    """Create a sighting with its valid photos and queue them for identification.

    ``species_choices``: the watcher's species for each file, in order (see ``photo_species``; missing ones
    take the sighting's). Bad files are reported in ``rejected`` and never stop the good ones. When no file
    is valid, nothing is saved and ``sighting`` is None.
    """
    files = list(files or [])
    if not files:
        raise ValidationError("Please choose at least one photo of the whale's fluke.")
    if len(files) > settings.MAX_PHOTOS_PER_SIGHTING:
        raise ValidationError(
            f"Please upload at most {settings.MAX_PHOTOS_PER_SIGHTING} photos per sighting (you chose {len(files)})."
        )
    if latitude is not None and not -90 <= float(latitude) <= 90:
        raise ValidationError("Latitude must be between -90 and 90.")
    if longitude is not None and not -180 <= float(longitude) <= 180:
        raise ValidationError("Longitude must be between -180 and 180.")

    outcome = UploadOutcome(sighting=None)
    checked = []
    choices = list(species_choices or [])
    for i, f in enumerate(files):
        name, good, error = _check_file(f)
        if error:
            outcome.rejected.append((name, error))
        else:
            good.choice = choices[i] if i < len(choices) else None
            checked.append(good)
    if not checked:
        return outcome
    _classify(checked)

    checked = _sort_out_known(user, _drop_repeats(checked, outcome), outcome)
    if not any(original is None for _, original in checked):
        # nothing new: no sighting of duplicates only (unsaved rows, to name them to the watcher)
        outcome.duplicates = [
            Photo(original_filename=good.name[:255], duplicate_of=original) for good, original in checked
        ]
        return outcome

    written: list = []  # (storage, name) of the files stored, removed again if the transaction does not commit
    try:
        return _save_sighting(
            outcome,
            checked,
            written,
            user=user,
            species=species,
            observed_at=observed_at,
            latitude=latitude,
            longitude=longitude,
            place_name=place_name,
            observer_name=observer_name,
            notes=notes,
            licence=licence or settings.DEFAULT_PHOTO_LICENCE,
        )
    except BaseException:
        remove_files(written)
        raise


def remove_files(written: list) -> None:
    """The rows rolled back (the database failed mid-upload): their files must not stay behind, on local
    storage or S3. A file that cannot be removed now is logged; nothing refers to it."""
    for storage, name in written:
        try:
            storage.delete(name)
        except Exception:
            log.exception("could not remove %s after a failed upload", name)


def _save_sighting(
    outcome,
    checked,
    written,
    *,
    user,
    species,
    observed_at,
    latitude,
    longitude,
    place_name,
    observer_name,
    notes,
    licence,
) -> UploadOutcome:
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
        for good, original in checked:
            photo = save_photo(sighting, good, original, written, licence, **_species_fields(good, species))
            if original is not None:
                outcome.duplicates.append(photo)
            else:
                outcome.accepted.append(photo)
                queue_photo(photo.pk)
    return outcome


def _species_fields(good: Checked, sighting_species) -> dict:
    """The photo's species (the watcher's choice) beside what the classifier said (its most probable
    species and that probability), so review can show both."""
    suggestion = good.suggestion
    return {
        "species": photo_species(good.choice, suggestion, sighting_species),
        "suggested_species": suggestion.best if suggestion else None,
        "species_confidence": suggestion.probability if suggestion else None,
    }


def _drop_repeats(checked: list[Checked], outcome: UploadOutcome) -> list[Checked]:
    """One copy of a file chosen twice in the same upload (the same photo dragged in twice, or copied under
    another name): two rows of the same bytes would be processed twice and then flagged as each other's
    duplicate."""
    first: dict[str, str] = {}
    kept = []
    for good in checked:
        if good.sha256 in first:
            outcome.repeated.append((good.name, first[good.sha256]))
        else:
            first[good.sha256] = good.name
            kept.append(good)
    return kept


def _sort_out_known(user, checked, outcome: UploadOutcome) -> list:
    """``checked`` with each file's catalogue original (None for a new photo). The watcher's own photo that
    is still waiting to be processed (an upload retried after an error page or an outage) is not a
    catalogue duplicate: it goes to ``outcome.resumed`` and is queued again when its message never
    reached the broker."""
    out = []
    for good in checked:
        original = held_original(good.sha256)
        if original is not None and _own_pending(original, user):
            if original.queued_at is None and original.status == Photo.Status.UPLOADED:
                queue_photo(original.pk)
            outcome.resumed.append(original)
            continue
        out.append((good, original))
    return out


def _own_pending(photo: Photo, user) -> bool:
    return (
        getattr(user, "is_authenticated", False)
        and photo.status in Photo.PENDING_STATUSES
        and photo.sighting.submitted_by_id == user.pk
    )


def save_photo(sighting, good: Checked, original, written: list, licence: str, **fields) -> Photo:
    """Store one checked photo of ``sighting`` (a duplicate of ``original`` is saved rejected, linked to it);
    ``written`` collects the stored file, for the caller to remove if its transaction does not commit."""
    photo = Photo(
        sighting=sighting,
        original_filename=good.name[:255],
        licence=licence,
        sha256=good.sha256,
        phash=good.phash,
        **fields,
    )
    if original is not None:
        photo.duplicate_of = original
        photo.status = Photo.Status.REJECTED
        photo.reject_reason = "duplicate"
    good.content.seek(0)
    photo.image.save(good.name, good.content, save=False)  # in chunks, from the upload's own file
    written.append((photo.image.storage, photo.image.name))
    photo.width, photo.height = good.size
    photo.save()
    return photo


def species_suggestion(file) -> species_guess.Suggestion | None:
    """The classifier's suggestion for one uploaded file (the upload form asks per photo), None without a
    classifier; a file that is not a photo we can use raises ``ValidationError`` with the upload's message
    (the same checks as the upload, so the form can say so before sending it)."""
    _, good, error = _check_file(file)
    if error:
        raise ValidationError(error)
    _classify([good])
    return good.suggestion


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
