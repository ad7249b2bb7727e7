"""Making, finding and revoking API tokens. A token is ``ws_`` + 43 URL-safe characters (256 random bits);
it is returned once by ``create_token`` and only its digest is kept."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from .models import ApiToken

TOKEN_PREFIX = "ws_"
LAST_USED_EVERY = timedelta(minutes=1)  # a busy token writes its last use at most once a minute


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(user, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``: (the row, the token itself, shown to them once)."""
    name = " ".join((name or "").split())[:100]
    if not name:
        raise ValidationError("Give the token a name, so you know later what uses it.")
    if ApiToken.objects.active().filter(user=user).count() >= settings.API_TOKENS_PER_USER:
        raise ValidationError(
            f"You have {settings.API_TOKENS_PER_USER} active tokens already; revoke one you no longer use."
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], digest=digest(raw))
    return token, raw


def find_token(raw: str) -> ApiToken | None:
    """The active token ``raw`` names, or None (unknown, revoked, or its user deactivated)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token = ApiToken.objects.active().select_related("user").filter(digest=digest(raw)).first()
    if token is not None and (token.last_used_at is None or timezone.now() - token.last_used_at > LAST_USED_EVERY):
        token.last_used_at = timezone.now()
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=token.last_used_at)
    return token


def revoke_token(user, token_id: int) -> ApiToken:
    """Revoke one of ``user``'s own tokens (another user's token id is "not found", not revoked)."""
    token = ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).first()
    if token is None:
        raise ValidationError("No such active token of yours.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return token
