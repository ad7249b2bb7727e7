"""Issue 13, item 6: sign-ins limited per account and per address, uploads and EXIF reads per user,
each answered 429 with ``Retry-After`` and a message."""

import pytest
from django.urls import reverse

from submissions.models import Sighting
from tests.factories import jpeg_bytes, upload
from tests.web.helpers import PASSWORD, SpeciesFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_wrong_passwords_lock_the_account_even_for_the_right_password(client, settings):
    user = UserFactory(email="target@example.org")
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        response = client.post(reverse("login"), {"login": user.email, "password": "wrong-guess"})
        assert response.status_code == 200 and b"don&#x27;t match" in response.content
    response = client.post(reverse("login"), {"login": "TARGET@example.org", "password": PASSWORD})
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= settings.LOGIN_FAILURE_WINDOW_S
    assert b"Too many failed sign-ins" in response.content and b"try again in" in response.content
    assert "_auth_user_id" not in client.session

    other = UserFactory(email="other@example.org")  # another account from another address is not affected
    response = client.post(reverse("login"), {"login": other.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 302 and int(client.session["_auth_user_id"]) == other.pk


def test_failures_from_one_address_across_accounts_are_limited(client, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    for n in range(3):
        client.post(reverse("login"), {"login": f"u{n}@example.org", "password": "x"}, REMOTE_ADDR="10.1.1.1")
    user = UserFactory(email="fresh@example.org")
    blocked = client.post(reverse("login"), {"login": user.email, "password": PASSWORD}, REMOTE_ADDR="10.1.1.1")
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    elsewhere = client.post(reverse("login"), {"login": user.email, "password": PASSWORD}, REMOTE_ADDR="10.2.2.2")
    assert elsewhere.status_code == 302


def test_uploads_and_exif_reads_are_limited_per_user(client, watcher, settings):
    settings.UPLOADS_PER_HOUR = 2
    settings.EXIF_READS_PER_HOUR = 2
    species = SpeciesFactory()
    for n in range(2):
        data = {
            "species": species.pk,
            "observed_date": "2024-07-01",
            "observed_time": "14:30",
            "photos": [upload(f"{n}.jpg", jpeg_bytes(seed=60 + n))],
        }
        assert client.post(reverse("submissions:submit"), data).status_code == 302
    data["photos"] = [upload("third.jpg", jpeg_bytes(seed=70))]
    response = client.post(reverse("submissions:submit"), data)
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 3600
    assert "2 uploads in the last hour" in response.content.decode()
    assert Sighting.objects.count() == 2

    for _ in range(2):
        assert client.post(reverse("submissions:exif"), {"photo": upload("e.jpg", jpeg_bytes())}).status_code == 200
    response = client.post(reverse("submissions:exif"), {"photo": upload("e.jpg", jpeg_bytes())})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert "try again in" in response.json()["error"]
