"""Celery tasks of the submissions app: thin wrappers, as in ``identification.tasks`` (whose rules they
follow: primary keys, idempotent, queued on commit by name through ``identification.jobs``, routed in
``whalesite.celery``). Nothing in the site imports this module."""

from __future__ import annotations

from celery import shared_task

from identification import jobs
from identification.errors import TRANSIENT_ERRORS

from .imports import run

# a chunk is ``IMPORT_CHUNK_ROWS`` photos (25: seconds); the soft limit re-queues what is left of it
CHUNK_LIMITS = dict(soft_time_limit=600, time_limit=660)


@shared_task(
    name=jobs.IMPORT_CHUNK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
    **CHUNK_LIMITS,
)
def import_chunk(import_id: int, chunk: int) -> str:
    """Import one chunk of a bulk import's rows, skipping the rows done, and queue the next."""
    return run.run_chunk(import_id, chunk)
