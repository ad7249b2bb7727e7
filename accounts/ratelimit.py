"""A small fixed-window rate limiter on Django's cache framework (neither django-axes nor
django-ratelimit is installed). Counts are per key ("login-account:<email>", "upload:<user id>"...);
``blocked`` says how many seconds remain when a key is over its limit, for the ``Retry-After`` header.

With several web processes the cache must be shared (``CACHE_URL``, e.g. Redis); the per-process
local-memory default limits each process on its own."""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache
from django.http import HttpResponse


def _keys(key: str) -> tuple[str, str]:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # e-mail addresses and IPs never land in the cache key
    return f"rl:{digest}:n", f"rl:{digest}:until"


def hit(key: str, window_s: int) -> int:
    """Count one event for ``key`` in the current window; returns the count so far."""
    count_key, until_key = _keys(key)
    if cache.add(until_key, time.time() + window_s, window_s):
        cache.set(count_key, 0, window_s)
    try:
        return cache.incr(count_key)
    except ValueError:  # the count expired between the two calls
        cache.set(count_key, 1, window_s)
        return 1


def blocked(key: str, limit: int) -> int:
    """Seconds until ``key`` may try again (0 while it is under ``limit``)."""
    count_key, until_key = _keys(key)
    if (cache.get(count_key) or 0) < limit:
        return 0
    return max(1, int((cache.get(until_key) or time.time()) - time.time()) + 1)


def reset(key: str) -> None:
    cache.delete_many(list(_keys(key)))


def client_address(request) -> str:
    """The peer address; behind a proxy set ``SECURE_PROXY_SSL_HEADER`` and let it set REMOTE_ADDR."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def too_many(message: str, retry_after: int, *, json: bool = False) -> HttpResponse:
    """HTTP 429 with ``Retry-After`` and a message that says when to try again."""
    text = f"{message} Please try again in {wait_words(retry_after)}."
    if json:
        from django.http import JsonResponse

        response = JsonResponse({"error": text}, status=429)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Too many requests</title><h1>Too many requests</h1><p>{text}</p>", status=429
        )
    response["Retry-After"] = str(retry_after)
    return response


def wait_words(seconds: int) -> str:
    minutes = (seconds + 59) // 60
    return f"{seconds} seconds" if seconds < 120 else f"{minutes} minutes"
