"""Issue 14, item 5: profiles, the data download, account deletion (photos kept as "former contributor"
or removed), the licence and credit beside every photo (the accounts made before allauth and before
``accounts.User``: test_accounts_migrations)."""

import json

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.urls import reverse

from accounts.models import Profile
from identification.models import Decision
from submissions.models import Photo, Sighting
from tests.web.helpers import PASSWORD, IndividualFactory, PhotoFactory, gallery_photo

pytestmark = pytest.mark.django_db


def test_profile_sets_the_credit_shown_beside_the_photos(client, watcher):
    photo = gallery_photo(IndividualFactory(), sighting__submitted_by=watcher, licence="CC-BY-NC")
    response = client.post(
        reverse("accounts:profile"), {"display_name": "Ana", "credit_line": "Ana Silva / Ocean Trips"}
    )
    assert response.status_code == 302
    assert Profile.objects.get(user=watcher).credit_line == "Ana Silva / Ocean Trips"
    page = client.get(reverse("identification:individual_detail", args=[photo.individual.catalogue_id]))
    text = page.content.decode()
    assert "Photo: Ana Silva / Ocean Trips" in text and "CC BY-NC 4.0" in text
    assert "https://creativecommons.org/licenses/by-nc/4.0/" in text
    mine = client.get(reverse("submissions:my_sightings")).content.decode()
    assert "Photo: Ana Silva / Ocean Trips" in mine and "CC BY-NC 4.0" in mine


def test_profile_refuses_an_overlong_display_name(client, watcher):
    response = client.post(reverse("accounts:profile"), {"display_name": "x" * 81, "credit_line": ""})
    assert response.status_code == 200 and b"at most 80 characters" in response.content
    assert not Profile.objects.filter(user=watcher, display_name__startswith="x").exists()


def test_download_holds_sightings_photos_and_decisions(client, moderator):
    photo = PhotoFactory(sighting__submitted_by=moderator, sighting__place_name="Husavik", licence="CC0")
    other = PhotoFactory(sighting__place_name="Elsewhere")
    Decision.objects.create(photo=other, moderator=moderator, action=Decision.Action.REJECT, reject_reason="duplicate")
    assert client.get(reverse("accounts:download_data")).status_code == 405  # POST only
    response = client.post(reverse("accounts:download_data"))
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["account"]["email"] == moderator.email and data["account"]["roles"] == ["Moderators"]
    assert [s["place_name"] for s in data["sightings"]] == ["Husavik"]
    assert data["sightings"][0]["photos"][0] | {"id": photo.pk, "licence": "CC0"} == data["sightings"][0]["photos"][0]
    assert [(d["photo_id"], d["action"]) for d in data["decisions"]] == [(other.pk, "reject")]
    assert "password" not in response.content.decode()


def test_delete_needs_the_password(client, watcher):
    response = client.post(reverse("accounts:delete"), {"photos": "keep", "password": "not-it"})
    assert response.status_code == 200 and b"not your password" in response.content
    assert get_user_model().objects.filter(pk=watcher.pk).exists()


def test_delete_keeps_the_photos_as_former_contributor(client, watcher):
    photo = gallery_photo(IndividualFactory(), sighting__submitted_by=watcher, sighting__observer_name="Ana Silva")
    response = client.post(reverse("accounts:delete"), {"photos": "keep", "password": PASSWORD})
    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=watcher.pk).exists()
    assert "_auth_user_id" not in client.session
    photo.refresh_from_db()
    assert photo.sighting.submitted_by is None and photo.sighting.observer_name == "former contributor"
    page = client.get(reverse("identification:individual_detail", args=[photo.individual.catalogue_id]))
    assert "Photo: former contributor" in page.content.decode() and "Ana Silva" not in page.content.decode()


def test_delete_removes_the_photos_and_their_files(client, watcher, django_capture_on_commit_callbacks):
    photo = gallery_photo(IndividualFactory(), sighting__submitted_by=watcher)
    kept = gallery_photo(IndividualFactory())  # someone else's
    names = [photo.image.name, photo.crop.name]
    assert all(default_storage.exists(n) for n in names)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:delete"), {"photos": "remove", "password": PASSWORD})
    assert response.status_code == 302
    assert not Photo.objects.filter(pk=photo.pk).exists() and not Sighting.objects.filter(pk=photo.sighting_id).exists()
    assert not any(default_storage.exists(n) for n in names)
    assert Photo.objects.filter(pk=kept.pk).exists() and default_storage.exists(kept.image.name)


def test_operator_made_accounts_sign_in_without_a_confirmation_mail(client, mailoutbox):
    user = get_user_model().objects.create_user("op@example.org", "op@example.org", PASSWORD)
    assert EmailAddress.objects.filter(user=user, verified=True, primary=True).exists()
    response = client.post(reverse("login"), {"login": "op@example.org", "password": PASSWORD})
    assert response.status_code == 302 and int(client.session["_auth_user_id"]) == user.pk
    assert mailoutbox == []


def test_unconfirmed_sign_up_cannot_sign_in_until_it_confirms(client, mailoutbox):
    data = {"email": "new@example.org", "password1": "humpback-tails-42", "password2": "humpback-tails-42"}
    client.post(reverse("signup"), data)
    response = client.post(reverse("login"), {"login": "new@example.org", "password": "humpback-tails-42"})
    assert response.status_code == 302 and response["Location"] == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    assert len(mailoutbox) == 1  # the sign-up's confirmation; another waits out allauth's 3-minute cooldown


def test_photo_credits_cost_no_query_per_photo(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import UserFactory

    whale = IndividualFactory()

    def credited_photo(n):
        uploader = UserFactory(email=f"up{n}@example.org")
        Profile.objects.create(user=uploader, credit_line=f"Credit {n}")
        return gallery_photo(whale, sighting__submitted_by=uploader)

    url = reverse("identification:individual_detail", args=[whale.catalogue_id])
    credited_photo(0)
    with CaptureQueriesContext(connection) as one:
        assert "Photo: Credit 0" in client.get(url).content.decode()
    for n in range(1, 5):
        credited_photo(n)
    with CaptureQueriesContext(connection) as five:
        assert "Photo: Credit 4" in client.get(url).content.decode()
    assert len(five) == len(one)


def test_profile_page_leads_to_the_api_tokens(client, watcher):
    """Issue 15: tokens are created and revoked from the profile (on their own page, one click away)."""
    page = client.get(reverse("accounts:profile")).content.decode()
    assert f'href="{reverse("api:tokens")}"' in page and "Manage API tokens" in page
