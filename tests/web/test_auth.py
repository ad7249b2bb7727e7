import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.web.helpers import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_signup_creates_watcher_and_logs_in(client):
    response = client.post(
        reverse("signup"),
        {
            "email": "New.Watcher@Example.org",
            "password1": "humpback-tails-42",
            "password2": "humpback-tails-42",
        },
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(email="new.watcher@example.org")
    assert user.username == "new.watcher@example.org"
    assert user.groups.filter(name="Watchers").exists()
    assert int(client.session["_auth_user_id"]) == user.pk
    home = client.get(reverse("home"))
    assert b"new.watcher@example.org" in home.content


def test_signup_errors(client):
    UserFactory(email="taken@example.org")
    response = client.post(reverse("signup"), {"email": "TAKEN@example.org", "password1": "a", "password2": "b"})
    assert response.status_code == 200
    assert b"already exists" in response.content
    assert b"don&#x27;t match" in response.content


def test_signup_rejects_weak_password(client):
    response = client.post(reverse("signup"), {"email": "w@example.org", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert b"too short" in response.content
    assert not get_user_model().objects.filter(email="w@example.org").exists()


def test_login_by_email_case_insensitive(client):
    user = UserFactory(email="flukes@example.org")
    response = client.post(reverse("login"), {"username": "FLUKES@Example.ORG", "password": PASSWORD})
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == user.pk


def test_login_wrong_password(client):
    UserFactory(email="flukes@example.org")
    response = client.post(reverse("login"), {"username": "flukes@example.org", "password": "nope"})
    assert response.status_code == 200
    assert b"don&#x27;t match" in response.content
    assert "_auth_user_id" not in client.session


def test_logout_is_post(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_nav_links_per_role(client):
    client.force_login(UserFactory(email="w@example.org", role="watcher"))
    page = client.get(reverse("home")).content.decode()
    assert reverse("submissions:submit") in page and reverse("identification:review_queue") not in page
    client.force_login(UserFactory(email="m@example.org", role="moderator"))
    page = client.get(reverse("home")).content.decode()
    assert reverse("identification:review_queue") in page and reverse("identification:dashboard") not in page
    client.force_login(UserFactory(email="a@example.org", role="admin"))
    page = client.get(reverse("home")).content.decode()
    assert reverse("identification:dashboard") in page


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
