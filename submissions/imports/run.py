"""An import's life: ``create_import`` checks the sheet and ZIP in full and writes only the import and
its rows; ``start_import`` queues the first chunk; each ``run_chunk`` imports its rows, one transaction
per row, and queues the next chunk, so an import never holds a worker for long and other work
interleaves. Rows carry their own state: a chunk delivered again (its worker died: ``acks_late``) skips
the rows done, and ``resume`` sends the chunk of the first row left."""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from identification import jobs
from identification.models import ModelVersion
from identification.permissions import REVIEW_PERMISSION, require

from ..models import BulkImport, ImportRow
from .archive import PhotoArchive
from .rows import check_rows
from .sheet import read_sheet
from .writing import import_row

log = logging.getLogger(__name__)


def chunk_rows() -> int:
    return max(1, int(settings.IMPORT_CHUNK_ROWS))


def create_import(*, user, sheet, archive) -> BulkImport:
    """Read and validate every row against the ZIP; save the import (status CHECKED) with each row's
    status and reasons. A sheet or ZIP that cannot be read at all raises ``ValidationError`` and saves
    nothing."""
    require(user, REVIEW_PERMISSION)
    sheet_name = os.path.basename(getattr(sheet, "name", "") or "sheet.csv")
    rows = read_sheet(sheet, sheet_name)
    photos = PhotoArchive(archive)
    try:
        checked = check_rows(rows, photos)
    finally:
        photos.close()
    archive.seek(0)
    with transaction.atomic():
        bulk = BulkImport(
            created_by=user,
            sheet_name=sheet_name[:255],
            archive_name=os.path.basename(getattr(archive, "name", "") or "photos.zip")[:255],
        )
        bulk.archive.save("photos.zip", archive if isinstance(archive, File) else File(archive), save=False)
        written = bulk.archive.name
        try:
            bulk.save()
            ImportRow.objects.bulk_create(
                ImportRow(
                    bulk_import=bulk,
                    number=row.number,
                    raw=row.raw,
                    values=row.values,
                    errors=row.errors,
                    status=ImportRow.Status.INVALID if row.errors else ImportRow.Status.VALID,
                )
                for row in checked
            )
        except BaseException:
            bulk.archive.storage.delete(written)
            raise
    return bulk


def start_import(bulk: BulkImport, user) -> int:
    """Import the valid rows (the invalid ones are marked not imported); returns how many are queued."""
    require(user, REVIEW_PERMISSION)
    with transaction.atomic():
        bulk = BulkImport.objects.select_for_update().get(pk=bulk.pk)
        if bulk.status != BulkImport.Status.CHECKED:
            raise ValidationError("This import has started already.")
        valid = bulk.rows.to_import().count()
        if not valid:
            raise ValidationError("No row of this sheet is valid; correct the sheet and upload it again.")
        bulk.rows.filter(status=ImportRow.Status.INVALID).update(status=ImportRow.Status.SKIPPED)
        bulk.status = BulkImport.Status.RUNNING
        bulk.started_at = bulk.progress_at = timezone.now()
        bulk.save()
        jobs.enqueue(jobs.IMPORT_CHUNK, bulk.pk, first_chunk(bulk))
    return valid


def chunk_of(number: int) -> int:
    return (number - 2) // chunk_rows()  # line 2 is the first row


def first_chunk(bulk: BulkImport) -> int:
    first = bulk.rows.to_import().order_by("number").values_list("number", flat=True).first()
    return chunk_of(first) if first is not None else 0


def run_chunk(import_id: int, chunk: int) -> str:
    """Import the rows of ``chunk`` still to do, then queue the next chunk (or finish). Idempotent."""
    bulk = BulkImport.objects.filter(pk=import_id).first()
    if bulk is None or bulk.status != BulkImport.Status.RUNNING:
        return "gone" if bulk is None else bulk.status
    lo = 2 + chunk * chunk_rows()
    rows = list(bulk.rows.to_import().filter(number__gte=lo, number__lt=lo + chunk_rows()).order_by("number"))
    with bulk.archive.open("rb") as fh:
        photos = PhotoArchive(fh)
        try:
            for row in rows:
                import_row(row.pk, bulk, photos)
        except SoftTimeLimitExceeded:  # the rows done stay done; the rest of this chunk goes round again
            log.warning("import %s chunk %s hit its time limit; queued again", import_id, chunk)
            jobs.enqueue(jobs.IMPORT_CHUNK, import_id, chunk)
            return "continued"
        finally:
            photos.close()
    return _next(bulk, chunk)


def _next(bulk: BulkImport, chunk: int) -> str:
    """Queue the chunk of the next row left after this one; with none after it, finish, unless rows
    before it are still held by another delivery of their chunk (whose worker then finishes)."""
    after = bulk.rows.to_import().filter(number__gte=2 + (chunk + 1) * chunk_rows()).order_by("number").first()
    if after is not None:
        jobs.enqueue(jobs.IMPORT_CHUNK, bulk.pk, chunk_of(after.number))
        return f"chunk {chunk} done"
    if bulk.rows.to_import().exists():
        return f"chunk {chunk} done; rows before it are being imported"
    return finish(bulk)


def finish(bulk: BulkImport) -> str:
    """Mark the import done; the confirmed photos it added are embedded into their species' active galleries."""
    if not BulkImport.objects.filter(pk=bulk.pk, status=BulkImport.Status.RUNNING).update(
        status=BulkImport.Status.DONE, finished_at=timezone.now()
    ):
        return "done already"
    # each species' gallery is embedded by its own active model: a sheet of flukes and fins queues both
    species = bulk.photos.in_gallery().values_list("individual__species", flat=True).distinct()
    for active in ModelVersion.objects.active().filter(species__in=list(species)):
        jobs.enqueue(jobs.REEMBED_GALLERY, active.pk, False)
    return "done"


def resume(bulk: BulkImport, user) -> bool:
    """Send the chunk of the first row left again (a worker died and its message is gone). Safe at any
    time: rows done are skipped, and a row being imported right now is locked by its worker."""
    require(user, REVIEW_PERMISSION)
    if bulk.status != BulkImport.Status.RUNNING:
        return False
    if not bulk.rows.to_import().exists():
        finish(bulk)
        return True
    jobs.enqueue(jobs.IMPORT_CHUNK, bulk.pk, first_chunk(bulk))
    return True


@dataclass
class Progress:
    total: int
    imported: int
    duplicates: int
    failed: int
    left: int
    skipped: int
    seconds_left: float | None
    stalled: bool

    @property
    def done(self) -> int:
        return self.imported + self.duplicates + self.failed

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def progress(bulk: BulkImport) -> Progress:
    counts = dict(bulk.rows.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    s = ImportRow.Status
    done = sum(counts.get(k, 0) for k in ImportRow.FINISHED_STATUSES)
    left = counts.get(s.VALID, 0)
    seconds_left = None
    if bulk.status == BulkImport.Status.RUNNING and done and bulk.started_at:
        elapsed = ((bulk.progress_at or timezone.now()) - bulk.started_at).total_seconds()
        seconds_left = elapsed / done * left
    stalled = (
        bulk.status == BulkImport.Status.RUNNING
        and bulk.progress_at is not None
        and timezone.now() - bulk.progress_at > dt.timedelta(seconds=settings.IMPORT_STALLED_S)
    )
    return Progress(
        total=done + left,
        imported=counts.get(s.IMPORTED, 0),
        duplicates=counts.get(s.DUPLICATE, 0),
        failed=counts.get(s.FAILED, 0),
        left=left,
        skipped=counts.get(s.SKIPPED, 0) + counts.get(s.INVALID, 0),
        seconds_left=seconds_left,
        stalled=stalled,
    )
