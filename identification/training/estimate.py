"""How long a training run would take, said before it starts (issue 12, item 6).

A training worker measures ``ml.step_time`` (``ml.train``'s own step on random crops) for the form's
default architecture at start-up, and for any other on request; each measurement is a ``StepTiming``
of that worker. The form multiplies the step time by the run's steps: epochs x batches per epoch,
the batches counted as ``ml.train`` will count them (the training share of the species' ``training_queryset``,
each individual oversampled to ``oversample_to`` photos, whole batches only), capped by
``ML_TRAIN_MAX_STEPS``. Validation and batch loading are not in the step time: an estimate, not a promise.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ml.presets import DEFAULT

from ..models import Species, StepTiming, WorkerHeartbeat
from .dataset import species_or_default, training_queryset

CPU_WARNING_S = 3600  # a run longer than this on a CPU worker gets a warning on the form
TRAIN_SHARE = 1.0 - 0.2 - 0.1  # ml.train's val_fraction and new_individual_fraction go to validation
OVERSAMPLE_TO = 4  # ml.train's oversample_to


def record_step_time(worker: str, step, reason: str) -> StepTiming:
    """Keep ``step`` (an ``ml.step_time.StepTime``) as ``worker``'s latest for its architecture and size."""
    timing, _ = StepTiming.objects.update_or_create(
        worker=worker[:200],
        arch=step.arch,
        image_size=step.image_size,
        batch_size=step.batch_size,
        defaults={
            "device": step.device[:100],
            "seconds_per_step": step.seconds_per_step,
            "steps_measured": step.steps,
            "reason": reason[:100],
            "measured_at": timezone.now(),
        },
    )
    return timing


def batches_per_epoch(batch_size: int | None = None, species=None) -> int:
    """The batches of one epoch of a run for ``species`` (the humpback when None) started now."""
    batch_size = int(batch_size or settings.ML_DEFAULT_BATCH_SIZE)
    photos = training_queryset(species)
    n_photos = photos.count()
    n_ids = photos.values("individual_id").distinct().count()
    train_photos = max(round(n_photos * TRAIN_SHARE), round(n_ids * TRAIN_SHARE) * OVERSAMPLE_TO)
    return max(1, train_photos // batch_size)


def live_training_workers() -> list[str]:
    """Hostnames of the workers that consume the training queue and were seen lately."""
    from whalesite.celery import TRAINING_QUEUE

    seen_after = timezone.now() - timedelta(seconds=3 * int(getattr(settings, "WORKER_HEARTBEAT_S", 30)))
    rows = WorkerHeartbeat.objects.filter(last_seen__gte=seen_after)
    return [w.hostname for w in rows if TRAINING_QUEUE in (w.queues or [])]


def step_timings() -> list[dict]:
    """The latest step time of each architecture and size on the live training workers (all workers'
    when none is live), newest first: what the form's estimate reads."""
    batch_size = settings.ML_DEFAULT_BATCH_SIZE
    workers = live_training_workers()
    rows = StepTiming.objects.filter(batch_size=batch_size)
    rows = rows.filter(worker__in=workers) if workers and rows.filter(worker__in=workers).exists() else rows
    seen, out = set(), []
    for t in rows.order_by("-measured_at"):
        if (t.arch, t.image_size) in seen:
            continue
        seen.add((t.arch, t.image_size))
        out.append(
            {
                "arch": t.arch,
                "image_size": t.image_size,
                "seconds_per_step": round(t.seconds_per_step, 4),
                "device": t.device,
                "worker": t.worker,
                "reason": t.reason,
                "measured_at": timezone.localtime(t.measured_at).strftime("%Y-%m-%d %H:%M"),
            }
        )
    return out


def estimate(arch: str, image_size: int, epochs: int, timings: list[dict], batches: int) -> dict | None:
    """The run's estimated seconds from the matching step time, and whether to warn; None unmeasured."""
    timing = next((t for t in timings if t["arch"] == arch and t["image_size"] == int(image_size)), None)
    if timing is None:
        return None
    steps = int(epochs) * batches
    if settings.ML_TRAIN_MAX_STEPS:
        steps = min(steps, settings.ML_TRAIN_MAX_STEPS)
    seconds = steps * timing["seconds_per_step"]
    warn = timing["device"].startswith("cpu") and seconds > CPU_WARNING_S
    return {**timing, "steps": steps, "seconds": seconds, "warn": warn, "text": duration_text(seconds)}


def duration_text(seconds: float) -> str:
    """ "3 h 05 min", "12 min", "40 s"."""
    seconds = max(0, int(math.ceil(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def form_estimate(form) -> dict:
    """What the dashboard's form shows: the step times (for the page's script, which recomputes the
    estimate as the fields change), the batches per epoch, and the estimate for the form's values."""
    by_species = {sp.pk: batches_per_epoch(species=sp) for sp in Species.objects.identifiable()}
    chosen = form["species"].value() if "species" in form.fields else None
    default = species_or_default(None)
    try:
        chosen = int(chosen) if chosen not in (None, "") else getattr(default, "pk", None)
    except (TypeError, ValueError):
        chosen = None
    timings = step_timings()
    batches = by_species.get(chosen) or batches_per_epoch(species=default)
    values = {
        "arch": form["arch"].value() or DEFAULT.arch,
        "image_size": form["image_size"].value() or DEFAULT.image_size,
        "epochs": form["epochs"].value() or DEFAULT.epochs,
    }
    try:
        current = estimate(values["arch"], int(values["image_size"]), int(values["epochs"]), timings, batches)
    except (TypeError, ValueError):
        current = None
    return {
        "timings": timings,
        "timings_json": json.dumps(timings),
        "batches": batches,
        "batches_json": json.dumps({str(pk): n for pk, n in by_species.items()}),
        "max_steps": settings.ML_TRAIN_MAX_STEPS or 0,
        "warn_after_s": CPU_WARNING_S,
        "current": current,
    }


def measure_and_record(arch: str, image_size: int, worker: str, reason: str) -> StepTiming:
    """The body of the ``measure_step_time`` task: measure on this worker's device, keep it."""
    from ml.step_time import measure_step_time  # loads torch

    step = measure_step_time(arch, int(image_size), settings.ML_DEFAULT_BATCH_SIZE, settings.ML_DEVICE)
    return record_step_time(worker, step, reason)


def request_step_time(*, user, arch: str, image_size) -> None:
    """The form's "Measure on the worker": queue a measurement of ``arch`` at ``image_size``."""
    from django.core.exceptions import ValidationError

    from .. import jobs
    from ..permissions import MANAGE_MODELS_PERMISSION, require
    from .defaults import ARCH_CHOICES, IMAGE_SIZE_CHOICES

    require(user, MANAGE_MODELS_PERMISSION)
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        size = 0
    if arch not in dict(ARCH_CHOICES) or size not in dict(IMAGE_SIZE_CHOICES):
        raise ValidationError("Choose an architecture and an image size from the form.")
    jobs.enqueue(jobs.MEASURE_STEP_TIME, arch, size, f"requested by {user}")
