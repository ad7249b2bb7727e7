"""Beat housekeeping (``whalesite.celery`` beat_schedule): photos whose message or worker was lost go
round again, and the gallery change log and old snapshots are pruned."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from submissions.models import Photo

from ..models import GalleryChange
from .gallery_sync import GALLERY_CHANGE_RETENTION_S, prune_snapshots
from .queue import queue_photo

log = logging.getLogger(__name__)

STUCK_MAX_ATTEMPTS = 5  # a photo that keeps killing its worker (say, out of memory) stops being re-queued


def requeue_stuck_photos(older_than_minutes: float | None = None, limit: int = 500) -> int:
    """Beat (``whalesite.celery`` beat_schedule, every minute): photos left UPLOADED or PROCESSING for longer
    than ``older_than_minutes`` (settings.STUCK_PHOTO_MINUTES) lost their message, and photos PROCESSING
    under a lapsed lease lost their worker (``Photo.objects.stuck``); queue ``process_photo`` for them
    again. Returns how many were queued.

    Idempotent: ``updated_at`` is touched, so a photo is queued again only after another full
    period, and ``process_photo`` returns quietly for a photo that was finished meanwhile. After
    STUCK_MAX_ATTEMPTS attempts the photo is failed instead (a moderator can retry it).
    """
    minutes = older_than_minutes if older_than_minutes is not None else settings.STUCK_PHOTO_MINUTES
    now = timezone.now()
    with transaction.atomic():
        stuck = Photo.objects.stuck(older_than=timedelta(minutes=minutes)).order_by("updated_at", "pk")
        rows = list(stuck.select_for_update(skip_locked=True).values_list("pk", "attempts")[:limit])
        give_up = [pk for pk, attempts in rows if attempts >= STUCK_MAX_ATTEMPTS]
        requeue = [pk for pk, attempts in rows if attempts < STUCK_MAX_ATTEMPTS]
        if give_up:
            Photo.objects.filter(pk__in=give_up).update(
                status=Photo.Status.FAILED,
                failure_code="stuck",
                updated_at=now,
                failure_reason=(
                    f"Processing did not finish after {STUCK_MAX_ATTEMPTS} attempts. A moderator can retry it."
                ),
            )
        # the lapsed lease is cleared, so the photo is queued once, not on every beat while it waits
        Photo.objects.filter(pk__in=requeue).update(updated_at=now, lease_until=None)
        for pk in requeue:
            queue_photo(pk)
    if rows:
        log.warning(
            "re-queued %d stuck photo(s); failed %d after %d attempts", len(requeue), len(give_up), STUCK_MAX_ATTEMPTS
        )
    return len(requeue)


def prune_gallery_changes() -> int:
    """Beat: drop ``GalleryChange`` rows older than a day, and the gallery snapshots of inactive model
    versions that are older than the log (``gallery_sync.prune_snapshots``). Workers read only the last few
    minutes of the log; one that has not synced for an hour re-reads the whole gallery, and a snapshot
    older than the log is never loaded. Returns the number of log rows deleted."""
    cutoff = timezone.now() - timedelta(seconds=GALLERY_CHANGE_RETENTION_S)
    deleted, _ = GalleryChange.objects.filter(changed_at__lt=cutoff).delete()
    snapshots = prune_snapshots()
    if snapshots:
        log.info("removed the gallery snapshots of %d inactive model version(s)", snapshots)
    return deleted
