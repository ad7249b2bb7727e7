"""API clients with a real token per role (made by ``api.tokens.create_token``, sent as a Bearer header)."""

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """The API's rate limits live in the cache: each test starts with none counted."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def token_client(user) -> APIClient:
    from api.tokens import create_token

    client = APIClient()
    if user is not None:
        _, raw = create_token(user, "tests")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.user = user
    return client


@pytest.fixture
def api_as(db):
    """``api_as(role)``: a client with a fresh user of that role's token ("anonymous": no token)."""
    made = {}

    def build(role: str, email: str | None = None):
        if role == "anonymous":
            return token_client(None)
        key = email or f"api-{role}@example.org"
        if key not in made:
            made[key] = UserFactory(email=key, role=role)
        return token_client(made[key])

    return build
