"""The API's permission matrix: every API URL × every HTTP method × anonymous / watcher / moderator / admin,
each role with its own token. The rules are the site's (``identification.permissions``): reads of public
data for everyone, one's own photos and sightings, suggestions and decisions for moderators."""

import pytest
from django.urls import get_resolver, reverse

from api.tokens import create_token
from submissions.models import Sighting
from tests.api.conftest import token_client
from tests.factories import IndividualFactory, SpeciesFactory, UserFactory
from tests.web.helpers import ROLES, gallery_photo, review_setup

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
ALL = dict.fromkeys(ROLES)


def same(code):
    return {role: code for role in ROLES}


READ_ONLY = {"get": same(200), "post": same(405), "put": same(405), "patch": same(405), "delete": same(405)}
SIGNED_IN_ONLY = {"anonymous": 401, "watcher": None, "moderator": None, "admin": None}
PRIVATE_PHOTO = {"anonymous": 401, "watcher": 403, "moderator": 200, "admin": 200}
MODERATOR = {"anonymous": 401, "watcher": 403, "moderator": 200, "admin": 200}
HTML_LOGGED_IN = {"anonymous": 302, "watcher": 200, "moderator": 200, "admin": 200}

# name -> (kwargs key, {method: {role: status}}); None in a role: the status is checked in tests/api/test_api.py
MATRIX = {
    "api:api-root": (None, READ_ONLY),
    "api:species-list": (None, READ_ONLY),
    "api:species-detail": ("species", READ_ONLY),
    "api:individual-list": (None, READ_ONLY),
    "api:individual-detail": ("individual", READ_ONLY),
    # POST: a watcher's submission without photos is a 400 (not a 403): every signed-in role may submit
    "api:sighting-list": (None, {**READ_ONLY, "post": {**same(400), "anonymous": 401}}),
    # another person's sighting without a gallery photo: not found for watchers, seen by moderators
    "api:sighting-detail": (
        "private_sighting",
        {**READ_ONLY, "get": {"anonymous": 404, "watcher": 404, "moderator": 200, "admin": 200}},
    ),
    "api:photo-list": (None, READ_ONLY),
    "api:photo-detail": ("private_photo", {**READ_ONLY, "get": PRIVATE_PHOTO}),
    "api:photo-decision": (
        "private_photo",
        {
            "get": {**same(405), "anonymous": 401, "watcher": 403},  # permissions come before the method
            "post": MODERATOR,
            "put": {**same(405), "anonymous": 401, "watcher": 403},
            "patch": {**same(405), "anonymous": 401, "watcher": 403},
            "delete": {**same(405), "anonymous": 401, "watcher": 403},
        },
    ),
    "api:schema": (None, READ_ONLY),
    "api:docs": (None, READ_ONLY),
    # HTML pages of the signed-in user (session sign-in, so a token is no use there: anonymous -> login)
    "api:tokens": (
        None,
        {
            "get": HTML_LOGGED_IN,
            "post": {**same(200), "anonymous": 302},
            "put": {**same(405), "anonymous": 302},
            "patch": {**same(405), "anonymous": 302},
            "delete": {**same(405), "anonymous": 302},
        },
    ),
    "api:revoke_token": ("token", {m: {**same(302 if m == "post" else 405), "anonymous": 302} for m in METHODS}),
}


def _names(resolver, prefix=""):
    for p in resolver.url_patterns:
        if hasattr(p, "url_patterns"):
            ns = getattr(p, "namespace", None)
            yield from _names(p, f"{prefix}{ns}:" if ns else prefix)
        elif p.name:
            yield prefix + p.name


def test_matrix_covers_every_api_url_and_method():
    assert {n for n in _names(get_resolver()) if n.startswith("api:")} == set(MATRIX)
    for name, (_, methods) in MATRIX.items():
        assert set(methods) == set(METHODS), name
        assert all(set(roles) == set(ROLES) for roles in methods.values()), name


def _targets():
    photo, individuals, _ = review_setup()
    Sighting.objects.filter(pk=photo.sighting_id).update(submitted_by=UserFactory(email="owner@example.org"))
    gallery_photo(individuals[0])
    token, _ = create_token(UserFactory(email="someone@example.org"), "someone's")
    return {
        None: {},
        "species": {"pk": SpeciesFactory().pk},
        "individual": {"catalogue_id": IndividualFactory().catalogue_id},
        "private_sighting": {"pk": photo.sighting_id},
        "private_photo": {"pk": photo.pk},
        "token": {"token_id": token.pk},
    }, individuals


PAYLOADS = {"api:photo-decision": lambda inds: {"action": "confirm", "individual": inds[0].catalogue_id}}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_api_permission_matrix(client, role, name):
    targets, individuals = _targets()
    key, methods = MATRIX[name]
    url = reverse(name, kwargs=targets[key])
    user = None if role == "anonymous" else UserFactory(email=f"{role}@example.org", role=role)
    html_page = name in ("api:tokens", "api:revoke_token")
    if html_page and user is not None:
        client.force_login(user)
    for method in METHODS:
        expected = methods[method][role]
        if expected is None:
            continue
        api = client if html_page else token_client(user)
        data = PAYLOADS.get(name, lambda _: {"name": "matrix"} if html_page else {})(individuals)
        body_format = "multipart" if name == "api:sighting-list" else "json"
        response = getattr(api, method)(url, data, **({} if html_page else {"format": body_format}))
        assert response.status_code == expected, (name, method, role, response.status_code)
        if response.status_code >= 400 and not html_page and name not in ("api:docs", "api:schema"):
            assert response["Content-Type"].startswith("application/json"), (name, method, role)
            assert response.json()["detail"]
