"""Curation: undoing a decision, correcting a crop box, merging two individuals, splitting a photo
out of one, and retrying a failed photo. Each change is logged as a ``Decision`` and queues the
re-embedding or re-ranking it makes necessary (through ``jobs``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from follows.following import move_follows
from ml.types import Box
from submissions.models import Photo

from .. import jobs
from ..models import Decision, Embedding, Individual, ModelVersion, Suggestion, TrainingExample
from ..permissions import REVIEW_PERMISSION, require
from .decisions import queue_rerank_batch_mates, refresh_caller

MIN_BOX_PX = 8  # a corrected box smaller than this each way is a slip of the mouse


def retry_photo(*, photo, actor) -> Photo:
    """A failed (or stuck) photo goes back to UPLOADED and is queued again."""
    require(actor, REVIEW_PERMISSION)
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
        jobs.enqueue(jobs.PROCESS_PHOTO, locked.pk)
    refresh_caller(photo, locked)
    return locked


UNDOABLE = (Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL, Decision.Action.REJECT, Decision.Action.SKIP)


def _drop_training_example(photo) -> None:
    """Queued examples are removed; one a run already used is excluded from future runs."""
    TrainingExample.objects.filter(photo=photo, status=TrainingExample.Status.QUEUED).delete()
    TrainingExample.objects.filter(photo=photo).update(status=TrainingExample.Status.EXCLUDED)


def undo_last_decision(*, moderator) -> Decision:
    """Reverse ``moderator``'s latest confirm / new individual / reject / skip. The photo goes back
    to awaiting review (claimed by the moderator), its queued training example is removed, an
    individual created by that decision is deleted when it has no other photos; the decision is kept
    in the audit log with ``undone_at`` set."""
    require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        decision = (
            Decision.objects.select_for_update()
            .not_undone()
            .filter(moderator=moderator, action__in=UNDOABLE, photo__isnull=False)
            .order_by("-created_at", "-pk")
            .first()
        )
        if decision is None:
            raise ValidationError("There is no decision of yours to undo.")
        photo = Photo.objects.select_for_update().get(pk=decision.photo_id)
        now = timezone.now()
        if decision.pending:
            decision.pending = False
            remaining = list(Decision.objects.open_votes().filter(photo=photo).exclude(pk=decision.pk))
            disputed = len({(v.action, v.individual_id) for v in remaining}) > 1 or any(
                v.action == Decision.Action.REJECT for v in remaining
            )
            Photo.objects.filter(pk=photo.pk).update(needs_admin=disputed)
        elif decision.action in (Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL):
            if photo.status not in Photo.GALLERY_STATUSES or photo.individual_id != decision.individual_id:
                raise ValidationError("This photo has changed since your decision; it cannot be undone.")
            individual = photo.individual
            _reopen(photo, moderator, now)
            _drop_training_example(photo)
            Decision.objects.filter(pk__in=decision.details.get("votes", [])).update(pending=True)
            if (
                decision.action == Decision.Action.NEW_INDIVIDUAL
                and individual is not None
                and not individual.photos.exclude(pk=photo.pk).exists()
                and not individual.merged.exists()
            ):
                decision.details = {**decision.details, "deleted_individual": individual.catalogue_id}
                decision.individual = None
                individual.delete()
            queue_rerank_batch_mates(photo)
        elif decision.action == Decision.Action.REJECT:
            if photo.status != Photo.Status.REJECTED:
                raise ValidationError("This photo has changed since your decision; it cannot be undone.")
            photo.reject_reason = ""
            _reopen(photo, moderator, now)
        decision.undone_at = now
        decision.save()
    return decision


def _reopen(photo, moderator, now) -> None:
    photo.status = Photo.Status.AWAITING_REVIEW
    photo.individual = None
    photo.decided_at = None
    photo.claimed_by = moderator
    photo.claimed_at = now
    photo.save()


def _queue_reembed(photo) -> None:
    """The crop changed: forget the photo's embeddings and embed it again with the stored box."""
    Embedding.objects.filter(photo=photo).delete()
    if photo.status == Photo.Status.AWAITING_REVIEW:
        jobs.enqueue(jobs.RERANK_PHOTO, photo.pk)
    elif photo.status in Photo.GALLERY_STATUSES:
        active = ModelVersion.objects.active().first()
        if active is not None:
            jobs.enqueue(jobs.REEMBED_GALLERY, active.pk, promote=False)


def correct_box(*, photo, moderator, box) -> Decision:
    """Store a moderator's crop box (original pixels; box_source MODERATOR: localizer training data),
    log it, and queue the photo's embedding and ranking again with that box."""
    require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if locked.status not in (Photo.Status.AWAITING_REVIEW, *Photo.GALLERY_STATUSES):
            raise ValidationError("Only photos awaiting review or in the gallery can have their box corrected.")
        w, h = locked.width or 0, locked.height or 0
        x0, y0 = max(0.0, float(min(box.x0, box.x1))), max(0.0, float(min(box.y0, box.y1)))
        x1, y1 = min(float(w), float(max(box.x0, box.x1))), min(float(h), float(max(box.y0, box.y1)))
        if not w or not h or x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            raise ValidationError(
                f"Draw a box around the fluke (at least {MIN_BOX_PX} pixels each way, inside the photo)."
            )
        old = [locked.box_x0, locked.box_y0, locked.box_x1, locked.box_y1, locked.box_source]
        locked.set_box(Box(x0, y0, x1, y1), Photo.BoxSource.MODERATOR, confidence=1.0, flagged=False)
        locked.save()
        decision = Decision.objects.create(
            photo=locked,
            moderator=moderator,
            action=Decision.Action.BOX,
            model_version_id=locked.model_version_id,
            individual=locked.individual,
            details={"old": old, "new": [x0, y0, x1, y1]},
        )
        _queue_reembed(locked)
    refresh_caller(photo, locked)
    return decision


def merge_individuals(*, source, target, moderator) -> Decision:
    """``source`` is the same whale as ``target``: its photos, training examples and suggestions
    move to ``target`` and ``source.merged_into`` is set (its page redirects; history is kept)."""
    require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        pair = {i.pk: i for i in Individual.objects.select_for_update().filter(pk__in=(source.pk, target.pk))}
        source, target = pair.get(source.pk), pair.get(target.pk)
        if source is None or target is None or source.pk == target.pk:
            raise ValidationError("Choose two different individuals to merge.")
        if source.merged_into_id or target.merged_into_id:
            raise ValidationError("One of these individuals was already merged.")
        if source.species_id != target.species_id:
            raise ValidationError("Individuals of different species cannot be merged.")
        photo_ids = list(Photo.objects.filter(individual=source).values_list("pk", flat=True))
        Photo.objects.filter(pk__in=photo_ids).update(individual=target, updated_at=timezone.now())
        TrainingExample.objects.filter(individual=source).update(individual=target)
        Suggestion.objects.filter(individual=source).update(individual=target)
        Individual.objects.filter(merged_into=source).update(merged_into=target)
        source.merged_into = target
        source.save(update_fields=["merged_into"])
        followers = move_follows(source, target)
        if not target.nickname and source.nickname:
            target.nickname = source.nickname
            target.save(update_fields=["nickname"])
        decision = Decision.objects.create(
            moderator=moderator,
            action=Decision.Action.MERGE,
            individual=target,
            details={
                "source_id": source.pk,
                "source": source.catalogue_id,
                "target_id": target.pk,
                "target": target.catalogue_id,
                "photos": photo_ids,
                "followers": followers,
            },
        )
        if followers:
            jobs.enqueue(jobs.NOTIFY_WATCHERS, decision.pk)  # the merged whale's followers now follow target
        pending = list(
            Photo.objects.awaiting_review()
            .filter(suggestions__individual=target)
            .distinct()
            .values_list("pk", flat=True)
        )
        for pk in pending:
            jobs.enqueue(jobs.RERANK_PHOTO, pk)
    return decision


def split_photo(*, photo, moderator) -> Decision:
    """A photo was assigned to the wrong whale: it leaves the gallery, its training example is
    excluded, and it goes back to awaiting review, re-ranked."""
    require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if locked.status not in Photo.GALLERY_STATUSES or locked.individual_id is None:
            raise ValidationError("Only photos assigned to an individual can be split out.")
        individual = locked.individual
        TrainingExample.objects.filter(photo=locked).update(status=TrainingExample.Status.EXCLUDED)
        locked.status = Photo.Status.AWAITING_REVIEW
        locked.individual = None
        locked.decided_at = None
        locked.claimed_by = None
        locked.claimed_at = None
        locked.save()
        decision = Decision.objects.create(
            photo=locked,
            moderator=moderator,
            action=Decision.Action.SPLIT,
            individual=individual,
            model_version_id=locked.model_version_id,
            details={"from": individual.catalogue_id},
        )
        jobs.enqueue(jobs.RERANK_PHOTO, locked.pk)
    refresh_caller(photo, locked)
    return decision


def correct_species(*, photo, moderator, species) -> Decision:
    """The photo shows another species than it was filed under (or its species was unknown): correct this
    photo, log it, and rank it again within its new species' catalogue (or leave it unmatched when that species
    has no model yet). The sighting follows once every one of its photos is of the new species."""
    require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update(of=("self",)).select_related("species", "sighting").get(pk=photo.pk)
        if locked.status != Photo.Status.AWAITING_REVIEW:
            raise ValidationError("Only a photo awaiting review can have its species corrected here.")
        old = locked.species
        if old is not None and old.pk == species.pk:
            raise ValidationError(f"The photo is already filed as {species}.")
        locked.species = species
        locked.save(update_fields=["species", "updated_at"])
        sighting = locked.sighting
        if sighting.species_id != species.pk and not sighting.photos.exclude(species=species).exists():
            sighting.species = species
            sighting.save(update_fields=["species"])
        decision = Decision.objects.create(
            photo=locked,
            moderator=moderator,
            action=Decision.Action.SPECIES,
            model_version_id=locked.model_version_id,
            details={"old": old.code if old else "unknown", "new": species.code},
        )
        Embedding.objects.filter(photo_id=locked.pk).delete()  # "being re-matched": the page polls until ranked
        jobs.enqueue(jobs.RERANK_PHOTO, locked.pk)
    refresh_caller(photo, locked)
    return decision
