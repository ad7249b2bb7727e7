"""E-mails to watchers: the one whose photos were identified, and earlier watchers of the same whale.
Batched per sighting and outcome, and sent only after the undo window (``NOTIFY_UNDO_WINDOW_S``)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction

from submissions.models import Photo, Sighting

from ..models import Decision


def _individual_url(individual) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/individuals/{individual.catalogue_id}/"


def _whale_name(individual) -> str:
    return (
        f"{individual.catalogue_id} \u201c{individual.nickname}\u201d"
        if individual.nickname
        else individual.catalogue_id
    )


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
    """Tell the watcher whose photos were identified, and earlier watchers of the same whale that it
    was seen again: at most one mail each per sighting and outcome, for every photo decided so by
    then (the task runs ``NOTIFY_UNDO_WINDOW_S`` after the decision, so a sighting decided photo by
    photo is one batch, and a decision undone meanwhile sends nothing). Returns the number sent."""
    with transaction.atomic():
        decision = (
            Decision.objects.filter(
                pk=decision_id, action__in=(Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL), pending=False
            )
            .select_related("photo__sighting__submitted_by", "individual")
            .first()
        )
        if decision is None or decision.photo is None or decision.individual is None or decision.undone_at:
            return 0
        Sighting.objects.select_for_update().filter(pk=decision.photo.sighting_id).first()  # one batch at a time
        batch = _outcome_batch(decision)
        if any("notified" in d.details for d in batch):
            return 0  # told already (a redelivery, a batch-mate's task, or an undo and the same decision again)
        live = [d for d in batch if not d.undone_at]
        sent = _send(decision, photos=len(live))
        for d in live:
            Decision.objects.filter(pk=d.pk).update(
                details={**d.details, "notified": sent if d.pk == decision.pk else 0}
            )
    return sent


def _send(decision, photos: int) -> int:
    individual = decision.individual
    name, url = _whale_name(individual), _individual_url(individual)
    sighting = decision.photo.sighting
    watcher = sighting.submitted_by
    what = f"{photos} of your photos" if photos > 1 else "your photo"
    sent = 0
    if watcher is not None and watcher.email:
        if decision.action == Decision.Action.NEW_INDIVIDUAL:
            subject = f"Your photo shows a new whale: {name}"
            intro = (
                f"Thank you! In your sighting of {sighting.observed_at:%d %B %Y}, {what} "
                f"show{'s' if photos <= 1 else ''} a whale new to our catalogue. It is now {name}."
            )
        else:
            subject = f"Your whale has been identified: {name}"
            intro = f"Thank you! In your sighting of {sighting.observed_at:%d %B %Y}, {what} matched {name}."
        sent += send_mail(
            subject, f"{intro}\n\nSee its sightings: {url}\n", settings.DEFAULT_FROM_EMAIL, [watcher.email]
        )
    earlier = (
        get_user_model()
        .objects.filter(sightings__photos__individual=individual, sightings__photos__status__in=Photo.GALLERY_STATUSES)
        .exclude(pk=getattr(watcher, "pk", None))
        .exclude(email="")
        .distinct()
    )
    place = f" near {sighting.place_name}" if sighting.place_name else ""
    for user in earlier:
        sent += send_mail(
            f"{name} was seen again",
            f"A whale you photographed, {name}, was seen again on {sighting.observed_at:%d %B %Y}{place}.\n\n"
            f"See its sightings: {url}\n",
            settings.DEFAULT_FROM_EMAIL,
            [user.email],
        )
    return sent
