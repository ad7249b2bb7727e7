"""Telling watchers and followers about a whale, by e-mail and on their notifications page.

* A match or a new individual (after the undo window ``NOTIFY_UNDO_WINDOW_S``): the watcher whose photos
  it was is told (a new whale is "new to science here") and follows it from then on; its followers hear
  that it was seen again. At most one notice each per sighting and outcome, none for an undone decision.
* A nickname set, or a merge: the whale's followers (for a merge, those who followed the merged one).

Each notice is a ``follows.Notification`` (keyed by the event, so a task run twice tells once) and, for a
user with an address, one e-mail naming the whale, linking to its page, with a one-click unsubscribe."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction

from follows.following import follow
from follows.models import Follow, Notification
from follows.notices import record
from follows.unsubscribe import unsubscribe_url
from submissions.models import Sighting

from ..models import Decision

OUTCOMES = (Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL)
FOLLOWER_NEWS = (Decision.Action.NAME, Decision.Action.MERGE)


def individual_url(individual) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/individuals/{individual.catalogue_id}/"


def whale_name(individual) -> str:
    return (
        f"{individual.catalogue_id} \u201c{individual.nickname}\u201d"
        if individual.nickname
        else individual.catalogue_id
    )


@dataclass
class Notice:
    kind: str
    subject: str
    intro: str


def _outcome_batch(decision) -> list:
    """Every final decision giving a photo of this sighting the same outcome (same action, same whale),
    undone ones included: one outcome of one sighting is told once."""
    return list(
        Decision.objects.filter(
            photo__sighting_id=decision.photo.sighting_id,
            action=decision.action,
            individual=decision.individual,
            pending=False,
        ).select_for_update()
    )


def send_decision_emails(decision_id: int) -> int:
    """Tell the people a decision concerns (see the module docstring). The task runs after the undo
    window for an outcome, so a sighting decided photo by photo is one batch and a decision undone
    meanwhile tells nobody. Returns the number of e-mails sent."""
    with transaction.atomic():
        decision = (
            Decision.objects.filter(pk=decision_id, action__in=OUTCOMES + FOLLOWER_NEWS, pending=False)
            .select_related("photo__sighting__submitted_by", "individual")
            .select_for_update(of=("self",))
            .first()
        )
        if decision is None or decision.individual is None or decision.undone_at:
            return 0
        if decision.action in FOLLOWER_NEWS:
            return _follower_news(decision)
        if decision.photo is None:
            return 0
        Sighting.objects.select_for_update().filter(pk=decision.photo.sighting_id).first()  # one batch at a time
        batch = _outcome_batch(decision)
        if any("notified" in d.details for d in batch):
            return 0  # told already (a redelivery, a batch-mate's task, or an undo and the same decision again)
        live = [d for d in batch if not d.undone_at]
        sent = _tell_outcome(decision, photos=len(live))
        for d in live:
            Decision.objects.filter(pk=d.pk).update(
                details={**d.details, "notified": sent if d.pk == decision.pk else 0}
            )
    return sent


def _tell_outcome(decision, photos: int) -> int:
    individual = decision.individual
    name = whale_name(individual)
    sighting = decision.photo.sighting
    watcher = sighting.submitted_by
    key = f"{decision.action}:{sighting.pk}:{individual.pk}"
    sent = 0
    if watcher is not None:
        follow(watcher, individual, automatic=True)  # watchers whose photo was matched follow it
        sent += _deliver(watcher, individual, key, _outcome_notice(decision, photos, name))
    place = f" near {sighting.place_name}" if sighting.place_name else ""
    seen = Notice(
        Notification.Kind.SEEN_AGAIN,
        f"{name} was seen again",
        f"A whale you follow, {name}, was seen again on {sighting.observed_at:%d %B %Y}{place}.",
    )
    for f in _followers(individual).exclude(user_id=getattr(watcher, "pk", None)):
        sent += _deliver(f.user, individual, key, seen)
    return sent


def _outcome_notice(decision, photos: int, name: str) -> Notice:
    sighting = decision.photo.sighting
    what = f"{photos} of your photos" if photos > 1 else "your photo"
    if decision.action == Decision.Action.NEW_INDIVIDUAL:
        return Notice(
            Notification.Kind.NEW_INDIVIDUAL,
            f"Your photo shows a new whale: {name}, new to science here",
            f"Thank you! In your sighting of {sighting.observed_at:%d %B %Y}, {what} "
            f"show{'s' if photos <= 1 else ''} a whale new to our catalogue: new to science here. It is now {name}.",
        )
    return Notice(
        Notification.Kind.IDENTIFIED,
        f"Your whale has been identified: {name}",
        f"Thank you! In your sighting of {sighting.observed_at:%d %B %Y}, {what} matched {name}.",
    )


def _follower_news(decision) -> int:
    """A nickname set or a merge, told once to the whale's followers (the merged one's, for a merge)."""
    if "notified" in decision.details:
        return 0
    individual, name = decision.individual, whale_name(decision.individual)
    if decision.action == Decision.Action.MERGE:
        users = get_user_model().objects.filter(pk__in=decision.details.get("followers", []))
        source = decision.details.get("source", "")
        notice = Notice(
            Notification.Kind.MERGED,
            f"{source} is the same whale as {name}",
            f"The whale you followed, {source}, turned out to be {name}: their sightings are now one history, "
            f"and you follow {name}.",
        )
    else:
        users = get_user_model().objects.filter(follows__individual=individual)
        notice = Notice(
            Notification.Kind.NAMED,
            f"{individual.catalogue_id} is now called {name}",
            f"A whale you follow, {individual.catalogue_id}, has been named: it is now {name}.",
        )
    key = f"{decision.action}:{decision.pk}"
    sent = sum(_deliver(user, individual, key, notice) for user in users.distinct())
    Decision.objects.filter(pk=decision.pk).update(details={**decision.details, "notified": sent})
    return sent


def _followers(individual):
    return Follow.objects.filter(individual=individual).select_related("user")


def _deliver(user, individual, key: str, notice: Notice) -> int:
    """Record the notice and, the first time and for a user with an address, e-mail it with its
    unsubscribe link (body and RFC 8058 headers). Returns the number of e-mails sent (0 or 1)."""
    if not record(user, individual, notice.kind, key, notice.subject, notice.intro) or not user.email:
        return 0
    body = f"{notice.intro}\n\nSee its sightings: {individual_url(individual)}\n"
    stop = unsubscribe_url(user.pk, individual.pk)
    message = EmailMessage(
        notice.subject,
        f"{body}\nStop e-mails about {individual.catalogue_id} (one click): {stop}\n",
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
        headers={"List-Unsubscribe": f"<{stop}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    return message.send()
