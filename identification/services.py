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
from django.db.models import F, Max
from django.utils import timezone

from submissions.models import Photo

from . import jobs
from .models import Decision, Embedding, Individual, ModelVersion, Species, Suggestion, TrainingExample, TrainingRun
from .pipeline import cache
from .pipeline.cache import vector_from_bytes
from .pipeline.process import read_image_bytes

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


QUEUE_ORDERS = {"oldest": ("created_at", "pk"), "confident": ("-top_score", "created_at", "pk")}


def review_queue(moderator, order: str = "oldest"):
    """Photos awaiting review that are unclaimed (or claimed by ``moderator``, or whose claim
    expired), oldest first (or most confident first: ``order="confident"``). Disputed photos and
    photos ``moderator`` already voted on (consensus review) are left out. Each row is annotated
    with ``top_score``."""
    _require(moderator, REVIEW_PERMISSION)
    voted = Decision.objects.open_votes().filter(moderator=moderator).values("photo_id")
    return (
        Photo.objects.awaiting_review()
        .unclaimed_or_claimed_by(moderator, ttl=CLAIM_TTL)
        .filter(needs_admin=False)
        .exclude(pk__in=voted)
        .with_top_score()
        .select_related("sighting", "sighting__species", "individual", "model_version")
        .order_by(*[F(f[1:]).desc(nulls_last=True) if f == "-top_score" else f
                    for f in QUEUE_ORDERS.get(order, QUEUE_ORDERS["oldest"])])
    )


def claim_next(*, moderator, queue):
    """Claim the first photo of ``queue`` (a ``review_queue`` QuerySet) that nobody else holds. Rows
    locked at this very moment are passed over first (SKIP LOCKED) and waited for only if nothing else
    is free: a worker writing a batch-mate's new suggestions holds its row for a few milliseconds,
    and near the end of a queue that must not read as "empty". None when nothing can be claimed."""
    _require(moderator, REVIEW_PERMISSION)
    fresh = timezone.now() - CLAIM_TTL
    busy = []
    for pk in queue.values_list("pk", flat=True)[:50]:
        row = _try_claim(pk, moderator, fresh, wait=False)
        if row is _BUSY:
            busy.append(pk)
        elif row is not None:
            return row
    for pk in busy:
        row = _try_claim(pk, moderator, fresh, wait=True)
        if row is not None:
            return row
    return None


_BUSY = object()


def _try_claim(pk, moderator, fresh, *, wait: bool):
    with transaction.atomic():
        row = Photo.objects.select_for_update(skip_locked=not wait).filter(pk=pk).first()
        if row is None:
            return None if wait else _BUSY  # locked by someone else right now (or deleted)
        if row.status != Photo.Status.AWAITING_REVIEW or (
                row.claimed_by_id not in (None, moderator.pk) and row.claimed_at and row.claimed_at > fresh):
            return None
        row.claimed_by, row.claimed_at = moderator, timezone.now()
        row.save(update_fields=["claimed_by", "claimed_at", "updated_at"])
        return row


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
    mates = list(
        Photo.objects.awaiting_review().filter(sighting_id=photo.sighting_id).exclude(pk=photo.pk).values_list("pk", flat=True)
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
    _queue_rerank_batch_mates(photo)
    jobs.enqueue(jobs.NOTIFY_WATCHERS, decision.pk)
    return decision


def consensus_needed() -> int:
    return max(1, int(getattr(settings, "REVIEW_CONSENSUS", 1) or 1))


def _is_admin(user) -> bool:
    return user.has_perm(MANAGE_MODELS_PERMISSION)


def _vote(locked: Photo, moderator, action: str, individual=None, reason: str = "", nickname: str = ""):
    """Consensus review. Returns None when this decision is final, else the pending vote it logged.

    A match is final once ``REVIEW_CONSENSUS`` different moderators agree (same individual, or all
    "new individual"); a disagreement flags the photo ``needs_admin``; an administrator's decision
    on a disputed photo is final. A reject with no open votes is final at once."""
    if locked.needs_admin and not _is_admin(moderator):
        raise ValidationError("Moderators disagreed on this photo; an administrator decides it.")
    if locked.needs_admin:
        return None
    votes = list(Decision.objects.open_votes().filter(photo=locked))
    if any(v.moderator_id == moderator.pk for v in votes):
        raise ValidationError("You have already decided this photo; another moderator has to agree.")
    needed = consensus_needed()
    if not votes and (needed == 1 or action == Decision.Action.REJECT):
        return None
    agree = all(
        v.action == action and (action != Decision.Action.CONFIRM or v.individual_id == individual.pk)
        for v in votes
    ) and action != Decision.Action.REJECT
    if agree and len(votes) + 1 >= needed:
        return None
    decision = Decision.objects.create(
        photo=locked, moderator=moderator, action=action, individual=individual, reject_reason=reason,
        model_version_id=locked.model_version_id, scores=_shown_suggestions(locked), pending=True,
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
        decision.details = {**decision.details, "votes": ids, "consensus": f"{len(ids) + 1} of {consensus_needed()}",
                            **({"admin_resolved": True} if locked.needs_admin else {})}
        decision.save(update_fields=["details"])
    if locked.needs_admin:
        Photo.objects.filter(pk=locked.pk).update(needs_admin=False)
        locked.needs_admin = False


def confirm_match(*, photo, moderator, individual) -> Decision:
    """The photo shows ``individual``: it joins the gallery at once and becomes training data
    (with REVIEW_CONSENSUS > 1: once enough moderators agree; until then a pending vote is returned)."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        individual = Individual.objects.get(pk=individual.pk)
        while individual.merged_into_id:
            individual = individual.merged_into
        decision = _vote(locked, moderator, Decision.Action.CONFIRM, individual=individual)
        if decision is None:
            decision = _assign(locked, moderator, individual, Decision.Action.CONFIRM, Photo.Status.CONFIRMED)
            _close_votes(locked, decision)
    _refresh(photo, locked)
    return decision


def name_new_individual(*, photo, moderator, nickname: str = "") -> Individual:
    """The photo shows a whale not in the catalogue: create it with the next catalogue id.
    Returns None while the decision waits for consensus (REVIEW_CONSENSUS > 1)."""
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        if _vote(locked, moderator, Decision.Action.NEW_INDIVIDUAL, nickname=(nickname or "").strip()[:100]):
            _refresh(photo, locked)
            return None
        if not (nickname or "").strip():
            earlier = Decision.objects.open_votes().filter(photo=locked, action=Decision.Action.NEW_INDIVIDUAL)
            nickname = next((d.details.get("nickname") for d in earlier if d.details.get("nickname")), "")
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
        decision = _assign(locked, moderator, individual, Decision.Action.NEW_INDIVIDUAL, Photo.Status.NEW_INDIVIDUAL)
        decision.details = {**decision.details, "created_individual": individual.catalogue_id}
        decision.save(update_fields=["details"])
        _close_votes(locked, decision)
    _refresh(photo, locked)
    return individual


def reject_photo(*, photo, moderator, reason) -> Decision:
    if reason not in Decision.RejectReason.values:
        raise ValidationError(f"Unknown reason {reason!r}.")
    with transaction.atomic():
        locked = _lock_for_decision(photo, moderator)
        vote = _vote(locked, moderator, Decision.Action.REJECT, reason=reason)
        if vote is not None:
            _refresh(photo, locked)
            return vote
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
        _close_votes(locked, decision)
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
    _refresh(photo, locked)
    return locked


def _refresh(photo, locked) -> None:
    """Keep the caller's instance in step with the saved row."""
    if photo is not locked:
        photo.refresh_from_db()


# --------------------------------------------------------------------------- curation: undo, boxes, merge, split

UNDOABLE = (Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL, Decision.Action.REJECT, Decision.Action.SKIP)
GALLERY_STATUSES = (Photo.Status.CONFIRMED, Photo.Status.NEW_INDIVIDUAL)


def _drop_training_example(photo) -> None:
    """Queued examples are removed; one a run already used is excluded from future runs."""
    TrainingExample.objects.filter(photo=photo, status=TrainingExample.Status.QUEUED).delete()
    TrainingExample.objects.filter(photo=photo).update(status=TrainingExample.Status.EXCLUDED)


def undo_last_decision(*, moderator) -> Decision:
    """Reverse ``moderator``'s latest confirm / new individual / reject / skip. The photo goes back
    to awaiting review (claimed by the moderator), its queued training example is removed, an
    individual created by that decision is deleted when it has no other photos; the decision is kept
    in the audit log with ``undone_at`` set."""
    _require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        decision = (
            Decision.objects.select_for_update().not_undone()
            .filter(moderator=moderator, action__in=UNDOABLE, photo__isnull=False)
            .order_by("-created_at", "-pk").first()
        )
        if decision is None:
            raise ValidationError("There is no decision of yours to undo.")
        photo = Photo.objects.select_for_update().get(pk=decision.photo_id)
        now = timezone.now()
        if decision.pending:
            decision.pending = False
            remaining = list(Decision.objects.open_votes().filter(photo=photo).exclude(pk=decision.pk))
            disputed = len({(v.action, v.individual_id) for v in remaining}) > 1 or any(
                v.action == Decision.Action.REJECT for v in remaining)
            Photo.objects.filter(pk=photo.pk).update(needs_admin=disputed)
        elif decision.action in (Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL):
            if photo.status not in GALLERY_STATUSES or photo.individual_id != decision.individual_id:
                raise ValidationError("This photo has changed since your decision; it cannot be undone.")
            individual = photo.individual
            _reopen(photo, moderator, now)
            _drop_training_example(photo)
            Decision.objects.filter(pk__in=decision.details.get("votes", [])).update(pending=True)
            if (decision.action == Decision.Action.NEW_INDIVIDUAL and individual is not None
                    and not individual.photos.exclude(pk=photo.pk).exists() and not individual.merged.exists()):
                decision.details = {**decision.details, "deleted_individual": individual.catalogue_id}
                decision.individual = None
                individual.delete()
            _queue_rerank_batch_mates(photo)
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
    elif photo.status in GALLERY_STATUSES:
        active = ModelVersion.objects.active().first()
        if active is not None:
            jobs.enqueue(jobs.REEMBED_GALLERY, active.pk, promote=False)


def correct_box(*, photo, moderator, box) -> Decision:
    """Store a moderator's crop box (original pixels; box_source MODERATOR: localizer training data),
    log it, and queue the photo's embedding and ranking again with that box."""
    from ml.types import Box

    _require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if locked.status not in (Photo.Status.AWAITING_REVIEW, *GALLERY_STATUSES):
            raise ValidationError("Only photos awaiting review or in the gallery can have their box corrected.")
        w, h = locked.width or 0, locked.height or 0
        x0, y0 = max(0.0, float(min(box.x0, box.x1))), max(0.0, float(min(box.y0, box.y1)))
        x1, y1 = min(float(w), float(max(box.x0, box.x1))), min(float(h), float(max(box.y0, box.y1)))
        if not w or not h or x1 - x0 < 8 or y1 - y0 < 8:
            raise ValidationError("Draw a box around the fluke (at least 8 pixels each way, inside the photo).")
        old = [locked.box_x0, locked.box_y0, locked.box_x1, locked.box_y1, locked.box_source]
        locked.set_box(Box(x0, y0, x1, y1), Photo.BoxSource.MODERATOR, confidence=1.0, flagged=False)
        locked.save()
        decision = Decision.objects.create(
            photo=locked, moderator=moderator, action=Decision.Action.BOX, model_version_id=locked.model_version_id,
            individual=locked.individual, details={"old": old, "new": [x0, y0, x1, y1]},
        )
        _queue_reembed(locked)
    _refresh(photo, locked)
    return decision


def merge_individuals(*, source, target, moderator) -> Decision:
    """``source`` is the same whale as ``target``: its photos, training examples and suggestions
    move to ``target`` and ``source.merged_into`` is set (its page redirects; history is kept)."""
    _require(moderator, REVIEW_PERMISSION)
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
        if not target.nickname and source.nickname:
            target.nickname = source.nickname
            target.save(update_fields=["nickname"])
        decision = Decision.objects.create(
            moderator=moderator, action=Decision.Action.MERGE, individual=target,
            details={"source_id": source.pk, "source": source.catalogue_id, "target_id": target.pk,
                     "target": target.catalogue_id, "photos": photo_ids},
        )
        pending = list(Photo.objects.awaiting_review().filter(suggestions__individual=target)
                       .distinct().values_list("pk", flat=True))
        for pk in pending:
            jobs.enqueue(jobs.RERANK_PHOTO, pk)
    return decision


def split_photo(*, photo, moderator) -> Decision:
    """A photo was assigned to the wrong whale: it leaves the gallery, its training example is
    excluded, and it goes back to awaiting review, re-ranked."""
    _require(moderator, REVIEW_PERMISSION)
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if locked.status not in GALLERY_STATUSES or locked.individual_id is None:
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
            photo=locked, moderator=moderator, action=Decision.Action.SPLIT, individual=individual,
            model_version_id=locked.model_version_id, details={"from": individual.catalogue_id},
        )
        jobs.enqueue(jobs.RERANK_PHOTO, locked.pk)
    _refresh(photo, locked)
    return decision


# --------------------------------------------------------------------------- comparison and explanations


def candidate_photos(photo, individual_id, best_photo_id=None, limit: int = 4) -> list:
    """Up to ``limit`` gallery photos of a candidate: the suggestion's best photo first, then by
    similarity to ``photo`` (when both are embedded by the photo's model version), else newest."""
    pool = list(
        Photo.objects.in_gallery().filter(individual_id=individual_id).exclude(pk=photo.pk)
        .order_by("-created_at", "-pk")[:60]
    )
    score = {}
    if photo.model_version_id and pool:
        rows = dict(Embedding.objects.filter(model_version_id=photo.model_version_id,
                                             photo_id__in=[photo.pk, *[p.pk for p in pool]])
                    .values_list("photo_id", "vector"))
        if photo.pk in rows:
            q = vector_from_bytes(rows.pop(photo.pk))
            score = {pid: float(q @ vector_from_bytes(v)) for pid, v in rows.items()}
    ordered = sorted(enumerate(pool), key=lambda ip: (
        ip[1].pk != best_photo_id, ip[1].pk not in score, -score.get(ip[1].pk, 0.0), ip[0]))
    out = [p for _, p in ordered[:limit]]
    for p in out:
        p.similarity = score.get(p.pk)
    return out


def _model_crop(ident, photo):
    """The photo's crop exactly as the pipeline makes it (stored box unless it was the default)."""
    image = ident.open(read_image_bytes(photo))  # the same grayscale decode as the pipeline
    box = photo.box if photo.box is not None and photo.box_source != Photo.BoxSource.DEFAULT else None
    return ident.prepare(image, box=box, upside_down=photo.upside_down if box is not None else None).crop


def explain_png(*, photo, individual, user) -> bytes:
    """``ml.explain.occlusion_map`` of the query crop against the candidate's best photo, with the
    process's cached Identifier of the active model; the PNG is cached in storage."""
    import hashlib
    import io

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from ml.explain import occlusion_map

    _require(user, REVIEW_PERMISSION)
    version = cache.active_version()
    if version is None:
        raise ValidationError("No identification model is active.")
    best = (Suggestion.objects.filter(photo=photo, individual=individual, best_photo__isnull=False)
            .order_by("-model_version__is_active", "rank").first())
    reference = best.best_photo if best else None
    if reference is None or reference.individual_id != individual.pk:
        found = candidate_photos(photo, individual.pk, limit=1)
        reference = found[0] if found else None
    if reference is None:
        raise ValidationError("This individual has no gallery photo to compare with.")
    boxes = f"{photo.box}{photo.box_source}{photo.upside_down}|{reference.box}{reference.box_source}{reference.upside_down}"
    key = f"explain/{version.pk}/{photo.pk}-{reference.pk}-{hashlib.sha1(boxes.encode()).hexdigest()[:12]}.png"
    if default_storage.exists(key):
        with default_storage.open(key, "rb") as fh:
            return fh.read()
    ident = cache.identifier(version)
    occlusion = occlusion_map(ident, _model_crop(ident, photo), _model_crop(ident, reference))
    buf = io.BytesIO()
    occlusion.overlay.save(buf, "PNG")
    data = buf.getvalue()
    default_storage.save(key, ContentFile(data))
    return data


def audit_log(*, photo=None, individual=None):
    """Decisions about a photo or an individual (incl. merges into or out of it), newest first."""
    from django.db.models import Q

    qs = Decision.objects.select_related("moderator", "individual", "model_version", "photo")
    if photo is not None:
        return qs.filter(photo=photo)
    ids = [individual.pk, *individual.merged.values_list("pk", flat=True)]
    return qs.filter(
        Q(individual_id__in=ids) | Q(photo__individual_id__in=ids) | Q(details__source_id=individual.pk)
    ).distinct()


# --------------------------------------------------------------------------- emails


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
        jobs.enqueue(jobs.RUN_TRAINING, run.pk)
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
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.is_active:
            raise ValidationError("This model version is already active.")
        locked.promoted_by = user
        locked.save(update_fields=["promoted_by"])
        jobs.enqueue(jobs.REEMBED_GALLERY, locked.pk)
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
