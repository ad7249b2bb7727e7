"""The one seam through which site code queues Celery work: by task name, so that nothing imports
``identification.tasks`` (the tasks import the domain code, never the reverse). Routes and queues are
named in ``whalesite.celery`` only; the names below are the tasks' registered names."""

from __future__ import annotations

import logging

from django.db import transaction

from whalesite.celery import app

from .errors import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

PROCESS_PHOTO = "identification.tasks.process_photo"
RERANK_PHOTO = "identification.tasks.rerank_photo"
REEMBED_GALLERY = "identification.tasks.reembed_gallery"
RUN_TRAINING = "identification.tasks.run_training"
RETRAIN_LOCALIZER = "identification.tasks.retrain_localizer"
MEASURE_STEP_TIME = "identification.tasks.measure_step_time"
EVALUATE_HOLDOUT = "identification.tasks.evaluate_holdout"
TRAIN_SPECIES_CLASSIFIER = "identification.tasks.train_species_classifier"
NOTIFY_WATCHERS = "identification.tasks.notify_watchers"
REQUEUE_STUCK_PHOTOS = "identification.tasks.requeue_stuck_photos"
PRUNE_GALLERY_CHANGES = "identification.tasks.prune_gallery_changes"
CHECK_TRAINING_RUNS = "identification.tasks.check_training_runs"
SEND_UNQUEUED_PHOTOS = "identification.tasks.send_unqueued_photos"
IMPORT_CHUNK = "submissions.tasks.import_chunk"  # bulk import (submissions.imports), one chunk of rows


def send(task_name: str, *args, **kwargs) -> None:
    """Queue ``task_name`` now. A signature rather than ``send_task``: where the task is registered in
    this process, ``CELERY_TASK_ALWAYS_EAGER`` is honoured as ``.delay()`` would."""
    app.signature(task_name, args=args, kwargs=kwargs).apply_async()


def try_send(task_name: str, *args, **kwargs) -> bool:
    """``send``, but a broker that is down is logged and answered ``False`` instead of raised: the rows
    are saved already, and the beat sweeps (``pipeline.housekeeping``, ``training.runs``) send again."""
    try:
        send(task_name, *args, **kwargs)
    except TRANSIENT_ERRORS as exc:
        log.warning("could not queue %s%r, the broker is unreachable: %s: %s", task_name, args, type(exc).__name__, exc)
        return False
    return True


def enqueue_later(task_name: str, *args, countdown: float) -> None:
    """Like ``enqueue``, run ``countdown`` seconds after the commit (the e-mails wait out the undo window);
    a broker that is down is logged, as in ``try_send``."""

    def after_commit():
        try:
            app.signature(task_name, args=args).apply_async(countdown=countdown)
        except TRANSIENT_ERRORS as exc:
            log.warning(
                "could not queue %s%r, the broker is unreachable: %s: %s", task_name, args, type(exc).__name__, exc
            )

    transaction.on_commit(after_commit)


def enqueue(task_name: str, *args, on_sent=None, **kwargs) -> None:
    """Queue ``task_name`` once the current transaction commits (at once outside one), so a worker never
    reads a row before it exists. The commit has happened by then, so a broker outage must not turn
    saved work into an error page: it is logged (``try_send``); ``on_sent()`` runs when it was queued."""

    def after_commit():
        if try_send(task_name, *args, **kwargs) and on_sent is not None:
            on_sent()

    transaction.on_commit(after_commit)
