"""One-click unsubscribe links (RFC 8058): a signed token names the user and the whale, so the link
works without signing in and cannot be forged; using it again says it was used."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.urls import reverse

from identification.models import Individual
from identification.training.dataset import resolve_merged

from .models import Follow

SALT = "follows.unsubscribe"


def make_token(user_id: int, individual_id: int) -> str:
    return signing.dumps([user_id, individual_id], salt=SALT, compress=True)


def unsubscribe_url(user_id: int, individual_id: int) -> str:
    path = reverse("follows:unsubscribe", kwargs={"token": make_token(user_id, individual_id)})
    return f"{settings.SITE_URL.rstrip('/')}{path}"


@dataclass
class Unsubscribe:
    """The answer to a link: the whale (``None`` when the link is not valid) and whether it was used."""

    individual: Individual | None
    already: bool = False


def read_token(token: str) -> tuple[object, Individual] | None:
    """The user and the whale (the one a merged whale now lives on) a token names, or ``None``."""
    try:
        user_id, individual_id = signing.loads(token, salt=SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    user = get_user_model().objects.filter(pk=user_id).first()
    individual = Individual.objects.filter(pk=individual_id).first()
    if user is None or individual is None:
        return None
    return user, resolve_merged(individual)


def check(token: str) -> Unsubscribe:
    """What the link would do, without doing it (the page a GET shows)."""
    found = read_token(token)
    if found is None:
        return Unsubscribe(individual=None)
    user, individual = found
    return Unsubscribe(
        individual=individual, already=not Follow.objects.filter(user=user, individual=individual).exists()
    )


def unsubscribe(token: str) -> Unsubscribe:
    """Stop the follow the token names. ``already`` when it had been stopped before."""
    found = read_token(token)
    if found is None:
        return Unsubscribe(individual=None)
    user, individual = found
    deleted, _ = Follow.objects.filter(user=user, individual=individual).delete()
    return Unsubscribe(individual=individual, already=not deleted)
