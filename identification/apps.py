from django.apps import AppConfig


class IdentificationConfig(AppConfig):
    name = "identification"
    verbose_name = "Identification"

    def ready(self):
        """Wire the Celery worker signals: heartbeats (``ops.health``) and torch threads (``ops.threads``)."""
        from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

        from .ops import health, threads

        worker_init.connect(threads.plan_threads, dispatch_uid="identification.plan_threads")
        worker_process_init.connect(threads.apply_threads, dispatch_uid="identification.apply_threads")
        worker_ready.connect(health.on_worker_ready, dispatch_uid="identification.on_worker_ready")
        worker_shutdown.connect(health.on_worker_shutdown, dispatch_uid="identification.on_worker_shutdown")
        worker_ready.connect(recover_training_runs, dispatch_uid="identification.recover_training_runs")


def recover_training_runs(sender=None, **kwargs):
    """``worker_ready``: a training worker starts again the runs its previous process left RUNNING, and
    ends runs no live worker owns (``training.runs``); start-up goes on if the database is down."""
    import logging

    from whalesite.celery import TRAINING_QUEUE

    from .training.runs import check_training_runs, recover_runs_of

    try:
        queues = {q.name for q in sender.app.amqp.queues.consume_from.values()}
        if TRAINING_QUEUE in queues:
            recover_runs_of(sender.hostname)
            check_training_runs()
            measure_default_step_time()
    except Exception:
        logging.getLogger(__name__).exception("could not recover this worker's training runs")


def measure_default_step_time() -> None:
    """A training worker measures the retrain form's default architecture at start-up, so the form
    can say how long a run would take on it before the first run (``training.estimate``)."""
    from django.conf import settings

    from . import jobs
    from .training.defaults import FORM_ARCH, FORM_IMAGE_SIZE

    if settings.ML_MEASURE_STEP_TIME_AT_START:
        jobs.send(jobs.MEASURE_STEP_TIME, FORM_ARCH, FORM_IMAGE_SIZE, "worker start-up")
