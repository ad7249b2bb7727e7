"""The site's people: ``User`` (``AUTH_USER_MODEL``), and the ``Profile`` it keeps besides the sign-in
fields (the name shown on their pages and the credit line printed beside their photos).

``User`` is Django's user on Django's own table (``auth_user``), so that databases made when the site
used ``auth.User`` keep every user, password, group and permission without a copy: migration
accounts 0001 creates the table only on a fresh database (on an older one it is recorded as applied),
and 0003 moves the user content type from ``auth`` to ``accounts``. Having our own model from the
start means a field can later be added by an ordinary migration."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

FORMER_CONTRIBUTOR = "former contributor"


class User(AbstractUser):
    """Django's user, kept on its ``auth_user`` table (and ``auth_user_groups``,
    ``auth_user_user_permissions`` for its many-to-many fields) so that existing rows are ours as they are.
    Its key stays the integer ``auth.User`` had (the app's default is a big integer): every foreign key
    to a user, in every app, has that column type on older databases."""

    id = models.AutoField(primary_key=True, verbose_name="ID")

    class Meta(AbstractUser.Meta):
        db_table = "auth_user"


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
