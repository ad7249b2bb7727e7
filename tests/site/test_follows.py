"""Following a whale (issue 14, item 3), in process: follows, the notices and e-mails they bring
(seen again, named, merged, new to science here), and the one-click unsubscribe link."""

import re

import pytest
from django.apps import apps
from django.urls import reverse

from follows.following import follow, is_following, unfollow
from follows.models import Follow, Notification
from follows.unsubscribe import make_token
from identification.review.curation import merge_individuals
from identification.review.decisions import confirm_match, name_new_individual
from identification.review.naming import set_nickname
from identification.review.notify import send_decision_emails
from submissions.models import Photo
from tests.factories import PASSWORD, IndividualFactory, PhotoFactory, SightingFactory, UserFactory

pytestmark = pytest.mark.django_db


def pending_photo(watcher, place="Skjálfandi Bay"):
    return PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW, sighting=SightingFactory(submitted_by=watcher, place_name=place)
    )


def unsubscribe_link(message) -> str:
    return re.search(r"<(http[^>]+)>", message.extra_headers["List-Unsubscribe"]).group(1)


def test_follow_twice_is_one_follow_and_unfollow_stops_it():
    user, whale = UserFactory(), IndividualFactory()
    assert follow(user, whale).created and not follow(user, whale).created
    assert Follow.objects.filter(user=user).count() == 1 and is_following(user, whale)
    assert unfollow(user, whale) and not unfollow(user, whale) and not is_following(user, whale)


def test_following_a_merged_whale_follows_the_one_it_was_merged_into():
    moderator, user = UserFactory(role="moderator"), UserFactory()
    source, target = IndividualFactory(), IndividualFactory()
    merge_individuals(source=source, target=target, moderator=moderator)
    done = follow(user, source)
    assert done.redirected and done.individual == target
    assert list(Follow.objects.filter(user=user).values_list("individual__catalogue_id", flat=True)) == [
        target.catalogue_id
    ]


def test_a_confirmed_photo_tells_followers_it_was_seen_again_and_the_watcher_follows(mailoutbox):
    moderator, follower = UserFactory(role="moderator"), UserFactory(email="fan@example.org")
    watcher = UserFactory(email="watcher@example.org")
    whale = IndividualFactory(nickname="Salt")
    follow(follower, whale)
    decisions = [confirm_match(photo=pending_photo(watcher), moderator=moderator, individual=whale)]
    assert send_decision_emails(decisions[0].pk) == 2 and send_decision_emails(decisions[0].pk) == 0
    seen = next(m for m in mailoutbox if m.to == ["fan@example.org"])
    assert seen.subject == f"{whale.catalogue_id} \u201cSalt\u201d was seen again"
    assert f"/individuals/{whale.catalogue_id}/" in seen.body and "Skjálfandi Bay" in seen.body
    assert seen.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_link(seen) in seen.body
    assert Follow.objects.get(user=watcher, individual=whale).automatic  # matched photo: followed for them
    assert Notification.objects.get(user=follower).kind == Notification.Kind.SEEN_AGAIN
    assert Notification.objects.get(user=watcher).kind == Notification.Kind.IDENTIFIED


def test_a_new_individual_is_new_to_science_here(mailoutbox):
    moderator, watcher = UserFactory(role="moderator"), UserFactory(email="watcher@example.org")
    photo = pending_photo(watcher)
    whale = name_new_individual(photo=photo, moderator=moderator, nickname="Comet")
    decision = photo.decisions.get()
    assert send_decision_emails(decision.pk) == 1
    (mail,) = mailoutbox
    assert "new to science here" in mail.subject and whale.catalogue_id in mail.subject and "Comet" in mail.body
    notice = Notification.objects.get(user=watcher)
    assert notice.kind == Notification.Kind.NEW_INDIVIDUAL and "new to science here" in notice.body


def test_naming_a_whale_tells_its_followers_once(mailoutbox):
    moderator, fan, other = UserFactory(role="moderator"), UserFactory(email="fan@example.org"), UserFactory()
    whale = IndividualFactory()
    follow(fan, whale)
    decision = set_nickname(individual=whale, nickname="  Ziggy   Stardust ", moderator=moderator)
    assert set_nickname(individual=whale, nickname="Ziggy Stardust", moderator=moderator) is None  # no change
    assert send_decision_emails(decision.pk) == 1 and send_decision_emails(decision.pk) == 0
    (mail,) = mailoutbox
    assert mail.to == ["fan@example.org"] and "\u201cZiggy Stardust\u201d" in mail.subject
    assert not Notification.objects.filter(user=other).exists()


def test_a_merge_moves_follows_and_tells_the_merged_whales_followers(mailoutbox):
    moderator = UserFactory(role="moderator")
    fan, both = UserFactory(email="fan@example.org"), UserFactory(email="both@example.org")
    source, target = IndividualFactory(), IndividualFactory(nickname="Big")
    follow(fan, source), follow(both, source), follow(both, target)
    decision = merge_individuals(source=source, target=target, moderator=moderator)
    assert set(Follow.objects.filter(individual=target).values_list("user__email", flat=True)) == {
        "fan@example.org",
        "both@example.org",
    }
    assert not Follow.objects.filter(individual=source).exists()
    assert send_decision_emails(decision.pk) == 2 and send_decision_emails(decision.pk) == 0
    assert all(source.catalogue_id in m.subject and target.catalogue_id in m.body for m in mailoutbox)


def test_the_unsubscribe_link_asks_then_stops_and_a_reused_link_says_so(client):
    fan, whale = UserFactory(), IndividualFactory(nickname="Echo")
    follow(fan, whale)
    url = reverse("follows:unsubscribe", kwargs={"token": make_token(fan.pk, whale.pk)})
    page = client.get(url)  # a mail scanner's GET changes nothing
    assert page.status_code == 200 and b"Stop e-mails about" in page.content and is_following(fan, whale)
    client.handler.enforce_csrf_checks = True  # RFC 8058 one-click: a mail client's POST has no CSRF token
    done = client.post(url, {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and b"Unsubscribed" in done.content and not is_following(fan, whale)
    again = client.post(url, {"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200 and b"Already unsubscribed" in again.content
    assert client.get(url[:-6] + "xxxxx/").status_code == 400


def test_follow_views_answer_merged_and_unknown_whales(client):
    moderator, user = UserFactory(role="moderator"), UserFactory()
    source, target = IndividualFactory(), IndividualFactory()
    merge_individuals(source=source, target=target, moderator=moderator)
    client.login(username=user.email, password=PASSWORD)
    response = client.post(reverse("follows:follow", args=[source.catalogue_id]), follow=True)
    assert f"you now follow {target.catalogue_id}".encode() in response.content
    assert is_following(user, target)
    missing = client.post(reverse("follows:follow", args=["HW-9999"]))
    assert missing.status_code == 404 and "No whale in the catalogue has the id “HW-9999”".encode() in missing.content
    whale_page = client.get(reverse("identification:individual_detail", args=["HW-9999"]))
    assert (
        whale_page.status_code == 404
        and "No whale in the catalogue has the id “HW-9999”".encode() in whale_page.content
    )
    page = client.get(reverse("follows:following"))
    assert target.catalogue_id.encode() in page.content and b"Unfollow" in page.content


def test_the_notifications_page_shows_unread_then_marks_them_read(client, mailoutbox):
    moderator, fan = UserFactory(role="moderator"), UserFactory()
    whale = IndividualFactory()
    follow(fan, whale)
    send_decision_emails(set_nickname(individual=whale, nickname="Nova", moderator=moderator).pk)
    client.login(username=fan.email, password=PASSWORD)
    home = client.get("/")
    assert b'id="unread-count">1' in home.content
    page = client.get(reverse("follows:notifications"))
    assert b"is now called" in page.content and b"is-unread" in page.content
    assert Notification.objects.get(user=fan).read_at is not None
    assert b'id="unread-count"' not in client.get("/").content


def test_the_migration_makes_earlier_photographers_follow_their_whales():
    from importlib import import_module

    migration = import_module("follows.migrations.0002_follow_earlier_photographers")
    moderator, watcher = UserFactory(role="moderator"), UserFactory()
    source, target = IndividualFactory(), IndividualFactory()
    PhotoFactory(status=Photo.Status.CONFIRMED, individual=source, sighting=SightingFactory(submitted_by=watcher))
    PhotoFactory(status=Photo.Status.REJECTED, individual=None, sighting=SightingFactory(submitted_by=UserFactory()))
    merge_individuals(source=source, target=target, moderator=moderator)
    Follow.objects.all().delete()
    migration.follow_photographed_whales(apps, None)
    assert list(Follow.objects.values_list("user_id", "individual_id", "automatic")) == [(watcher.pk, target.pk, True)]
