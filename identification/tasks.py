"""Celery tasks: the identification pipeline, gallery re-embedding, training and emails.

Rules every task follows: it takes primary keys, re-fetches, and returns quietly when the row is
gone or the work is already done; re-running it gives the same result (suggestions of a photo
and version are replaced in one transaction, embeddings are ``update_or_create``). Only named
transient errors (database/broker/S3 connectivity) are retried, with backoff. An image the ml
library refuses fails with its message; any other error fails the photo with a clear reason
that a moderator can retry. One bad photo never blocks the queue.
"""
from __future__ import annotations

import io
import logging

import numpy as np
from celery import Task, shared_task
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from ml.errors import ImageRejected

log = logging.getLogger(__name__)


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OperationalError, InterfaceError]
    try:
        import redis.exceptions

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover
        pass
    try:
        import kombu.exceptions

        errors.append(kombu.exceptions.OperationalError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import botocore.exceptions

        errors += [botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


TRANSIENT_ERRORS = _transient_errors()
RETRY_OPTIONS = dict(
    autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=6
)
NEW_INDIVIDUAL_RANKS = 6  # 5 individuals + "new individual" at its rank


class PhotoTask(Task):
    """When a photo task gives up (transient errors past max_retries), the photo is failed, not stuck."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        photo_id = args[0] if args else kwargs.get("photo_id")
        if photo_id is None:
            return
        try:
            _fail(photo_id, "unavailable", f"Processing could not reach a service it needs ({type(exc).__name__}). "
                  "A moderator can retry it.")
        except Exception:  # the database itself may be the problem
            log.exception("could not mark photo %s failed", photo_id)


def _photo_model():
    from submissions.models import Photo

    return Photo


def _fail(photo_id: int, code: str, reason: str) -> None:
    Photo = _photo_model()
    Photo.objects.filter(pk=photo_id).exclude(
        status__in=(Photo.Status.CONFIRMED, Photo.Status.NEW_INDIVIDUAL, Photo.Status.REJECTED)
    ).update(status=Photo.Status.FAILED, failure_code=code[:40], failure_reason=reason, updated_at=timezone.now())


# --------------------------------------------------------------------------- pipeline helpers


def _read_image_bytes(photo) -> bytes:
    with default_storage.open(photo.image.name, "rb") as fh:
        return fh.read()


def _crop_png(crop: np.ndarray) -> bytes:
    """A human-viewable 8-bit grayscale PNG of the (standardised) float crop."""
    from PIL import Image

    a = np.asarray(crop, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] in (1, 3) else a[..., 0]
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


def _replace_crop(photo, png: bytes, save: bool = True) -> None:
    """Store a new crop PNG; the old file is deleted once the change has committed."""
    old_crop = photo.crop.name if photo.crop else ""
    photo.crop.save("crop.png", ContentFile(png), save=save)
    if old_crop:
        transaction.on_commit(lambda name=old_crop: default_storage.delete(name))


def _given_box(photo):
    """A box to trust instead of the localizer: one given with the photo or corrected by a moderator."""
    Photo = _photo_model()
    if photo.box is not None and photo.box_source in (Photo.BoxSource.GIVEN, Photo.BoxSource.MODERATOR):
        return photo.box
    return None


def embed_photo(photo, version, ident):
    """Load, localize, prepare and embed one photo. Returns (vector float32 (D,), PreparedImage)."""
    image = ident.open(_read_image_bytes(photo))  # checked, oriented, grayscale decode (JPEG luma directly)
    box = _given_box(photo)
    prepared = ident.prepare(image, box=box, upside_down=photo.upside_down if box is not None else None)
    vector = np.asarray(ident.embed([prepared.crop]), dtype=np.float32)[0]
    return vector, prepared


def rank_photo(photo, version, vector: np.ndarray):
    """Top individuals for ``vector`` from the gallery (excluding the photo itself), with
    "new individual" inserted at its rank. Returns a list of ``ml.types.Match``."""
    from ml.gallery import insert_new_whale

    from . import runtime

    index = runtime.gallery(version)
    matches = []
    if index is not None and len(index):
        matches = index.rank(vector, k=NEW_INDIVIDUAL_RANKS - 1, exclude_items={str(photo.pk)})
    return insert_new_whale(list(matches), version.new_threshold, NEW_INDIVIDUAL_RANKS)


def _write_suggestions(photo, version, matches) -> None:
    from ml.types import NEW_WHALE

    from .models import Suggestion

    Suggestion.objects.filter(photo=photo, model_version=version).delete()
    rows = []
    for rank, m in enumerate(matches, start=1):
        rows.append(
            Suggestion(
                photo=photo,
                model_version=version,
                rank=rank,
                individual_id=None if m.label == NEW_WHALE else int(m.label),
                score=float(m.score),
                best_photo_id=int(m.best_item) if m.best_item and m.label != NEW_WHALE else None,
            )
        )
    Suggestion.objects.bulk_create(rows)


def _batch_matches(photo, version, vector: np.ndarray) -> list[dict]:
    """Cosine similarity to the other photos of the same sighting embedded by ``version``;
    each batch-mate's own list is updated too."""
    from .models import Embedding
    from .runtime import vector_from_bytes

    Photo = _photo_model()
    mates = list(
        Embedding.objects.filter(model_version=version, photo__sighting_id=photo.sighting_id)
        .exclude(photo_id=photo.pk)
        .exclude(photo__status=Photo.Status.REJECTED)
        .values_list("photo_id", "vector")
    )
    v = vector / (np.linalg.norm(vector) or 1.0)
    out = []
    for mate_id, data in mates:
        w = vector_from_bytes(data)
        score = float(np.dot(v, w / (np.linalg.norm(w) or 1.0)))
        out.append({"photo_id": mate_id, "score": round(score, 4)})
        mate = Photo.objects.select_for_update().filter(pk=mate_id).first()
        if mate is not None:
            others = [m for m in (mate.batch_matches or []) if m.get("photo_id") != photo.pk]
            others.append({"photo_id": photo.pk, "score": round(score, 4)})
            others.sort(key=lambda m: -m["score"])
            Photo.objects.filter(pk=mate_id).update(batch_matches=others)
    out.sort(key=lambda m: -m["score"])
    return out


def _process(photo_id: int, *, rerank: bool) -> str:
    from . import runtime
    from .models import Embedding

    Photo = _photo_model()
    photo = Photo.objects.filter(pk=photo_id).select_related("sighting").first()
    if photo is None:
        return "gone"
    if rerank:
        if photo.status != Photo.Status.AWAITING_REVIEW:
            return "not awaiting review"
    elif photo.status not in (Photo.Status.UPLOADED, Photo.Status.PROCESSING):
        return "done"
    version = runtime.active_version()
    if version is None:
        if not rerank:
            _fail(photo_id, "no_model", "No identification model is active yet. This photo will be processed "
                  "automatically as soon as an administrator promotes a model.")
        return "no model"

    if not rerank:
        Photo.objects.filter(pk=photo_id).update(
            status=Photo.Status.PROCESSING, attempts=F("attempts") + 1, updated_at=timezone.now()
        )
    try:
        existing = Embedding.objects.filter(photo=photo, model_version=version).first() if rerank else None
        prepared = None
        if existing is not None:
            vector = runtime.vector_from_bytes(existing.vector)
        else:
            vector, prepared = embed_photo(photo, version, runtime.identifier(version))
        matches = rank_photo(photo, version, vector)
        crop_png = _crop_png(prepared.crop) if prepared is not None else None
    except TRANSIENT_ERRORS:
        raise
    except ImageRejected as exc:
        if not rerank:
            _fail(photo_id, exc.code, str(exc))
        return "rejected"
    except Exception as exc:
        log.exception("processing photo %s failed", photo_id)
        if not rerank:
            _fail(photo_id, "error", f"Processing failed ({type(exc).__name__}: {exc}). A moderator can retry it.")
        return "failed"

    with transaction.atomic():
        photo = Photo.objects.select_for_update().filter(pk=photo_id).first()
        expected = Photo.Status.AWAITING_REVIEW if rerank else Photo.Status.PROCESSING
        if photo is None or photo.status != expected:
            return "changed meanwhile"
        if prepared is not None:
            Embedding.objects.update_or_create(
                photo=photo, model_version=version, defaults={"vector": np.ascontiguousarray(vector).tobytes()}
            )
            loc = prepared.localization
            if _given_box(photo) is None:
                photo.set_box(
                    loc.box,
                    Photo.BoxSource.LOCALIZER if loc.source == "localizer" else Photo.BoxSource.DEFAULT,
                    confidence=loc.confidence,
                    flagged=loc.flagged,
                )
            photo.upside_down = bool(getattr(prepared, "upside_down", loc.upside_down))
            _replace_crop(photo, crop_png, save=False)
        _write_suggestions(photo, version, matches)
        photo.batch_matches = _batch_matches(photo, version, vector)
        photo.model_version = version
        photo.status = Photo.Status.AWAITING_REVIEW
        photo.failure_code = ""
        photo.failure_reason = ""
        photo.processed_at = timezone.now()
        photo.save()
    return "ok"


# --------------------------------------------------------------------------- tasks


@shared_task(
    name="identification.tasks.process_photo", base=PhotoTask, acks_late=True, reject_on_worker_lost=True,
    **RETRY_OPTIONS,
)
def process_photo(photo_id: int) -> str:
    """Localize, embed and rank one uploaded photo; leaves it AWAITING_REVIEW with its suggestions."""
    return _process(photo_id, rerank=False)


@shared_task(
    name="identification.tasks.rerank_photo", acks_late=True, reject_on_worker_lost=True,
    **RETRY_OPTIONS,
)
def rerank_photo(photo_id: int) -> str:
    """Re-rank a photo awaiting review against the current gallery (after a batch-mate was
    decided, or a promotion); embeds it first when the active version has no embedding yet."""
    return _process(photo_id, rerank=True)


@shared_task(
    name="identification.tasks.reembed_gallery", acks_late=True, reject_on_worker_lost=True, **RETRY_OPTIONS
)
def reembed_gallery(version_id: int, promote: bool = True) -> str:
    """Embed every gallery photo with ``version``, then (when ``promote``) make it the active one."""
    from . import runtime
    from .models import Embedding, ModelVersion

    Photo = _photo_model()
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return "gone"
    ident = runtime.identifier(version)
    failed = []
    todo = list(Photo.objects.in_gallery().exclude(embeddings__model_version=version).order_by("pk"))
    for photo in todo:
        try:
            vector, prepared = embed_photo(photo, version, ident)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # one unreadable gallery file must not block a promotion
            log.warning("could not embed gallery photo %s with %s: %s", photo.pk, version.name, exc)
            failed.append(photo.pk)
            continue
        Embedding.objects.update_or_create(
            photo=photo, model_version=version, defaults={"vector": np.ascontiguousarray(vector).tobytes()}
        )
        if photo.box_source == Photo.BoxSource.MODERATOR or not photo.crop:
            _replace_crop(photo, _crop_png(prepared.crop))  # a moderator's box fix shows in the crop too
    # build the new version's gallery index here, once: it is saved as a snapshot that every worker
    # then loads at its first task with this version, instead of each building it (runtime.gallery)
    runtime.gallery(version)
    if not promote:
        ModelVersion.objects.filter(pk=version_id).update(gallery_ready=True)
        return "embedded"
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version_id)
        if not version.is_active:
            ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
            version.is_active = True
            version.promoted_at = timezone.now()
        version.gallery_ready = True
        if failed:
            version.training_snapshot = {**(version.training_snapshot or {}), "gallery_embed_failures": failed}
        version.save()
        # photos that waited for a model, and photos awaiting review (re-ranked with the new model)
        waiting = list(Photo.objects.failed().filter(failure_code="no_model").values_list("pk", flat=True))
        Photo.objects.filter(pk__in=waiting).update(
            status=Photo.Status.UPLOADED, failure_code="", failure_reason="", updated_at=timezone.now()
        )
        review = list(Photo.objects.awaiting_review().values_list("pk", flat=True))

        def queue():
            for pk in waiting:
                process_photo.delay(pk)
            for pk in review:
                rerank_photo.delay(pk)

        transaction.on_commit(queue)
    return "promoted"


@shared_task(name="identification.tasks.run_training", acks_late=True, reject_on_worker_lost=True, **RETRY_OPTIONS)
def run_training(run_id: int) -> str:
    from .training import execute_run

    return execute_run(run_id)


@shared_task(name="identification.tasks.notify_watchers", **RETRY_OPTIONS)
def notify_watchers(decision_id: int) -> int:
    from .services import send_decision_emails

    return send_decision_emails(decision_id)


STUCK_MAX_ATTEMPTS = 5  # a photo that keeps killing its worker (say, out of memory) stops being re-queued


@shared_task(name="identification.tasks.requeue_stuck_photos", **RETRY_OPTIONS)
def requeue_stuck_photos(older_than_minutes: float | None = None, limit: int = 500) -> int:
    """Beat (``whalesite.celery`` beat_schedule): photos left UPLOADED or PROCESSING for longer than
    ``older_than_minutes`` (settings.STUCK_PHOTO_MINUTES) lost their message or their worker; queue
    ``process_photo`` for them again. Returns how many were queued.

    Idempotent: ``updated_at`` is touched, so a photo is queued again only after another full
    period, and ``process_photo`` returns quietly for a photo that was finished meanwhile. After
    STUCK_MAX_ATTEMPTS attempts the photo is failed instead (a moderator can retry it).
    """
    from datetime import timedelta

    from django.conf import settings

    Photo = _photo_model()
    minutes = older_than_minutes if older_than_minutes is not None else settings.STUCK_PHOTO_MINUTES
    now = timezone.now()
    with transaction.atomic():
        stuck = Photo.objects.stuck(older_than=timedelta(minutes=minutes)).order_by("updated_at", "pk")
        rows = list(stuck.select_for_update(skip_locked=True).values_list("pk", "attempts")[:limit])
        give_up = [pk for pk, attempts in rows if attempts >= STUCK_MAX_ATTEMPTS]
        requeue = [pk for pk, attempts in rows if attempts < STUCK_MAX_ATTEMPTS]
        if give_up:
            Photo.objects.filter(pk__in=give_up).update(
                status=Photo.Status.FAILED, failure_code="stuck", updated_at=now,
                failure_reason=f"Processing did not finish after {STUCK_MAX_ATTEMPTS} attempts. A moderator can retry it.",
            )
        Photo.objects.filter(pk__in=requeue).update(updated_at=now)

        def queue():
            for pk in requeue:
                process_photo.delay(pk)

        transaction.on_commit(queue)
    if rows:
        log.warning("re-queued %d stuck photo(s); failed %d after %d attempts", len(requeue), len(give_up),
                    STUCK_MAX_ATTEMPTS)
    return len(requeue)


@shared_task(name="identification.tasks.prune_gallery_changes", **RETRY_OPTIONS)
def prune_gallery_changes() -> int:
    """Beat: drop ``GalleryChange`` rows older than a day, and the gallery snapshots of inactive model
    versions that are older than the log (``runtime.prune_snapshots``). Workers read only the last few
    minutes of the log; one that has not synced for an hour re-reads the whole gallery, and a snapshot
    older than the log is never loaded. Returns the number of log rows deleted."""
    from datetime import timedelta

    from . import runtime
    from .models import GalleryChange

    cutoff = timezone.now() - timedelta(seconds=runtime.GALLERY_CHANGE_RETENTION_S)
    deleted, _ = GalleryChange.objects.filter(changed_at__lt=cutoff).delete()
    snapshots = runtime.prune_snapshots()
    if snapshots:
        log.info("removed the gallery snapshots of %d inactive model version(s)", snapshots)
    return deleted


@shared_task(
    name="identification.tasks.evaluate_holdout", acks_late=True, reject_on_worker_lost=True, **RETRY_OPTIONS
)
def evaluate_holdout(version_id: int) -> str:
    """Score a model version on the frozen holdout set (``identification.registry``)."""
    from django.core.exceptions import ValidationError

    from .models import ModelVersion
    from .registry import evaluate_on_holdout

    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return "gone"
    try:
        evaluation = evaluate_on_holdout(version)
    except ValidationError as exc:
        log.warning("holdout evaluation of %s skipped: %s", version.name, exc.messages[0])
        return "skipped"
    return f"map5={evaluation.metrics.get('map5')}"


@shared_task(
    name="identification.tasks.retrain_localizer", acks_late=True, reject_on_worker_lost=True, **RETRY_OPTIONS
)
def retrain_localizer(run_id: int) -> str:
    from .registry import execute_localizer_retrain

    return execute_localizer_retrain(run_id)


from . import health, threads  # noqa: E402,F401  (worker heartbeat and torch-thread signals)
