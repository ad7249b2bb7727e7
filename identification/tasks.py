"""Celery tasks: thin wrappers over the domain code. Nothing in the site imports this module; work is
queued by task name through ``identification.jobs``, and the routes live in ``whalesite.celery``.

Rules every task follows: it takes primary keys, re-fetches, and returns quietly when the row is
gone or the work is already done; re-running it gives the same result. Only named transient errors
(database/broker/S3 connectivity, ``identification.errors``) are retried, with backoff. Long tasks
ack late, so a worker that dies mid-task leaves the message to be delivered again. One bad photo
never blocks the queue.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.core.exceptions import ValidationError

from . import jobs
from .errors import TRANSIENT_ERRORS
from .models import ModelVersion
from .pipeline import housekeeping, process, queue, reembed
from .review.notify import send_decision_emails
from .training.estimate import measure_and_record
from .training.localizer import execute_localizer_retrain
from .training.registry import evaluate_on_holdout
from .training.runs import check_training_runs, execute_run
from .training.species_classifier import retrain_species_classifier

log = logging.getLogger(__name__)

RETRY_OPTIONS = dict(
    autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=120, retry_jitter=True, max_retries=6
)
LONG_TASK_OPTIONS = dict(acks_late=True, reject_on_worker_lost=True, **RETRY_OPTIONS)
# explicit (soft, hard) time limits in seconds: the soft one raises SoftTimeLimitExceeded in the task, which
# fails the photo or the run with its reason; the hard one kills a process that ignored it
PHOTO_LIMITS = dict(soft_time_limit=300, time_limit=360)
GALLERY_LIMITS = dict(soft_time_limit=4 * 3600, time_limit=4 * 3600 + 300)
TRAINING_LIMITS = dict(soft_time_limit=24 * 3600, time_limit=24 * 3600 + 600)
HOUSEKEEPING_LIMITS = dict(soft_time_limit=120, time_limit=180)


class PhotoTask(Task):
    """When a photo task gives up (transient errors past max_retries), the photo is failed, not stuck."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        photo_id = args[0] if args else kwargs.get("photo_id")
        if photo_id is None:
            return
        try:
            process.fail(
                photo_id,
                "unavailable",
                f"Processing could not reach a service it needs ({type(exc).__name__}). A moderator can retry it.",
            )
        except Exception:  # the database itself may be the problem
            log.exception("could not mark photo %s failed", photo_id)


@shared_task(name=jobs.PROCESS_PHOTO, base=PhotoTask, **PHOTO_LIMITS, **LONG_TASK_OPTIONS)
def process_photo(photo_id: int) -> str:
    """Localize, embed and rank one uploaded photo; leaves it AWAITING_REVIEW with its suggestions."""
    return process.process_photo(photo_id)


@shared_task(name=jobs.RERANK_PHOTO, **PHOTO_LIMITS, **LONG_TASK_OPTIONS)
def rerank_photo(photo_id: int) -> str:
    """Re-rank a photo awaiting review against the current gallery."""
    return process.rerank_photo(photo_id)


@shared_task(name=jobs.REEMBED_GALLERY, **GALLERY_LIMITS, **LONG_TASK_OPTIONS)
def reembed_gallery(version_id: int, promote: bool = True) -> str:
    """Embed every gallery photo with ``version``, then (when ``promote``) make it the active one."""
    return reembed.reembed_gallery(version_id, promote=promote)


@shared_task(name=jobs.RUN_TRAINING, bind=True, **TRAINING_LIMITS, **LONG_TASK_OPTIONS)
def run_training(self, run_id: int) -> str:
    """Train a model version; the worker's hostname marks the run as its own (``runs.recover_runs_of``)."""
    return execute_run(run_id, worker=self.request.hostname or "")


@shared_task(name=jobs.MEASURE_STEP_TIME, bind=True, soft_time_limit=600, time_limit=660)
def measure_step_time(self, arch: str, image_size: int, reason: str = "requested") -> float:
    """Time a few training steps of ``arch`` at ``image_size`` on this worker's device, for the retrain
    form's estimate (``training.estimate``). Idempotent: it replaces this worker's last measurement."""
    return measure_and_record(arch, image_size, self.request.hostname or "", reason).seconds_per_step


@shared_task(
    name=jobs.TRAIN_SPECIES_CLASSIFIER, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **LONG_TASK_OPTIONS
)
def train_species_classifier() -> str:
    """Retrain the upload form's species classifier from the confirmed photos (the same catalogue gives the
    same folder, so a redelivered message only repeats the work)."""
    return retrain_species_classifier()


@shared_task(name=jobs.NOTIFY_WATCHERS, **HOUSEKEEPING_LIMITS, **RETRY_OPTIONS)
def notify_watchers(decision_id: int) -> int:
    """Notices and e-mails of a match, a new whale, a nickname or a merge (``review.notify``; told once)."""
    return send_decision_emails(decision_id)


@shared_task(name=jobs.REQUEUE_STUCK_PHOTOS, **HOUSEKEEPING_LIMITS, **RETRY_OPTIONS)
def requeue_stuck_photos(older_than_minutes: float | None = None, limit: int = 500) -> int:
    """Beat: queue ``process_photo`` again for photos whose message or worker was lost."""
    return housekeeping.requeue_stuck_photos(older_than_minutes, limit)


@shared_task(name=jobs.PRUNE_GALLERY_CHANGES, **HOUSEKEEPING_LIMITS, **RETRY_OPTIONS)
def prune_gallery_changes() -> int:
    """Beat: drop old ``GalleryChange`` rows and expired gallery snapshots."""
    return housekeeping.prune_gallery_changes()


@shared_task(name=jobs.EVALUATE_HOLDOUT, **GALLERY_LIMITS, **LONG_TASK_OPTIONS)
def evaluate_holdout(version_id: int) -> str:
    """Score a model version on the frozen holdout set (``training.registry``)."""
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return "gone"
    try:
        evaluation = evaluate_on_holdout(version)
    except ValidationError as exc:
        log.warning("holdout evaluation of %s skipped: %s", version.name, exc.messages[0])
        return "skipped"
    return f"map5={evaluation.metrics.get('map5')}"


@shared_task(name=jobs.RETRAIN_LOCALIZER, **TRAINING_LIMITS, **LONG_TASK_OPTIONS)
def retrain_localizer(run_id: int) -> str:
    return execute_localizer_retrain(run_id)


@shared_task(name=jobs.CHECK_TRAINING_RUNS, **HOUSEKEEPING_LIMITS, **RETRY_OPTIONS)
def check_training_runs_task() -> dict:
    """Beat: end runs no live worker owns ("worker lost"); send again runs the broker could not take."""
    return check_training_runs()


@shared_task(name=jobs.SEND_UNQUEUED_PHOTOS, **HOUSEKEEPING_LIMITS, **RETRY_OPTIONS)
def send_unqueued_photos(older_than_s: float = queue.UNQUEUED_SWEEP_S) -> int:
    """Beat: queue the photos whose message never reached the broker (an outage during their upload)."""
    return queue.send_unqueued_photos(older_than_s)
