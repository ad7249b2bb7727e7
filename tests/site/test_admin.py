"""Django admin: every registered model's list (with search and a filter) and change page render for staff."""

import pytest
from django.contrib import admin
from django.urls import reverse

from identification.models import Decision, Embedding, ModelVersion, Suggestion, TrainingExample, TrainingRun
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def data():
    superuser = UserFactory(email="root@example.org", is_staff=True, is_superuser=True)
    individual = IndividualFactory(nickname="Salt")
    photo = PhotoFactory(status=Photo.Status.CONFIRMED, individual=individual)
    version = ModelVersion.objects.create(name="v1", artifact_dir="models/v1", metrics={"map5": 0.71234})
    Embedding.objects.create(photo=photo, model_version=version, vector=b"\0" * 4 * 8)
    Suggestion.objects.create(photo=photo, model_version=version, rank=1, individual=individual, score=0.9)
    Decision.objects.create(photo=photo, moderator=superuser, action=Decision.Action.CONFIRM, individual=individual)
    run = TrainingRun.objects.create(
        status=TrainingRun.Status.FAILED,
        options={"arch": "resnet18", "epochs": 2},
        log="line one\nline two",
        error="boom",
    )
    TrainingExample.objects.create(photo=photo, individual=individual)
    return superuser, photo, individual, version, run


def test_admin_lists_search_and_change_pages(client, data):
    superuser, photo, individual, version, run = data
    client.force_login(superuser)
    objects = {Photo: photo, ModelVersion: version, TrainingRun: run}
    for model in [m for m in admin.site._registry if m._meta.app_label in ("identification", "submissions")]:
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = client.get(url)
        assert response.status_code == 200, url
        assert client.get(url, {"q": "HW"}).status_code == 200, url
        obj = objects.get(model) or model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change

    page = client.get(reverse("admin:submissions_photo_change", args=[photo.pk])).content.decode()
    assert photo.sha256 in page and 'name="sha256"' not in page  # shown, read-only
    listing = client.get(reverse("admin:identification_modelversion_changelist")).content.decode()
    assert "0.712" in listing
    found = client.get(reverse("admin:identification_individual_changelist"), {"q": "Salt"}).content.decode()
    assert individual.catalogue_id in found
    assert "line two" in client.get(reverse("admin:identification_trainingrun_change", args=[run.pk])).content.decode()
    # the audit log cannot be edited or deleted
    decision = Decision.objects.get()
    assert (
        client.post(reverse("admin:identification_decision_delete", args=[decision.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert Decision.objects.filter(pk=decision.pk).exists()


def test_training_example_admin_actions(client, data):
    superuser, photo, *_ = data
    client.force_login(superuser)
    example = TrainingExample.objects.get()
    url = reverse("admin:identification_trainingexample_changelist")
    client.post(url, {"action": "exclude_examples", "_selected_action": [example.pk]})
    example.refresh_from_db()
    assert example.status == TrainingExample.Status.EXCLUDED


def test_the_user_admin_lists_changes_and_adds_users_with_hashed_passwords(client, data):
    """``accounts.User`` with Django's ``UserAdmin``: the list finds by address, the change page shows the
    groups, and a user added there gets a hashed password."""
    from django.contrib.auth import get_user_model

    superuser = data[0]
    watcher = UserFactory(email="salt.watcher@example.org", role="watcher")
    client.force_login(superuser)
    found = client.get(reverse("admin:accounts_user_changelist"), {"q": "salt.watcher"}).content.decode()
    assert reverse("admin:accounts_user_change", args=[watcher.pk]) in found
    assert reverse("admin:accounts_user_change", args=[superuser.pk]) not in found
    change = client.get(reverse("admin:accounts_user_change", args=[watcher.pk])).content.decode()
    assert 'name="groups"' in change and "Watchers" in change
    new = {"username": "ops@example.org", "password1": "fluke-notch-7731", "password2": "fluke-notch-7731"}
    response = client.post(reverse("admin:accounts_user_add"), {**new, "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    added = get_user_model().objects.get(username="ops@example.org")
    assert added.password != "fluke-notch-7731" and added.check_password("fluke-notch-7731")
