"""Decisions, permissions, roles and emails (in process, no worker)."""

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command

from follows.following import follow
from identification.models import Decision, TrainingExample, TrainingRun
from identification.review.decisions import confirm_match, name_new_individual, reject_photo, skip_photo
from identification.review.notify import send_decision_emails
from identification.review.queue import claim_photo, review_queue
from identification.training.registry import dashboard_summary
from identification.training.runs import cancel_training_run, start_training_run
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, UserFactory

pytestmark = pytest.mark.django_db


def awaiting(**kw):
    return PhotoFactory(status=Photo.Status.AWAITING_REVIEW, **kw)


def test_roles_and_permissions():
    watcher, moderator, admin = UserFactory(role="watcher"), UserFactory(role="moderator"), UserFactory(role="admin")
    assert not watcher.has_perm("submissions.review_photo")
    assert moderator.has_perm("submissions.review_photo") and not moderator.has_perm("identification.manage_models")
    admin = type(admin).objects.get(pk=admin.pk)
    assert admin.has_perm("identification.manage_models") and admin.has_perm("submissions.review_photo")
    with pytest.raises(PermissionDenied):
        review_queue(watcher)
    with pytest.raises(PermissionDenied):
        start_training_run(user=moderator)
    call_command("grant_role", watcher.email, "moderator")
    assert type(watcher).objects.get(pk=watcher.pk).has_perm("submissions.review_photo")


def test_confirm_creates_audit_training_example_and_emails(mailoutbox, django_capture_on_commit_callbacks):
    moderator = UserFactory(role="moderator")
    earlier_watcher = UserFactory()
    individual = IndividualFactory(nickname="Moby")
    PhotoFactory(
        status=Photo.Status.CONFIRMED, individual=individual, sighting=SightingFactory(submitted_by=earlier_watcher)
    )
    follow(earlier_watcher, individual, automatic=True)  # as their own confirmed photo (or the migration) made them
    photo = awaiting()
    decision = confirm_match(photo=photo, moderator=moderator, individual=individual)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CONFIRMED and photo.individual == individual
    assert decision.action == Decision.Action.CONFIRM and decision.moderator == moderator
    assert TrainingExample.objects.get(photo=photo).status == TrainingExample.Status.QUEUED
    with pytest.raises(ValidationError):
        reject_photo(photo=photo, moderator=moderator, reason="not_a_fluke")

    assert send_decision_emails(decision.pk) == 2
    body = "\n".join(m.subject + m.body for m in mailoutbox)
    assert individual.catalogue_id in body and "Moby" in body and f"/individuals/{individual.catalogue_id}/" in body
    assert f"/{individual.pk}/" not in body.replace(individual.catalogue_id, "")
    assert send_decision_emails(decision.pk) == 0  # idempotent


def test_new_individual_ids_reject_skip_claim_queue():
    moderator, other = UserFactory(role="moderator"), UserFactory(role="moderator")
    IndividualFactory(catalogue_id="HW-0007")
    p1, p2, p3 = awaiting(), awaiting(), awaiting()
    ind = name_new_individual(photo=p1, moderator=moderator, nickname="Nova")
    assert ind.catalogue_id == "HW-0008" and ind.nickname == "Nova"
    claim_photo(photo=p2, moderator=other)
    assert p2 not in review_queue(moderator) and p2 in review_queue(other)
    with pytest.raises(ValidationError):
        claim_photo(photo=p2, moderator=moderator)
    Photo.objects.filter(pk=p2.pk, claimed_by=other).update(claimed_by=None, claimed_at=None)  # other lets go
    assert list(review_queue(moderator)) == [p2, p3]
    skip_photo(photo=p2, moderator=moderator)
    reject_photo(photo=p3, moderator=moderator, reason="poor_quality")
    p3.refresh_from_db()
    assert p3.status == Photo.Status.REJECTED
    assert list(Decision.objects.order_by("pk").values_list("action", flat=True)) == [
        "new_individual",
        "skip",
        "reject",
    ]


def test_only_one_training_run_at_a_time():
    admin = UserFactory(role="admin")
    admin = type(admin).objects.get(pk=admin.pk)
    run = start_training_run(user=admin, epochs=1)
    assert (
        run.status == TrainingRun.Status.QUEUED
        and run.options["arch"] == settings.ML_DEFAULT_ARCH == "efficientnet_lite0"
    )
    with pytest.raises(ValidationError):
        start_training_run(user=admin)
    cancel_training_run(run=run, user=admin)
    assert run.status == TrainingRun.Status.CANCELLED
    assert dashboard_summary()["active_version"] is None
