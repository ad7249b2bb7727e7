"""Recording a notice for a user, and reading and marking them (the notifications page and the menu's
unread count). The e-mails are composed and sent by ``identification.review.notify``."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Notification


def record(user, individual, kind: str, key: str, subject: str, body: str) -> bool:
    """Save the notice unless this event was recorded for ``user`` already. True when it is new (and
    should be mailed): a task run twice tells once."""
    try:
        with transaction.atomic():
            _, created = Notification.objects.get_or_create(
                user=user,
                key=key[:80],
                defaults={"individual": individual, "kind": kind, "subject": subject[:200], "body": body},
            )
    except IntegrityError:
        return False
    return created


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(user=user).unread().count()


def mark_read(user, ids) -> int:
    return Notification.objects.filter(user=user, pk__in=list(ids)).unread().update(read_at=timezone.now())
