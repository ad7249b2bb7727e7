"""Giving a whale a nickname (or changing it): logged as a ``Decision`` and told to its followers."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import jobs
from ..models import Decision, Individual
from ..permissions import REVIEW_PERMISSION, require

NICKNAME_MAX = 100


def set_nickname(*, individual: Individual, nickname: str, moderator) -> Decision | None:
    """Set ``individual``'s nickname (blank clears it). Returns the logged decision, or ``None`` when the
    nickname was that already. A new nickname queues the followers' notice on commit."""
    require(moderator, REVIEW_PERMISSION)
    nickname = " ".join((nickname or "").split())
    if len(nickname) > NICKNAME_MAX:
        raise ValidationError(f"A nickname has at most {NICKNAME_MAX} characters.")
    with transaction.atomic():
        locked = Individual.objects.select_for_update().get(pk=individual.pk)
        if locked.merged_into_id:
            raise ValidationError(f"{locked.catalogue_id} was merged; name the whale it was merged into.")
        if locked.nickname == nickname:
            return None
        previous, locked.nickname = locked.nickname, nickname
        locked.save(update_fields=["nickname"])
        decision = Decision.objects.create(
            moderator=moderator,
            action=Decision.Action.NAME,
            individual=locked,
            details={"nickname": nickname, "previous": previous},
        )
        if nickname:
            jobs.enqueue(jobs.NOTIFY_WATCHERS, decision.pk)
    individual.nickname = nickname
    return decision
