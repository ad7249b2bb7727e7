"""Deciding a photo: confirm a match, name a new individual, reject or skip, with consensus review
(``REVIEW_CONSENSUS`` moderators must agree) and the catalogue ids of new individuals.

A final match puts the photo in the gallery at once, makes it a training example, re-ranks its
batch-mates and e-mails its watchers (``review.notify``, queued through ``jobs``).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from submissions.models import Photo

from .. import jobs
from ..models import Decision, Individual, Species, Suggestion, TrainingExample
from ..permissions import REVIEW_PERMISSION, is_model_admin, require
from ..training.dataset import resolve_merged

CATALOGUE_ID_ATTEMPTS = 5  # two moderators naming new whales at once: try the next free id again


def next_catalogue_id(species: Species) -> str:
    """The next free catalogue id for ``species``: ``<code>-0001``, ``<code>-0002``, ..."""
    prefix = f"{species.code}-"
    numbers = [
        int(m.group(1))
        for cid in Individual.objects.filter(catalogue_id__startswith=prefix).values_list("catalogue_id", flat=True)
        if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", cid))
    ]
    return f"{prefix}{(max(numbers) if numbers else 0) + 1:04d}"


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
    require(moderator, REVIEW_PERMISSION)
    locked = Photo.objects.select_for_update().get(pk=photo.pk)
    if locked.status != Photo.Status.AWAITING_REVIEW:
        raise ValidationError("This photo has already been decided.")
    return locked


def queue_rerank_batch_mates(photo) -> None:
    mates = list(
        Photo.objects.awaiting_review()
        .filter(sighting_id=photo.sighting_id)
        .exclude(pk=photo.pk)
        .values_list("pk", flat=True)
    )
    for pk in mates:
        jobs.enqueue(jobs.RERANK_PHOTO, pk)


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
    queue_rerank_batch_mates(photo)
    jobs.enqueue_later(jobs.NOTIFY_WATCHERS, decision.pk, countdown=settings.NOTIFY_UNDO_WINDOW_S)
    return decision


def consensus_needed() -> int:
    return max(1, int(getattr(settings, "REVIEW_CONSENSUS", 1) or 1))


def _vote(locked: Photo, moderator, action: str, individual=None, reason: str = "", nickname: str = ""):
    """Consensus review. Returns None when this decision is final, else the pending vote it logged.

    A match is final once ``REVIEW_CONSENSUS`` different moderators agree (same individual, or all
    "new individual"); a disagreement flags the photo ``needs_admin``; an administrator's decision
    on a disputed photo is final. A reject with no open votes is final at once."""
    if locked.needs_admin and not is_model_admin(moderator):
        raise ValidationError("Moderators disagreed on this photo; an administrator decides it.")
    if locked.needs_admin:
        return None
    votes = list(Decision.objects.open_votes().filter(photo=locked))
    if any(v.moderator_id == moderator.pk for v in votes):
        raise ValidationError("You have already decided this photo; another moderator has to agree.")
    needed = consensus_needed()
    if not votes and (needed == 1 or action == Decision.Action.REJECT):
        return None
    agree = (
        all(
            v.action == action and (action != Decision.Action.CONFIRM or v.individual_id == individual.pk)
            for v in votes
        )
        and action != Decision.Action.REJECT
    )
    if agree and len(votes) + 1 >= needed:
        return None
    decision = Decision.objects.create(
        photo=locked,
        moderator=moderator,
        action=action,
        individual=individual,
        reject_reason=reason,
        model_version_id=locked.model_version_id,
        scores=_shown_suggestions(locked),
        pending=True,
        details={"consensus": f"{len(votes) + 1} of {needed}", "nickname": nickname, "agrees": agree},
    )
    locked.claimed_by = None
    locked.claimed_at = None
    if not agree:
        locked.needs_admin = True
    locked.save(update_fields=["claimed_by", "claimed_at", "needs_admin", "updated_at"])
    return decision


def _close_votes(locked: Photo, decision: Decision) -> None:
    """A final decision closes the photo's open votes (remembered so that undo can re-open them)."""
    ids = list(Decision.objects.open_votes().filter(photo=locked).values_list("pk", flat=True))
    Decision.objects.filter(pk__in=ids).update(pending=False)
    if ids or locked.needs_admin:
        decision.details = {
            **decision.details,
            "votes": ids,
            "consensus": f"{len(ids) + 1} of {consensus_needed()}",
            **({"admin_resolved": True} if locked.needs_admin else {}),
        }
        decision.save(update_fields=["details"])
    if locked.needs_admin:
        Photo.objects.filter(pk=locked.pk).update(needs_admin=False)
        locked.needs_admin = False


def _same_species(photo, individual) -> None:
    """A photo joins only an individual of its own species (each species has its own catalogue): correct the
    photo's species first if it was filed wrongly."""
    species = photo.species
    if species is None:
        raise ValidationError(
            f"This photo's species is unknown; {individual.catalogue_id} is a {individual.species}. "
            "Set the photo's species first."
        )
    if individual.species_id != species.pk:
        raise ValidationError(
            f"This photo is filed as {species}; {individual.catalogue_id} is a "
            f"{individual.species}. Correct the species first if the filing is wrong."
        )


def confirm_match(*, photo, moderator, individual) -> Decision:
    """The photo shows ``individual``: it joins the gallery at once and becomes training data
    (with REVIEW_CONSENSUS > 1: once enough moderators agree; until then a pending vote is returned)."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        individual = resolve_merged(Individual.objects.get(pk=individual.pk))
        _same_species(locked, individual)
        decision = _vote(locked, moderator, Decision.Action.CONFIRM, individual=individual)
        if decision is None:
            decision = _assign(locked, moderator, individual, Decision.Action.CONFIRM, Photo.Status.CONFIRMED)
            _close_votes(locked, decision)
    refresh_caller(photo, locked)
    return decision


def name_new_individual(*, photo, moderator, nickname: str = "") -> Individual:
    """The photo shows a whale not in the catalogue: create it with the next catalogue id.
    Returns None while the decision waits for consensus (REVIEW_CONSENSUS > 1)."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        if _vote(locked, moderator, Decision.Action.NEW_INDIVIDUAL, nickname=(nickname or "").strip()[:100]):
            refresh_caller(photo, locked)
            return None
        if not (nickname or "").strip():
            earlier = Decision.objects.open_votes().filter(photo=locked, action=Decision.Action.NEW_INDIVIDUAL)
            nickname = next((d.details.get("nickname") for d in earlier if d.details.get("nickname")), "")
        species = locked.species
        if species is None:
            raise ValidationError("This photo's species is unknown: set its species before naming a new individual.")
        for _ in range(CATALOGUE_ID_ATTEMPTS):
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
        decision = _assign(locked, moderator, individual, Decision.Action.NEW_INDIVIDUAL, Photo.Status.NEW_INDIVIDUAL)
        decision.details = {**decision.details, "created_individual": individual.catalogue_id}
        decision.save(update_fields=["details"])
        _close_votes(locked, decision)
    refresh_caller(photo, locked)
    return individual


def reject_photo(*, photo, moderator, reason) -> Decision:
    if reason not in Decision.RejectReason.values:
        raise ValidationError(f"Unknown reason {reason!r}.")
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        vote = _vote(locked, moderator, Decision.Action.REJECT, reason=reason)
        if vote is not None:
            refresh_caller(photo, locked)
            return vote
        scores = _shown_suggestions(locked)
        locked.status = Photo.Status.REJECTED
        locked.reject_reason = reason
        locked.decided_at = timezone.now()
        locked.claimed_by = None
        locked.claimed_at = None
        locked.save()
        decision = Decision.objects.create(
            photo=locked,
            moderator=moderator,
            action=Decision.Action.REJECT,
            reject_reason=reason,
            model_version_id=locked.model_version_id,
            scores=scores,
        )
        _close_votes(locked, decision)
    refresh_caller(photo, locked)
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
    refresh_caller(photo, locked)
    return decision


def refresh_caller(photo, locked) -> None:
    """Keep the caller's instance in step with the saved row (the services lock a fresh copy)."""
    if photo is not locked:
        photo.refresh_from_db()
