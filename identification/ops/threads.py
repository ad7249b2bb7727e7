"""Torch threads for each worker process, so that busy processes do not starve each other.

torch gives every process one OpenMP thread per core. A prefork worker with ``-c 2`` has two
such processes, and a one-machine site runs a training worker beside the pipeline worker; when
they are busy together their threads spin-wait for each other. On 2 cores, two ResNet50
pipeline processes then did 1.9 photos/s against 20.6 with one thread each, and a retrain cut the
pipeline beside it from 10.2 to 3.3 photos/s (``python bench/worker_threads.py``).

So each process gets ``ML_TORCH_THREADS`` threads, or by default an equal share of the cores
(``ml.device.worker_threads``): the cores this worker may use divided by its pool size (1 for
``--pool=solo``). ``OMP_NUM_THREADS`` is not used for this: it would apply to every process alike.
"""

from __future__ import annotations

import logging

from django.conf import settings

log = logging.getLogger(__name__)


class _Plan:
    threads: int | None = None  # decided in the worker's main process, inherited by forked children


def threads_for(pool_size: int) -> int:
    """``ML_TORCH_THREADS`` when set (> 0), else an equal share of the cores for ``pool_size`` processes."""
    from ml.device import worker_threads  # loads torch

    return settings.ML_TORCH_THREADS if settings.ML_TORCH_THREADS > 0 else worker_threads(pool_size)


def planned_threads() -> int | None:
    """The torch threads each of this worker's processes runs with (None outside a worker)."""
    return _Plan.threads


def plan_threads(sender=None, **kwargs):
    """``worker_init`` receiver (wired in ``IdentificationConfig.ready``): decide the threads per process."""
    pool = getattr(sender, "pool_cls", None)
    name = pool if isinstance(pool, str) else getattr(pool, "__module__", "")
    solo = "solo" in str(name)
    try:
        size = 1 if solo else int(getattr(sender, "concurrency", 1) or 1)
    except (TypeError, ValueError):  # "auto" is resolved later by Celery: plan for every core busy
        from ml.device import available_cores

        size = available_cores()
    _Plan.threads = threads_for(size)
    log.info("torch threads per worker process: %s (pool of %s)", _Plan.threads, size)


def apply_threads(sender=None, **kwargs):
    """In each pool process (prefork children; the worker itself for solo): set the planned threads."""
    from ml.device import set_threads

    set_threads(_Plan.threads if _Plan.threads is not None else threads_for(1))
