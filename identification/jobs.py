"""The one seam through which site code queues Celery work: by task name, so that nothing imports
``identification.tasks`` (the tasks import the domain code, never the reverse). Routes and queues are
named in ``whalesite.celery`` only; the names below are the tasks' registered names."""
from __future__ import annotations

from django.db import transaction

from whalesite.celery import app

PROCESS_PHOTO = "identification.tasks.process_photo"
RERANK_PHOTO = "identification.tasks.rerank_photo"
REEMBED_GALLERY = "identification.tasks.reembed_gallery"
RUN_TRAINING = "identification.tasks.run_training"
RETRAIN_LOCALIZER = "identification.tasks.retrain_localizer"
EVALUATE_HOLDOUT = "identification.tasks.evaluate_holdout"
NOTIFY_WATCHERS = "identification.tasks.notify_watchers"
REQUEUE_STUCK_PHOTOS = "identification.tasks.requeue_stuck_photos"
PRUNE_GALLERY_CHANGES = "identification.tasks.prune_gallery_changes"


def send(task_name: str, *args, **kwargs) -> None:
    """Queue ``task_name`` now. A signature rather than ``send_task``: where the task is registered in
    this process, ``CELERY_TASK_ALWAYS_EAGER`` is honoured as ``.delay()`` would."""
    app.signature(task_name, args=args, kwargs=kwargs).apply_async()


def enqueue_later(task_name: str, *args, countdown: float) -> None:
    """Like ``enqueue``, run ``countdown`` seconds after the commit (the e-mails wait out the undo window)."""
    transaction.on_commit(lambda: app.signature(task_name, args=args).apply_async(countdown=countdown))


def enqueue(task_name: str, *args, **kwargs) -> None:
    """Queue ``task_name`` once the current transaction commits (at once outside one), so a worker never
    reads a row before it exists."""
    transaction.on_commit(lambda: send(task_name, *args, **kwargs))
