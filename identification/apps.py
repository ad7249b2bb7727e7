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
