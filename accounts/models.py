"""What the site keeps about a person besides ``auth.User``: the name shown on their pages and the
credit line printed beside their photos. A one-to-one profile, not a custom user model: swapping
``AUTH_USER_MODEL`` under a live database is unsupported by Django (every app's applied migrations
point at ``auth.User``), and a profile keeps the existing users and their foreign keys untouched."""

from django.conf import settings
from django.db import models

FORMER_CONTRIBUTOR = "former contributor"


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(
        max_length=80, blank=True, help_text="Credited beside your photos when the credit line is empty."
    )
    credit_line = models.CharField(
        max_length=120,
        blank=True,
        help_text="Printed beside your photos, e.g. “Photo: Ana Silva / Ocean Trips”. Empty: your display name.",
    )

    def __str__(self) -> str:
        return self.display_name or f"Profile of user {self.user_id}"


def profile_of(user) -> Profile:
    """The user's profile, made on first use (accounts from before profiles have none)."""
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def photo_credit(sighting) -> str:
    """Who a photo is credited to: the observer named on the sighting, else the uploader's credit line or
    display name; a deleted account's photos kept in the catalogue read "former contributor"."""
    from identification.research.common import display_name, not_an_email  # one rule for public names

    if observer := not_an_email(sighting.observer_name):
        return observer
    user = sighting.submitted_by
    if user is None:
        return FORMER_CONTRIBUTOR
    try:
        profile = user.profile  # cached on the user: one query per uploader, none with select_related
    except Profile.DoesNotExist:
        profile = None
    if profile and (profile.credit_line or profile.display_name):
        return profile.credit_line or profile.display_name
    return display_name(user) or "a Whalesite contributor"
