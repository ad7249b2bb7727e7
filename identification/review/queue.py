"""The review queue and claims: which photos a moderator sees next, and who holds one while deciding.

A claim lasts ``CLAIM_TTL``; an expired claim can be taken by anyone. Domain errors raise
``ValidationError`` (a human message) or ``PermissionDenied``.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from submissions.models import Photo

from ..models import Decision, Suggestion
from ..permissions import REVIEW_PERMISSION, require

CLAIM_TTL = timedelta(minutes=15)
CLAIM_SCAN = 50  # queue rows claim_next tries before giving up


def with_top_score(photos):
    """Annotate ``top_score``: the best individual candidate's score under each photo's model version."""
    best = Suggestion.objects.filter(
        photo=OuterRef("pk"), model_version=OuterRef("model_version"), individual__isnull=False
    ).order_by("rank")
    return photos.annotate(top_score=Subquery(best.values("score")[:1]))


def review_queue(moderator):
    """Photos awaiting review that are unclaimed (or claimed by ``moderator``, or whose claim
    expired), oldest first. Disputed photos and photos ``moderator`` already voted on (consensus
    review) are left out. Each row is annotated with ``top_score`` (``ReviewFilterForm`` can sort
    on it)."""
    require(moderator, REVIEW_PERMISSION)
    voted = Decision.objects.open_votes().filter(moderator=moderator).values("photo_id")
    queue = (
        Photo.objects.awaiting_review()
        .unclaimed_or_claimed_by(moderator, ttl=CLAIM_TTL)
        .filter(needs_admin=False)
        .exclude(pk__in=voted)
    )
    return (
        with_top_score(queue)
        .select_related("sighting", "sighting__species", "individual", "model_version")
        .order_by("created_at", "pk")
    )


def claim_next(*, moderator, queue):
    """Claim the first photo of ``queue`` (a ``review_queue`` QuerySet) that nobody else holds. Rows
    locked at this very moment are passed over first (SKIP LOCKED) and waited for only if nothing else
    is free: a worker writing a batch-mate's new suggestions holds its row for a few milliseconds,
    and near the end of a queue that must not read as "empty". None when nothing can be claimed."""
    require(moderator, REVIEW_PERMISSION)
    fresh = timezone.now() - CLAIM_TTL
    busy = []
    for pk in queue.values_list("pk", flat=True)[:CLAIM_SCAN]:
        row = _try_claim(pk, moderator, fresh, wait=False)
        if row is _BUSY:
            busy.append(pk)
        elif row is not None:
            return row
    for pk in busy:
        row = _try_claim(pk, moderator, fresh, wait=True)
        if row is not None:
            return row
    return None


_BUSY = object()


def _try_claim(pk, moderator, fresh, *, wait: bool):
    with transaction.atomic():
        row = Photo.objects.select_for_update(skip_locked=not wait).filter(pk=pk).first()
        if row is None:
            return None if wait else _BUSY  # locked by someone else right now (or deleted)
        if row.status != Photo.Status.AWAITING_REVIEW or (
            row.claimed_by_id not in (None, moderator.pk) and row.claimed_at and row.claimed_at > fresh
        ):
            return None
        row.claimed_by, row.claimed_at = moderator, timezone.now()
        row.save(update_fields=["claimed_by", "claimed_at", "updated_at"])
        return row


def held_by_other(photo, moderator):
    """The other moderator whose live claim holds ``photo``, or None. Reading never claims: claims are
    taken only by POST (``claim_next``, ``claim_photo``), so a page view or its self-poll changes nothing."""
    fresh = photo.claimed_at is not None and photo.claimed_at > timezone.now() - CLAIM_TTL
    if photo.claimed_by_id and photo.claimed_by_id != moderator.pk and fresh:
        return photo.claimed_by
    return None


def claim_photo(*, photo, moderator) -> Photo:
    """Hold ``photo`` for ``moderator`` while deciding (the queue's Review button)."""
    require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if locked.status != Photo.Status.AWAITING_REVIEW:
            raise ValidationError("This photo has already been decided.")
        fresh = locked.claimed_at is not None and locked.claimed_at > timezone.now() - CLAIM_TTL
        if locked.claimed_by_id and locked.claimed_by_id != moderator.pk and fresh:
            raise ValidationError("Another moderator is reviewing this photo.")
        locked.claimed_by = moderator
        locked.claimed_at = timezone.now()
        locked.save(update_fields=["claimed_by", "claimed_at", "updated_at"])
    photo.claimed_by, photo.claimed_at = locked.claimed_by, locked.claimed_at
    return locked
