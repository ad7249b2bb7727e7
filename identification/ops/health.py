"""Operational health: queue lengths, workers and their device, stuck or failed photos.

Workers. Each Celery worker writes a ``WorkerHeartbeat`` row (hostname, device from
``ml.device.pick_device(settings.ML_DEVICE)``, the queues it consumes, pid) when it is ready
(``worker_ready`` signal) and then every ``WORKER_HEARTBEAT_S`` seconds from a daemon thread; a
clean shutdown deletes the row. The health page shows a worker as *alive* when its last beat is
younger than three intervals, *stale* otherwise (killed, or the host is gone). This works with
every broker (the filesystem transport has no broadcast for ``inspect``); with Redis the page also
asks the workers for a ``ping`` (0.5 s) and shows which answered.

Queues. Redis: ``LLEN`` of each queue's list (plus kombu's priority lists ``<queue>\\x06\\x16<n>``),
and the number of delivered-but-unacknowledged messages (the ``unacked`` hash). Filesystem
transport: the number of ``*.<queue>.msg`` files waiting in its folder.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from pathlib import Path

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from submissions.models import Photo
from whalesite.celery import DEFAULT_QUEUE, IMPORT_QUEUE, PIPELINE_QUEUE, TRAINING_QUEUE, app

from ..models import WorkerHeartbeat
from ..review.curation import retry_photo
from .threads import planned_threads

log = logging.getLogger(__name__)

QUEUES = (PIPELINE_QUEUE, TRAINING_QUEUE, DEFAULT_QUEUE, IMPORT_QUEUE)
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps; priority 0 is the bare list


def heartbeat_interval() -> int:
    return int(getattr(settings, "WORKER_HEARTBEAT_S", 30))


# --------------------------------------------------------------------------- queues


def broker_url() -> str:
    return str(settings.CELERY_BROKER_URL)


def queue_lengths() -> dict:
    """{"transport", "queues": {name: waiting}, "unacked": n|None, "error": str}."""
    url = broker_url()
    out = {"transport": url.split("://", 1)[0], "queues": {}, "unacked": None, "error": ""}
    try:
        if url.startswith(("redis://", "rediss://")):
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            for name in QUEUES:
                keys = [name] + [f"{name}{REDIS_PRIORITY_SEP}{p}" for p in REDIS_PRIORITY_STEPS]
                pipe = client.pipeline()
                for key in keys:
                    pipe.llen(key)
                out["queues"][name] = int(sum(pipe.execute()))
            out["unacked"] = int(client.hlen("unacked"))
        elif url.startswith("filesystem://"):
            folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
            files = [p.name for p in folder.iterdir()] if folder.is_dir() else []
            for name in QUEUES:
                out["queues"][name] = sum(1 for f in files if f.endswith(f".{name}.msg"))
        else:
            out["error"] = f"Queue lengths are not available for the {out['transport']} transport."
    except Exception as exc:  # the page must render when the broker is down
        out["error"] = f"Broker unreachable: {type(exc).__name__}: {exc}"
    return out


# --------------------------------------------------------------------------- workers


def _device_name() -> str:
    try:
        from ml.device import pick_device  # loads torch

        dev = pick_device(getattr(settings, "ML_DEVICE", "") or "")
        if dev.type == "cuda":
            import torch

            return f"GPU: {torch.cuda.get_device_name(dev)}"
        threads = planned_threads()
        per_process = f", {threads} torch thread{'s' if threads != 1 else ''} per process" if threads else ""
        return f"CPU ({os.cpu_count()} cores{per_process})"
    except Exception as exc:  # pragma: no cover - a broken torch install
        return f"unknown ({type(exc).__name__})"


def write_heartbeat(hostname: str, queues, started_at=None, device: str | None = None) -> None:
    defaults = {"queues": sorted(queues), "pid": os.getpid(), "last_seen": timezone.now()}
    if device is not None:
        defaults["device"] = device
    if started_at is not None:
        defaults["started_at"] = started_at
    WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults=defaults)


class _Beat:
    thread: threading.Thread | None = None
    stop = threading.Event()
    hostname = ""


def on_worker_ready(sender=None, **kwargs):
    """``worker_ready`` receiver (wired in ``IdentificationConfig.ready``): the first beat, then a thread."""
    try:
        hostname = sender.hostname
        queues = [q.name for q in sender.app.amqp.queues.consume_from.values()]
    except Exception:  # pragma: no cover - signature differences between Celery versions
        hostname, queues = f"worker@{os.uname().nodename}", []
    device = _device_name()
    try:
        write_heartbeat(hostname, queues, started_at=timezone.now(), device=device)
    except Exception:
        log.exception("could not write the worker heartbeat")
    _Beat.hostname = hostname
    _Beat.stop.clear()

    def loop():
        while not _Beat.stop.wait(heartbeat_interval()):
            try:
                write_heartbeat(hostname, queues, device=device)  # recreates the row if it was deleted
            except Exception:
                log.warning("worker heartbeat failed", exc_info=True)
            finally:
                connection.close()

    _Beat.thread = threading.Thread(target=loop, name="whalesite-heartbeat", daemon=True)
    _Beat.thread.start()


def on_worker_shutdown(sender=None, **kwargs):
    """``worker_shutdown`` receiver: a clean shutdown removes the worker's row."""
    _Beat.stop.set()
    if _Beat.hostname:
        try:
            WorkerHeartbeat.objects.filter(hostname=_Beat.hostname).delete()
        except Exception:
            log.warning("could not remove the worker heartbeat", exc_info=True)


def workers(ping: bool = True) -> list[dict]:
    answered = set()
    if ping and broker_url().startswith(("redis://", "rediss://")):
        try:
            answered = {name for reply in (app.control.ping(timeout=0.5) or []) for name in reply}
        except Exception:
            log.warning("worker ping failed", exc_info=True)
    cutoff = timezone.now() - timedelta(seconds=3 * heartbeat_interval())
    rows = []
    for hb in WorkerHeartbeat.objects.all():
        rows.append(
            {
                "hostname": hb.hostname,
                "device": hb.device,
                "gpu": hb.device.startswith("GPU"),
                "queues": hb.queues,
                "pid": hb.pid,
                "started_at": hb.started_at,
                "last_seen": hb.last_seen,
                "alive": hb.last_seen >= cutoff,
                "answered_ping": hb.hostname in answered,
            }
        )
    known = {r["hostname"] for r in rows}
    for name in sorted(answered - known):
        rows.append(
            {
                "hostname": name,
                "device": "",
                "gpu": False,
                "queues": [],
                "pid": None,
                "started_at": None,
                "last_seen": None,
                "alive": True,
                "answered_ping": True,
            }
        )
    return rows


# --------------------------------------------------------------------------- photos


def problem_photos(limit: int = 50) -> dict:
    failed = Photo.objects.failed().select_related("sighting__species").order_by("-updated_at")
    stuck = Photo.objects.stuck().select_related("sighting__species").order_by("updated_at")
    return {
        "failed": list(failed[:limit]),
        "failed_count": failed.count(),
        "stuck": list(stuck[:limit]),
        "stuck_count": stuck.count(),
    }


def retry_all(actor) -> int:
    """Retry every failed and stuck photo; returns how many were queued again."""
    done = 0
    for photo in list(Photo.objects.failed()) + list(Photo.objects.stuck()):
        try:
            retry_photo(photo=photo, actor=actor)
            done += 1
        except ValidationError:  # changed meanwhile
            continue
    return done


def summary() -> dict:
    return {"queues": queue_lengths(), "workers": workers(), **problem_photos(), "interval": heartbeat_interval()}
