"""The Celery app. Queues and routes are named here, and only here."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whalesite.settings.dev")

PIPELINE_QUEUE = "pipeline"  # GPU workers: preprocess, embed, search
TRAINING_QUEUE = "training"  # GPU, one run at a time (run that worker with --concurrency=1)
DEFAULT_QUEUE = "default"  # email, housekeeping
IMPORT_QUEUE = "imports"  # bulk imports, a chunk of rows at a time (CPU: reading the ZIP, checking photos)

app = Celery("whalesite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue(PIPELINE_QUEUE), Queue(TRAINING_QUEUE), Queue(DEFAULT_QUEUE), Queue(IMPORT_QUEUE))
app.conf.task_default_queue = DEFAULT_QUEUE
app.conf.task_routes = {
    "identification.tasks.process_photo": {"queue": PIPELINE_QUEUE},
    "identification.tasks.rerank_photo": {"queue": PIPELINE_QUEUE},
    "identification.tasks.reembed_gallery": {"queue": PIPELINE_QUEUE},
    "identification.tasks.run_training": {"queue": TRAINING_QUEUE},
    "identification.tasks.retrain_localizer": {"queue": TRAINING_QUEUE},
    "identification.tasks.measure_step_time": {"queue": TRAINING_QUEUE},
    "identification.tasks.train_species_classifier": {"queue": TRAINING_QUEUE},
    "identification.tasks.evaluate_holdout": {"queue": PIPELINE_QUEUE},
    "identification.tasks.notify_watchers": {"queue": DEFAULT_QUEUE},
    "identification.tasks.requeue_stuck_photos": {"queue": DEFAULT_QUEUE},
    "identification.tasks.prune_gallery_changes": {"queue": DEFAULT_QUEUE},
    "identification.tasks.check_training_runs": {"queue": DEFAULT_QUEUE},
    "identification.tasks.send_unqueued_photos": {"queue": DEFAULT_QUEUE},
    "submissions.tasks.import_chunk": {"queue": IMPORT_QUEUE},
}
app.conf.beat_schedule = {
    # photos whose message or worker was lost go round again (see the task for the rules)
    "requeue-stuck-photos": {"task": "identification.tasks.requeue_stuck_photos", "schedule": 60.0},
    # the log workers sync their gallery index from (identification.pipeline.gallery_sync.gallery)
    "prune-gallery-changes": {"task": "identification.tasks.prune_gallery_changes", "schedule": 3600.0},
    # training runs whose worker died are ended ("worker lost"); runs the broker refused are sent again
    "check-training-runs": {"task": "identification.tasks.check_training_runs", "schedule": 30.0},
    # photos the broker could not take during an upload (an outage) are sent as soon as it is back
    "send-unqueued-photos": {"task": "identification.tasks.send_unqueued_photos", "schedule": 15.0},
}
app.autodiscover_tasks()


def ensure_broker_folders() -> None:
    """The filesystem transport needs its folders before the first message."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)
