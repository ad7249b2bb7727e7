"""Moderator and administrator services: deciding matches, the review queue, training runs and
model versions. Views call these; domain errors raise ``ValidationError`` (a human message) or
``PermissionDenied``.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from submissions.models import Photo

from .models import Decision, Individual, ModelVersion, Species, Suggestion, TrainingExample, TrainingRun

log = logging.getLogger(__name__)

REVIEW_PERMISSION = "submissions.review_photo"
MANAGE_MODELS_PERMISSION = "identification.manage_models"
CLAIM_TTL = timedelta(minutes=15)


def _require(user, perm: str) -> None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.has_perm(perm):
        raise PermissionDenied("You do not have permission to do this.")


# --------------------------------------------------------------------------- catalogue ids


def next_catalogue_id(species: Species) -> str:
    """The next free catalogue id for ``species``: ``<code>-0001``, ``<code>-0002``, ..."""
    prefix = f"{species.code}-"
    numbers = [
        int(m.group(1))
        for cid in Individual.objects.filter(catalogue_id__startswith=prefix).values_list("catalogue_id", flat=True)
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", cid))
    ]
    return f"{prefix}{(max(numbers) if numbers else 0) + 1:04d}"


# --------------------------------------------------------------------------- review queue


def review_queue(moderator):
    """Photos awaiting review that are unclaimed (or claimed by ``moderator``, or whose claim
    expired), oldest first."""
    _require(moderator, REVIEW_PERMISSION)
    return (
        Photo.objects.awaiting_review()
        .unclaimed_or_claimed_by(moderator, ttl=CLAIM_TTL)
        .select_related("sighting", "sighting__species", "individual", "model_version")
        .order_by("created_at", "pk")
    )


def claim_photo(*, photo, moderator) -> Photo:
    _require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if locked.status != Photo.Status.AWAITING_REVIEW:
            raise ValidationError("This photo has already been decided.")
        fresh = locked.claimed_at is not None and locked.claimed_at > timezone.now() - CLAIM_TTL
        if locked.claimed_by_id and locked.claimed_by_id != moderator.pk and fresh:
            raise ValidationError("Another moderator is reviewing this photo.")
        locked.claimed_by = moderator
        locked.claimed_at = timezone.now()
        locked.save(update_fields=["claimed_by", "claimed_at", "updated_at"])
    photo.claimed_by, photo.claimed_at = locked.claimed_by, locked.claimed_at
    return locked


def release_claim(*, photo, moderator) -> None:
    _require(moderator, REVIEW_PERMISSION)
    Photo.objects.filter(pk=photo.pk, claimed_by=moderator).update(claimed_by=None, claimed_at=None)
    photo.claimed_by = None
    photo.claimed_at = None


# --------------------------------------------------------------------------- decisions


def _shown_suggestions(photo) -> list[dict]:
    rows = Suggestion.objects.filter(photo=photo)
    if photo.model_version_id:
        rows = rows.filter(model_version_id=photo.model_version_id)
    return [
        {
            "rank": s.rank,
            "individual_id": s.individual_id,
            "catalogue_id": s.individual.catalogue_id if s.individual_id else None,
            "score": round(s.score, 4),
        }
        for s in rows.select_related("individual").order_by("rank")
    ]


def _lock_for_decision(photo, moderator) -> Photo:
    _require(moderator, REVIEW_PERMISSION)
    locked = Photo.objects.select_for_update().get(pk=photo.pk)
    if locked.status != Photo.Status.AWAITING_REVIEW:
        raise ValidationError("This photo has already been decided.")
    return locked


def _queue_rerank_batch_mates(photo) -> None:
    from .tasks import rerank_photo

    mates = list(
        Photo.objects.awaiting_review().filter(sighting_id=photo.sighting_id).exclude(pk=photo.pk).values_list("pk", flat=True)
    )

    def queue():
        for pk in mates:
            rerank_photo.delay(pk)

    transaction.on_commit(queue)


def _assign(photo: Photo, moderator, individual: Individual, action: str, status: str) -> Decision:
    scores = _shown_suggestions(photo)
    now = timezone.now()
    photo.individual = individual
    photo.status = status
    photo.decided_at = now
    photo.claimed_by = None
    photo.claimed_at = None
    photo.save()
    decision = Decision.objects.create(
        photo=photo,
        moderator=moderator,
        action=action,
        individual=individual,
        model_version_id=photo.model_version_id,
        scores=scores,
    )
    TrainingExample.objects.update_or_create(
        photo=photo, defaults={"individual": individual, "status": TrainingExample.Status.QUEUED, "used_by": None}
    )
    _queue_rerank_batch_mates(photo)
    from .tasks import notify_watchers

    transaction.on_commit(lambda: notify_watchers.delay(decision.pk))
    return decision


def confirm_match(*, photo, moderator, individual) -> Decision:
    """The photo shows ``individual``: it joins the gallery at once and becomes training data."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        individual = Individual.objects.get(pk=individual.pk)
        while individual.merged_into_id:
            individual = individual.merged_into
        decision = _assign(locked, moderator, individual, Decision.Action.CONFIRM, Photo.Status.CONFIRMED)
    _refresh(photo, locked)
    return decision


def name_new_individual(*, photo, moderator, nickname: str = "") -> Individual:
    """The photo shows a whale not in the catalogue: create it with the next catalogue id."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        species = locked.sighting.species
        for _ in range(5):
            try:
                with transaction.atomic():
                    individual = Individual.objects.create(
                        catalogue_id=next_catalogue_id(species),
                        nickname=(nickname or "").strip()[:100],
                        species=species,
                        created_by=moderator,
                    )
                break
            except IntegrityError:  # another moderator took that id at the same moment
                continue
        else:
            raise ValidationError("Could not allocate a catalogue id; please try again.")
        _assign(locked, moderator, individual, Decision.Action.NEW_INDIVIDUAL, Photo.Status.NEW_INDIVIDUAL)
    _refresh(photo, locked)
    return individual


def reject_photo(*, photo, moderator, reason) -> Decision:
    if reason not in Decision.RejectReason.values:
        raise ValidationError(f"Unknown reason {reason!r}.")
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        scores = _shown_suggestions(locked)
        locked.status = Photo.Status.REJECTED
        locked.reject_reason = reason
        locked.decided_at = timezone.now()
        locked.claimed_by = None
        locked.claimed_at = None
        locked.save()
        decision = Decision.objects.create(
            photo=locked, moderator=moderator, action=Decision.Action.REJECT, reject_reason=reason,
            model_version_id=locked.model_version_id, scores=scores,
        )
    _refresh(photo, locked)
    return decision


def skip_photo(*, photo, moderator) -> Decision:
    """Leave it for someone else: release the claim and log the skip."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        locked.claimed_by = None
        locked.claimed_at = None
        locked.save(update_fields=["claimed_by", "claimed_at", "updated_at"])
        decision = Decision.objects.create(
            photo=locked, moderator=moderator, action=Decision.Action.SKIP, model_version_id=locked.model_version_id
        )
    _refresh(photo, locked)
    return decision


def retry_photo(*, photo, actor) -> Photo:
    """A failed (or stuck) photo goes back to UPLOADED and is queued again."""
    _require(actor, REVIEW_PERMISSION)
    from .tasks import process_photo

    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        stuck = Photo.objects.stuck().filter(pk=locked.pk).exists()
        if locked.status != Photo.Status.FAILED and not stuck:
            raise ValidationError("Only failed or stuck photos can be retried.")
        locked.status = Photo.Status.UPLOADED
        locked.failure_code = ""
        locked.failure_reason = ""
        locked.save()
        Decision.objects.create(
            photo=locked, moderator=actor, action=Decision.Action.RETRY, model_version_id=locked.model_version_id
        )
        transaction.on_commit(lambda: process_photo.delay(locked.pk))
    _refresh(photo, locked)
    return locked


def _refresh(photo, locked) -> None:
    """Keep the caller's instance in step with the saved row."""
    if photo is not locked:
        photo.refresh_from_db()


# --------------------------------------------------------------------------- emails


def _individual_url(individual) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/individuals/{individual.catalogue_id}/"


def _whale_name(individual) -> str:
    return f"{individual.catalogue_id} \u201c{individual.nickname}\u201d" if individual.nickname else individual.catalogue_id


def send_decision_emails(decision_id: int) -> int:
    """Tell the watcher whose photo was identified, and earlier watchers of the same whale that it
    was seen again. Returns the number of emails sent."""
    decision = (
        Decision.objects.filter(pk=decision_id, action__in=(Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL))
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
        .objects.filter(sightings__photos__individual=individual, sightings__photos__status__in=(
            Photo.Status.CONFIRMED, Photo.Status.NEW_INDIVIDUAL))
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


# --------------------------------------------------------------------------- training and models


def start_training_run(*, user, epochs=None, arch=None, image_size=None, fine_tune: bool = True) -> TrainingRun:
    _require(user, MANAGE_MODELS_PERMISSION)
    from .tasks import run_training

    options = {
        "epochs": int(epochs or settings.ML_DEFAULT_EPOCHS),
        "arch": arch or settings.ML_DEFAULT_ARCH,
        "image_size": int(image_size or settings.ML_DEFAULT_IMAGE_SIZE),
        "fine_tune": bool(fine_tune),
    }
    if options["epochs"] < 1 or options["image_size"] < 32:
        raise ValidationError("Epochs must be at least 1 and the image size at least 32 pixels.")
    with transaction.atomic():
        # serialise concurrent starts on the table lock-free way: lock existing in-progress rows
        if TrainingRun.objects.select_for_update().in_progress().exists():
            raise ValidationError("A training run is already queued or running.")
        run = TrainingRun.objects.create(options=options, started_by=user)
        transaction.on_commit(lambda: run_training.delay(run.pk))
    return run


def cancel_training_run(*, run, user) -> TrainingRun:
    _require(user, MANAGE_MODELS_PERMISSION)
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == TrainingRun.Status.QUEUED:
            locked.status = TrainingRun.Status.CANCELLED
            locked.cancel_requested = True
            locked.finished_at = timezone.now()
            locked.save()
        elif locked.status == TrainingRun.Status.RUNNING:
            locked.cancel_requested = True
            locked.save(update_fields=["cancel_requested"])
        else:
            raise ValidationError("This training run has already finished.")
    run.refresh_from_db()
    return run


def promote_model_version(*, version, user) -> ModelVersion:
    """Embed the gallery with ``version`` (in the pipeline queue), then switch to it atomically."""
    _require(user, MANAGE_MODELS_PERMISSION)
    from .tasks import reembed_gallery

    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.is_active:
            raise ValidationError("This model version is already active.")
        locked.promoted_by = user
        locked.save(update_fields=["promoted_by"])
        transaction.on_commit(lambda: reembed_gallery.delay(locked.pk))
    version.refresh_from_db()
    return version


def rollback_model(*, user) -> ModelVersion:
    """Re-activate the version promoted before the active one."""
    _require(user, MANAGE_MODELS_PERMISSION)
    active = ModelVersion.objects.active().first()
    previous = ModelVersion.objects.filter(promoted_at__isnull=False).exclude(pk=getattr(active, "pk", None))
    if active is not None and active.promoted_at is not None:
        previous = previous.filter(promoted_at__lt=active.promoted_at)
    previous = previous.order_by("-promoted_at").first()
    if previous is None:
        raise ValidationError("There is no earlier model version to roll back to.")
    return promote_model_version(version=previous, user=user)


def dashboard_summary() -> dict:
    active = ModelVersion.objects.active().first()
    photos = Photo.objects
    return {
        "active_version": active,
        "versions": list(ModelVersion.objects.all()[:20]),
        "queued_examples": TrainingExample.objects.queued().count(),
        "usable_examples": TrainingExample.objects.usable().count(),
        "gallery_photos": photos.in_gallery().count(),
        "individuals": Individual.objects.active().count(),
        "awaiting_review": photos.awaiting_review().count(),
        "processing": photos.filter(status__in=(Photo.Status.UPLOADED, Photo.Status.PROCESSING)).count(),
        "failed": photos.failed().count(),
        "stuck": photos.stuck().count(),
        "runs": list(TrainingRun.objects.select_related("model_version", "started_by")[:20]),
        "current_run": TrainingRun.objects.in_progress().first(),
        "last_decision_at": Decision.objects.aggregate(t=Max("created_at"))["t"],
    }
