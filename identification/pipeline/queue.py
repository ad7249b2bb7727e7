"""Queueing photos for processing so that a broker outage loses nothing.

``queue_photo`` sends ``process_photo`` when the transaction commits and stamps ``Photo.queued_at``
once the broker took the message. During an outage the send is logged, not raised (the photo is
saved already; ``jobs.try_send``), and the photo stays UPLOADED without ``queued_at``:
``send_unqueued_photos`` (beat, every ``UNQUEUED_SWEEP_S`` seconds) sends it as soon as the broker
is back.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from submissions.models import Photo

from .. import jobs

log = logging.getLogger(__name__)

UNQUEUED_SWEEP_S = 15.0  # the beat interval (whalesite.celery); also the wait after a commit before a resend


def queue_photo(photo_id: int) -> None:
    jobs.enqueue(
        jobs.PROCESS_PHOTO, photo_id, on_sent=lambda: Photo.objects.filter(pk=photo_id).update(queued_at=timezone.now())
    )


def send_unqueued_photos(older_than_s: float = UNQUEUED_SWEEP_S, limit: int = 500) -> int:
    """Beat: send the photos whose message never reached the broker; returns how many were sent.
    Idempotent: a photo sent twice is processed once (``process_photo`` returns for a finished one)."""
    ids = list(
        Photo.objects.unqueued(timedelta(seconds=older_than_s)).order_by("pk").values_list("pk", flat=True)[:limit]
    )
    for photo_id in ids:
        queue_photo(photo_id)
    sent = Photo.objects.filter(pk__in=ids, queued_at__isnull=False).count()
    if ids:
        log.warning("sent %d of %d photo(s) the broker had not taken", sent, len(ids))
    return sent
