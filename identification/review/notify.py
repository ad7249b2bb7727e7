"""E-mails to watchers: the one whose photo was identified, and earlier watchers of the same whale."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from submissions.models import Photo

from ..models import Decision


def _individual_url(individual) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/individuals/{individual.catalogue_id}/"


def _whale_name(individual) -> str:
    return f"{individual.catalogue_id} \u201c{individual.nickname}\u201d" if individual.nickname else individual.catalogue_id


def send_decision_emails(decision_id: int) -> int:
    """Tell the watcher whose photo was identified, and earlier watchers of the same whale that it
    was seen again. Returns the number of emails sent."""
    decision = (
        Decision.objects.filter(pk=decision_id, action__in=(Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL),
                                pending=False)
        .select_related("photo__sighting__submitted_by", "individual")
        .first()
    )
    if decision is None or decision.photo is None or decision.individual is None or decision.undone_at:
        return 0
    if decision.details.get("notified"):
        return 0  # idempotent on redelivery
    individual = decision.individual
    name, url = _whale_name(individual), _individual_url(individual)
    sighting = decision.photo.sighting
    watcher = sighting.submitted_by
    sent = 0
    if watcher is not None and watcher.email:
        if decision.action == Decision.Action.NEW_INDIVIDUAL:
            subject = f"Your photo shows a new whale: {name}"
            intro = f"Thank you! Your photo from {sighting.observed_at:%d %B %Y} shows a whale new to our catalogue. It is now {name}."
        else:
            subject = f"Your whale has been identified: {name}"
            intro = f"Thank you! Your photo from {sighting.observed_at:%d %B %Y} has been matched to {name}."
        sent += send_mail(subject, f"{intro}\n\nSee its sightings: {url}\n", settings.DEFAULT_FROM_EMAIL, [watcher.email])
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
    Decision.objects.filter(pk=decision.pk).update(details={**decision.details, "notified": sent})
    return sent
