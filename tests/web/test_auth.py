import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.web.helpers import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_signup_creates_watcher_and_logs_in(client, mailoutbox):
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
    # signed in once the address is confirmed, by the link in the e-mail (sign-up alone tells nobody apart)
    assert "_auth_user_id" not in client.session
    assert [m.to for m in mailoutbox] == [["new.watcher@example.org"]]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mailoutbox[0].body).group(0)
    confirmed = client.post(urlsplit(link).path)
    assert confirmed.status_code == 302 and confirmed["Location"] == reverse("submissions:submit")
    assert int(client.session["_auth_user_id"]) == user.pk
    home = client.get(reverse("home"))
    assert b"new.watcher@example.org" in home.content


def test_signup_errors(client):
    response = client.post(reverse("signup"), {"email": "w@example.org", "password1": "a", "password2": "b"})
    assert response.status_code == 200
    assert b"don&#x27;t match" in response.content
    assert not get_user_model().objects.filter(email="w@example.org").exists()


def test_signup_answers_the_same_whether_or_not_the_email_has_an_account(mailoutbox):
    """Issue 13, item 6: the old form said "An account with this email already exists"."""
    UserFactory(email="taken@example.org")
    data = {"password1": "humpback-tails-42", "password2": "humpback-tails-42"}
    pages = {}
    for email in ("TAKEN@example.org", "fresh@example.org"):
        visitor = Client()
        answer = visitor.post(reverse("signup"), {"email": email, **data})
        assert answer.status_code == 302 and answer["Location"] == reverse("account_email_verification_sent")
        pages[email] = visitor.get(answer["Location"]).content.decode().replace(email.lower(), "EMAIL")
        assert "_auth_user_id" not in visitor.session
    assert pages["TAKEN@example.org"] == pages["fresh@example.org"]
    assert "already exists" not in pages["TAKEN@example.org"]  # the old form's words
    assert get_user_model().objects.filter(email__iexact="taken@example.org").count() == 1
    # the owner, not the visitor, learns that the address has an account
    owner_mail, fresh_mail = sorted(mailoutbox, key=lambda m: m.to[0], reverse=True)
    assert owner_mail.to == ["taken@example.org"] and "already" in owner_mail.body.lower()
    assert fresh_mail.to == ["fresh@example.org"] and "/accounts/confirm-email/" in fresh_mail.body


def test_signup_rejects_weak_password(client):
    response = client.post(reverse("signup"), {"email": "w@example.org", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert b"too short" in response.content
    assert not get_user_model().objects.filter(email="w@example.org").exists()


def test_login_by_email_case_insensitive(client):
    user = UserFactory(email="flukes@example.org")
    response = client.post(reverse("login"), {"login": "FLUKES@Example.ORG", "password": PASSWORD})
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == user.pk


def test_login_wrong_password(client):
    UserFactory(email="flukes@example.org")
    response = client.post(reverse("login"), {"login": "flukes@example.org", "password": "nope"})
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


def test_login_and_signup_focus_their_email_field(client):
    for name in ("login", "signup"):
        page = client.get(reverse(name)).content.decode()
        assert re.search(r'<input type="email" name="(login|email)"[^>]*autofocus', page), name
