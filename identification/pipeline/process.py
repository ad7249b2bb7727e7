"""The body of ``process_photo`` and ``rerank_photo``: localize, embed and rank one photo against the
gallery, and store its suggestions, crop and batch-mate matches.

An image the ml library refuses fails the photo with its message; any other error fails it with a
clear reason that a moderator can retry; named transient errors propagate, for the task to retry.
Re-running gives the same result (a photo's suggestions for a version are replaced in one
transaction, embeddings are ``update_or_create``).
"""

from __future__ import annotations

import io
import logging
from contextlib import nullcontext
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image

from ml.errors import ImageRejected
from ml.types import NEW_WHALE
from submissions.models import Photo

from ..errors import TRANSIENT_ERRORS
from ..heartbeat import Beating
from ..models import Embedding, Suggestion
from . import cache
from .gallery_sync import gallery

log = logging.getLogger(__name__)

NEW_INDIVIDUAL_RANKS = 6  # 5 individuals + "new individual" at its rank


def fail(photo_id: int, code: str, reason: str) -> None:
    Photo.objects.filter(pk=photo_id).exclude(status__in=(*Photo.GALLERY_STATUSES, Photo.Status.REJECTED)).update(
        status=Photo.Status.FAILED,
        failure_code=code[:40],
        failure_reason=reason,
        updated_at=timezone.now(),
        lease_until=None,
    )


def lease_s() -> float:
    return float(settings.PHOTO_LEASE_S)


def take_lease(photo_id: int) -> bool:
    """Mark the photo PROCESSING under a lease of PHOTO_LEASE_S, unless another worker holds a live one: a
    message delivered twice (a requeue, Redis's redelivery) never processes one photo twice at once."""
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    return bool(
        Photo.objects.filter(free, pk=photo_id, status__in=Photo.PENDING_STATUSES).update(
            status=Photo.Status.PROCESSING,
            attempts=F("attempts") + 1,
            updated_at=now,
            lease_until=now + timedelta(seconds=lease_s()),
        )
    )


def lease_keeper(photo_id: int) -> Beating:
    """Renews the lease every third of PHOTO_LEASE_S while the photo is processed; a killed worker stops
    renewing, and beat (``housekeeping.requeue_stuck_photos``) queues the photo again once it lapses."""

    def renew():
        Photo.objects.filter(pk=photo_id, status=Photo.Status.PROCESSING).update(
            lease_until=timezone.now() + timedelta(seconds=lease_s())
        )

    return Beating(lease_s() / 3, renew, name=f"photo-{photo_id}-lease")


def read_image_bytes(photo) -> bytes:
    with default_storage.open(photo.image.name, "rb") as fh:
        return fh.read()


def crop_png(crop: np.ndarray) -> bytes:
    """A human-viewable 8-bit grayscale PNG of the (standardised) float crop."""
    a = np.asarray(crop, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] in (1, 3) else a[..., 0]
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def replace_crop(photo, png: bytes, save: bool = True) -> None:
    """Store a new crop PNG; the old file is deleted once the change has committed."""
    old_crop = photo.crop.name if photo.crop else ""
    photo.crop.save("crop.png", ContentFile(png), save=save)
    if old_crop:
        transaction.on_commit(lambda name=old_crop: default_storage.delete(name))


def given_box(photo):
    """A box to trust instead of the localizer: one given with the photo or corrected by a moderator."""
    if photo.box is not None and photo.box_source in (Photo.BoxSource.GIVEN, Photo.BoxSource.MODERATOR):
        return photo.box
    return None


def embed_photo(photo, version, ident):
    """Load, localize, prepare and embed one photo. Returns (vector float32 (D,), PreparedImage)."""
    image = ident.open(read_image_bytes(photo))  # checked, oriented, grayscale decode (JPEG luma directly)
    box = given_box(photo)
    prepared = ident.prepare(image, box=box, upside_down=photo.upside_down if box is not None else None)
    vector = np.asarray(ident.embed([prepared.crop]), dtype=np.float32)[0]
    return vector, prepared


def local_features(ident, prepared):
    """RootSIFT features of the crop just embedded: stored with its embedding, computed only here."""
    return ident.local_features(prepared.crop)


def stored_features(version, labels) -> dict[str, list]:
    """``{individual id: [(photo id, LocalFeatures)]}`` of the gallery photos of ``labels`` embedded by
    ``version``, in ONE query: a query's shortlist is verified against features stored at embed time."""
    from ml.local_features import LocalFeatures

    ids = [int(label) for label in labels if label != NEW_WHALE]
    rows = Embedding.objects.filter(
        model_version=version,
        features__isnull=False,
        photo__individual_id__in=ids,
        photo__in=Photo.objects.in_catalogue_of(version.species_id),
    ).values_list("photo_id", "photo__individual_id", "features")
    out: dict[str, list] = {}
    for photo_id, individual_id, blob in rows:
        out.setdefault(str(individual_id), []).append((str(photo_id), LocalFeatures.from_bytes(bytes(blob))))
    return out


def top_with_new(ranked: list, n: int) -> list:
    """The ``n`` most probable individuals with "new individual" kept at its place by P (after those at or
    above the threshold), and never cut off: the moderator always has that choice, as with cosines."""
    new = next(s for s in ranked if s.label == NEW_WHALE)
    pos = ranked.index(new)
    individuals = [s for s in ranked if s.label != NEW_WHALE][:n]
    return individuals[: min(pos, n)] + [new] + individuals[min(pos, n) :]


def rank_photo(photo, version, vector: np.ndarray, query_features=None, ident=None, familiar=None) -> list:
    """Top individuals for ``vector`` from the gallery (excluding the photo itself), with "new individual"
    at its rank: by the calibrated, RootSIFT-fused P(same individual) (``ml.fused_ranking.suggest``) when
    the version's folder has a calibration, else by cosine as before. Returns ``ml.fused_ranking.Suggestion``
    rows (probability None without calibration). ``familiar`` (``ml.ood.Familiarity``) flagged: the photo
    looks unlike the training photos, so its cosine adds no probability and only verified keypoints can
    carry a match (a stranger's photo no longer outranks "new individual" on a misleading cosine)."""
    from ml.fused_ranking import Suggestion as Ranked
    from ml.fused_ranking import suggest
    from ml.gallery import insert_new_whale  # loads torch
    from ml.local_features import DEFAULT_SHORTLIST

    index = gallery(version)
    calibration = getattr(ident, "calibration", None)
    if calibration is not None:
        if index is None or not len(index):
            return [Ranked(NEW_WHALE, 1.0, None, 0, None)]
        ranked = suggest(
            index,
            vector,
            calibration,
            query_features,
            k=DEFAULT_SHORTLIST + 1,
            features_for=lambda labels: stored_features(version, labels),
            exclude_items={str(photo.pk)},
            trust_embedding=not (familiar is not None and familiar.flagged),
            matching=ident.profile.local_matching,
        )
        return top_with_new(ranked, NEW_INDIVIDUAL_RANKS - 1)
    matches = []
    if index is not None and len(index):
        matches = index.rank(vector, k=NEW_INDIVIDUAL_RANKS - 1, exclude_items={str(photo.pk)})
    # uncalibrated versions: no probability to show (None), only the cosine
    return [
        Ranked(m.label, None, float(m.score), None, m.best_item)  # type: ignore[arg-type]
        for m in insert_new_whale(list(matches), version.new_threshold, NEW_INDIVIDUAL_RANKS)
    ]


def _write_suggestions(photo, version, ranked) -> None:
    Suggestion.objects.filter(photo=photo, model_version=version).delete()
    rows = []
    for rank, m in enumerate(ranked, start=1):
        is_new = m.label == NEW_WHALE
        calibrated = m.probability is not None
        rows.append(
            Suggestion(
                photo=photo,
                model_version=version,
                rank=rank,
                individual_id=None if is_new else int(m.label),
                # the raw cosine; "new individual" has none under calibration: its P stands in
                score=float(m.cosine if m.cosine is not None else m.probability if calibrated else 0.0),
                probability=float(m.probability) if calibrated else None,
                inliers=int(m.inliers) if calibrated and not is_new else None,
                best_photo_id=int(m.best_item) if m.best_item and not is_new else None,
            )
        )
    Suggestion.objects.bulk_create(rows)


BATCH_MATCHES_KEPT = 20  # per photo: a sighting has at most 20 photos; an import's thousands keep their best


def batch_mates(photo):
    """The photos matched against ``photo`` beside the gallery: the other photos of its sighting, and of
    its bulk import when it came in one (``submissions.imports``)."""
    same = Q(sighting_id=photo.sighting_id)
    if photo.bulk_import_id:
        same |= Q(bulk_import_id=photo.bulk_import_id)
    return Photo.objects.filter(same).exclude(pk=photo.pk).exclude(status=Photo.Status.REJECTED)


def _batch_matches(photo, version, vector: np.ndarray) -> list[dict]:
    """Cosine similarity to the batch-mates embedded by ``version`` (the best ``BATCH_MATCHES_KEPT``);
    each of those mates' own list is updated too, so the pair shows from both sides."""
    mates = list(
        Embedding.objects.filter(model_version=version, photo__in=batch_mates(photo)).values_list("photo_id", "vector")
    )
    v = vector / (np.linalg.norm(vector) or 1.0)
    out = []
    for mate_id, data in mates:
        w = cache.vector_from_bytes(data)
        out.append({"photo_id": mate_id, "score": round(float(np.dot(v, w / (np.linalg.norm(w) or 1.0))), 4)})
    out.sort(key=lambda m: -m["score"])
    out = out[:BATCH_MATCHES_KEPT]
    for match in out:
        mate = Photo.objects.select_for_update().filter(pk=match["photo_id"]).first()
        if mate is not None:
            others = [m for m in (mate.batch_matches or []) if m.get("photo_id") != photo.pk]
            others.append({"photo_id": photo.pk, "score": match["score"]})
            others.sort(key=lambda m: -m["score"])
            Photo.objects.filter(pk=mate.pk).update(batch_matches=others[:BATCH_MATCHES_KEPT])
    return out


def embedding_fields(vector: np.ndarray, features, familiar=None) -> dict:
    """An Embedding row's stored values: the vector, the crop's RootSIFT features (``to_bytes``) and its
    ``ml.ood.Familiarity`` (None: the version has no detector; both fields stay null)."""
    return {
        "vector": np.ascontiguousarray(vector).tobytes(),
        "features": features.to_bytes() if features is not None else None,
        **ood_fields(familiar),
    }


def ood_fields(familiar) -> dict:
    """``Embedding.ood_score`` / ``out_of_distribution`` of an ``ml.ood.Familiarity`` (or None)."""
    if familiar is None:
        return {"ood_score": None, "out_of_distribution": None}
    return {"ood_score": float(familiar.score), "out_of_distribution": bool(familiar.flagged)}


def _features_of(embedding):
    """The stored features of an embedding (None for rows embedded before features were stored)."""
    from ml.local_features import LocalFeatures

    return LocalFeatures.from_bytes(bytes(embedding.features)) if embedding.features is not None else None


def process_photo(photo_id: int) -> str:
    """Localize, embed and rank one uploaded photo; leaves it AWAITING_REVIEW with its suggestions."""
    return _process(photo_id, rerank=False)


def rerank_photo(photo_id: int) -> str:
    """Re-rank a photo awaiting review against the current gallery (after a batch-mate was
    decided, or a promotion); embeds it first when the active version has no embedding yet."""
    return _process(photo_id, rerank=True)


def _process(photo_id: int, *, rerank: bool) -> str:
    photo = Photo.objects.filter(pk=photo_id).select_related("species").first()
    if photo is None:
        return "gone"
    if rerank:
        if photo.status != Photo.Status.AWAITING_REVIEW:
            return "not awaiting review"
    elif photo.status not in Photo.PENDING_STATUSES:
        return "done"
    # each species is matched within its own catalogue, by its own model: an unknown species, one without a
    # profile or without a model yet waits for review with no suggestions (``review.unmatched`` says why), and
    # is ranked once a model of its species is promoted
    version = cache.active_version(photo.species)
    if version is None:
        _await_review_unmatched(photo_id, rerank)
        return "no model"

    if not rerank and not take_lease(photo_id):
        return "leased"  # another worker is processing it now
    with lease_keeper(photo_id) if not rerank else nullcontext():
        return _process_leased(photo, photo_id, version, rerank)


def _process_leased(photo, photo_id: int, version, rerank: bool) -> str:
    try:
        existing = Embedding.objects.filter(photo=photo, model_version=version).first() if rerank else None
        prepared, features = None, None
        ident = cache.identifier(version)
        if existing is not None:
            vector = cache.vector_from_bytes(existing.vector)
            features = _features_of(existing)
        else:
            vector, prepared = embed_photo(photo, version, ident)
            features = local_features(ident, prepared)
        # ml.ood: a k-NN over the training photos, in the backbone features too when the crop is at hand (a
        # stored vector re-ranked is checked in the embedding alone)
        familiar = ident.familiarity(vector, prepared.crop if prepared is not None else None)
        matches = rank_photo(photo, version, vector, features, ident, familiar)
        png = crop_png(prepared.crop) if prepared is not None else None
    except TRANSIENT_ERRORS:
        _release_lease(photo_id)  # the task retries with backoff: its next try must find the photo free
        raise
    except ImageRejected as exc:
        if not rerank:
            fail(photo_id, exc.code, str(exc))
        return "rejected"
    except Exception as exc:
        log.exception("processing photo %s failed", photo_id)
        if not rerank:
            fail(photo_id, "error", f"Processing failed ({type(exc).__name__}: {exc}). A moderator can retry it.")
        return "failed"

    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        expected = Photo.Status.AWAITING_REVIEW if rerank else Photo.Status.PROCESSING
        if photo is None or photo.status != expected:
            return "changed meanwhile"
        if prepared is not None:
            Embedding.objects.update_or_create(
                photo=photo, model_version=version, defaults=embedding_fields(vector, features, familiar)
            )
            loc = prepared.localization
            if given_box(photo) is None:
                photo.set_box(
                    loc.box,
                    Photo.BoxSource.LOCALIZER if loc.source == "localizer" else Photo.BoxSource.DEFAULT,
                    confidence=loc.confidence,
                    flagged=loc.flagged,
                )
            photo.upside_down = bool(prepared.upside_down)
            replace_crop(photo, png, save=False)
        elif existing is not None and familiar is not None and existing.out_of_distribution is None:
            Embedding.objects.filter(pk=existing.pk).update(**ood_fields(familiar))  # embedded before the flag
        _write_suggestions(photo, version, matches)
        photo.batch_matches = _batch_matches(photo, version, vector)
        _save_awaiting_review(photo, version)
    return "ok"


def _save_awaiting_review(photo, version) -> None:
    """The pipeline is done with ``photo`` (ranked by ``version``, or by none): it waits for a moderator."""
    photo.model_version = version
    photo.status = Photo.Status.AWAITING_REVIEW
    photo.failure_code = ""
    photo.failure_reason = ""
    photo.processed_at = timezone.now()
    photo.lease_until = None
    photo.save()


def _await_review_unmatched(photo_id: int, rerank: bool) -> None:
    """No model can match this photo (its species is unknown or has none yet): straight to review, with no
    suggestions, so a moderator can name or reject it; nothing of an earlier model (its species corrected at
    review) is left on it."""
    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        expected = (Photo.Status.AWAITING_REVIEW,) if rerank else Photo.PENDING_STATUSES
        if photo is None or photo.status not in expected:
            return
        Suggestion.objects.filter(photo=photo).delete()
        _save_awaiting_review(photo, None)


def _release_lease(photo_id: int) -> None:
    try:
        Photo.objects.filter(pk=photo_id).update(lease_until=None)
    except TRANSIENT_ERRORS:  # the database is the problem: the lease lapses by itself
        pass
