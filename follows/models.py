"""Who follows which whale, and the in-site notices they were sent (the e-mails' twins)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Follow(models.Model):
    """A user hears about ``individual``: seen again, named, merged. ``automatic`` when it began because
    their own photo was matched to it (they can stop it like any other)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows")
    individual = models.ForeignKey("identification.Individual", on_delete=models.CASCADE, related_name="follows")
    automatic = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["individual__catalogue_id"]
        constraints = [models.UniqueConstraint(fields=["user", "individual"], name="one_follow_per_user_and_whale")]

    def __str__(self) -> str:
        return f"{self.user} follows {self.individual}"


class NotificationQuerySet(models.QuerySet):
    def unread(self):
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    """One notice on the user's notifications page. ``key`` names the event it tells (an outcome of
    a sighting, a naming, a merge), so a task delivered twice records, and mails, it once."""

    class Kind(models.TextChoices):
        IDENTIFIED = "identified", "Your photo was identified"
        NEW_INDIVIDUAL = "new_individual", "New to science here"
        SEEN_AGAIN = "seen_again", "Seen again"
        NAMED = "named", "Named"
        MERGED = "merged", "Merged"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    individual = models.ForeignKey(
        "identification.Individual", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    key = models.CharField(max_length=80)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_notification_per_event")]

    def __str__(self) -> str:
        return self.subject
