"""The upload rate limit (``accounts.ratelimit``) lives in the cache: each case starts with none counted."""

import pytest


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
