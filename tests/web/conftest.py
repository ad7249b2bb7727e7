"""Signed-in users for the web tests: one per role, logged in on the test client."""

import pytest

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """The rate limits (``accounts.ratelimit``) live in the cache: each test starts with none counted."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _signed_in(client, email, role):
    user = UserFactory(email=email, role=role)
    client.force_login(user)
    return user


@pytest.fixture
def watcher(client):
    return _signed_in(client, "watcher@example.org", "watcher")


@pytest.fixture
def moderator(client):
    return _signed_in(client, "mod@example.org", "moderator")


@pytest.fixture
def admin(client):
    return _signed_in(client, "admin@example.org", "admin")
