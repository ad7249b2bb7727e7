"""Importing one valid row, in one transaction: its photo passes the upload's checks and duplicate rule
(``submissions.services``), then becomes a sighting with its photo. A row with a catalogue id joins that
individual (created once, extended after) as confirmed, with the importer's ``Decision`` in the audit log
and a training example; a row without one is queued for the pipeline and the review queue like an upload.
Imported photos are batch-mates of each other (``Photo.bulk_import``), so the pipeline matches them
against each other as it does the photos of one sighting."""

from __future__ import annotations

import datetime as dt
import posixpath

from django.db import IntegrityError, transaction
from django.utils import timezone

from identification.models import Decision, Individual, Species, TrainingExample
from identification.pipeline.queue import queue_photo
from identification.training.dataset import resolve_merged

from ..models import BulkImport, ImportRow, Photo, Sighting
from ..services import check_photo, held_original, remove_files, save_photo
from .archive import ArchiveError, PhotoArchive


def import_row(row_id: int, bulk: BulkImport, photos: PhotoArchive) -> str:
    """Import one row unless it is done (or being done by another worker); returns its new status."""
    written: list = []
    try:
        with transaction.atomic():
            row = ImportRow.objects.select_for_update(skip_locked=True).filter(pk=row_id).first()
            if row is None or row.status != ImportRow.Status.VALID:
                return row.status if row else "locked"
            _import_locked(row, bulk, photos, written)
            row.finished_at = timezone.now()
            row.save()
            BulkImport.objects.filter(pk=bulk.pk).update(progress_at=row.finished_at)  # one commit for both
            return row.status
    except BaseException:
        remove_files(written)
        raise


def _import_locked(row: ImportRow, bulk: BulkImport, photos: PhotoArchive, written: list) -> None:
    v = row.values
    name = posixpath.basename(v["photo_path"])
    try:
        data = photos.read(v["photo_path"])
    except ArchiveError as exc:
        return _refuse(row, f"{name}: {exc}")
    good, error = check_photo(name, data)
    del data
    if good is None:
        return _refuse(row, f"{name}: {error}")
    original = held_original(good.sha256)
    if original is not None:
        row.status, row.photo = ImportRow.Status.DUPLICATE, original
        row.errors = [f"{name} is the same photo as photo {original.pk}, already held; it was not added again."]
        return None
    species = Species.objects.get(pk=v["species"])
    sighting = Sighting.objects.create(
        species=species,
        observed_at=dt.datetime.fromisoformat(v["observed_at"]),
        latitude=v["latitude"],
        longitude=v["longitude"],
        place_name=v["place"],
        observer_name=v["photographer"],
        notes=v["notes"],
        submitted_by=bulk.created_by,
    )
    individual, created = _individual(v, species, bulk.created_by) if v.get("catalogue_id") else (None, False)
    fields: dict = {"bulk_import": bulk, "species": species}  # each photo's own species: the row's
    if individual is not None:
        status = Photo.Status.NEW_INDIVIDUAL if created else Photo.Status.CONFIRMED
        fields.update(individual=individual, status=status, decided_at=timezone.now())
    photo = save_photo(sighting, good, None, written, v["licence"], **fields)
    if individual is not None:
        _record_decision(photo, individual, created, bulk, row)
    else:
        queue_photo(photo.pk)
    row.status, row.photo = ImportRow.Status.IMPORTED, photo
    return None


def _refuse(row: ImportRow, reason: str) -> None:
    row.status = ImportRow.Status.FAILED
    row.errors = [reason]


def _individual(values: dict, species: Species, user) -> tuple[Individual, bool]:
    """The individual of a catalogue id: the one held (resolved through merges), else a new one. The
    unique catalogue id makes a race between two imports end in one individual, never two."""
    cid, nickname = values["catalogue_id"], values.get("nickname", "")
    known = Individual.objects.filter(catalogue_id=cid).first()
    if known is not None:
        known = resolve_merged(known)
        if nickname and not known.nickname:
            Individual.objects.filter(pk=known.pk).update(nickname=nickname)
        return known, False
    try:
        with transaction.atomic():
            return Individual.objects.create(
                catalogue_id=cid, nickname=nickname, species=species, created_by=user
            ), True
    except IntegrityError:
        return resolve_merged(Individual.objects.get(catalogue_id=cid)), False


def _record_decision(photo: Photo, individual: Individual, created: bool, bulk: BulkImport, row: ImportRow) -> None:
    """The importer answers for the match in the audit log, as a moderator does for a review."""
    Decision.objects.create(
        photo=photo,
        moderator=bulk.created_by,
        action=Decision.Action.NEW_INDIVIDUAL if created else Decision.Action.CONFIRM,
        individual=individual,
        details={"bulk_import": bulk.pk, "row": row.number, "sheet": bulk.sheet_name},
    )
    TrainingExample.objects.update_or_create(
        photo=photo, defaults={"individual": individual, "status": TrainingExample.Status.QUEUED, "used_by": None}
    )
