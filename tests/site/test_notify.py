"""Watchers' e-mails (issue 12, item 9), in process: at most one mail per sighting and outcome, for
the whole batch; nothing for a decision undone within the undo window; an undo and the same decision
again never send a second mail."""

import pytest
from django.conf import settings

from follows.following import follow
from identification.review.curation import undo_last_decision
from identification.review.decisions import confirm_match
from identification.review.notify import send_decision_emails
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, UserFactory

pytestmark = pytest.mark.django_db


def whale_seen_before():
    """A whale with an earlier watcher's photo, who follows it (as confirmation, or the migration, made them)."""
    individual = IndividualFactory(nickname="Moby")
    earlier = UserFactory(email="earlier@example.org")
    PhotoFactory(status=Photo.Status.CONFIRMED, individual=individual, sighting=SightingFactory(submitted_by=earlier))
    follow(earlier, individual, automatic=True)
    return individual


def sighting_of(n: int, watcher):
    sighting = SightingFactory(submitted_by=watcher)
    return [PhotoFactory(status=Photo.Status.AWAITING_REVIEW, sighting=sighting) for _ in range(n)]


def test_a_sighting_of_seven_photos_sends_one_mail_per_watcher(mailoutbox):
    moderator, watcher = UserFactory(role="moderator"), UserFactory(email="watcher@example.org")
    whale = whale_seen_before()
    decisions = [confirm_match(photo=p, moderator=moderator, individual=whale) for p in sighting_of(7, watcher)]
    sent = sum(send_decision_emails(d.pk) for d in decisions)  # each decision's task, after the window
    assert sent == 2 and len(mailoutbox) == 2
    mine = next(m for m in mailoutbox if m.to == ["watcher@example.org"])
    assert "7 of your photos" in mine.body and whale.catalogue_id in mine.subject
    assert [m.to for m in mailoutbox if m is not mine] == [["earlier@example.org"]]
    assert settings.NOTIFY_UNDO_WINDOW_S > 0


def test_an_undone_decision_sends_nothing_and_a_redo_sends_once(mailoutbox):
    moderator, watcher = UserFactory(role="moderator"), UserFactory(email="watcher@example.org")
    whale = whale_seen_before()
    (photo,) = sighting_of(1, watcher)

    first = confirm_match(photo=photo, moderator=moderator, individual=whale)
    undo_last_decision(moderator=moderator)  # within the window: its task finds it undone
    assert send_decision_emails(first.pk) == 0 and mailoutbox == []

    photo.refresh_from_db()
    second = confirm_match(photo=photo, moderator=moderator, individual=whale)
    assert send_decision_emails(second.pk) == 2  # the watcher and the earlier watcher, once

    undo_last_decision(moderator=moderator)  # after the mail: undo, then the same decision again
    photo.refresh_from_db()
    third = confirm_match(photo=photo, moderator=moderator, individual=whale)
    assert send_decision_emails(third.pk) == 0
    assert len(mailoutbox) == 2
