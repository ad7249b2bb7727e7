"""Training runs from the site: export the moderated data as a Kaggle-style folder, call
``ml.train.train``, and register the result as an (inactive) ``ModelVersion``.

Layout under ``settings.ML_ROOT``::

    runs/<run_id>/data/images/<photo_id>.<ext>   copied from storage (works for S3)
    runs/<run_id>/data/train.csv                 Image,Id (Id = catalogue id)
    runs/<run_id>/data/boxes.csv                 Image,x0,y0,x1,y1 (given / moderator / confident localizer boxes)
    models/run-<run_id>-<version>/               the model folder written by ml.train
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from submissions.models import Photo

from . import jobs
from .models import ModelVersion, TrainingExample, TrainingRun
from .pipeline import cache

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0


def run_dir(run_id: int) -> Path:
    return Path(settings.ML_ROOT) / "runs" / str(run_id)


def training_photos():
    """Photos a run trains on: usable training examples plus every gallery photo."""
    from .registry import holdout_photo_ids

    example_photos = TrainingExample.objects.usable().values_list("photo_id", flat=True)
    from django.db.models import Q

    return (
        Photo.objects.filter(Q(pk__in=example_photos) | Q(pk__in=Photo.objects.in_gallery().values("pk")))
        .filter(individual__isnull=False)
        .exclude(status=Photo.Status.REJECTED)
        .exclude(pk__in=holdout_photo_ids())  # the frozen benchmark is never trained on
        .exclude(training_example__status=TrainingExample.Status.EXCLUDED)  # an admin excluded it
        .select_related("individual")
        .order_by("pk")
    )


def export_dataset(out_dir: Path) -> dict:
    """Write images, ``train.csv`` and ``boxes.csv`` for ``ml.train``. Returns a snapshot dict."""
    from ml.data import write_csv

    images = out_dir / "images"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    images.mkdir(parents=True)
    labels, boxes, photo_ids = [], [], []
    for photo in training_photos():
        ext = Path(photo.image.name).suffix.lower() or ".jpg"
        name = f"{photo.pk}{ext}"
        try:
            with default_storage.open(photo.image.name, "rb") as src, open(images / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except FileNotFoundError:
            log.warning("training export: photo %s has no file, skipped", photo.pk)
            continue
        individual = photo.individual
        while individual.merged_into_id:
            individual = individual.merged_into
        labels.append((name, individual.catalogue_id))
        photo_ids.append(photo.pk)
        trusted = photo.box_source in (Photo.BoxSource.GIVEN, Photo.BoxSource.MODERATOR) or (
            photo.box_source == Photo.BoxSource.LOCALIZER and not photo.box_flagged
        )
        if photo.box is not None and trusted:
            b = photo.box
            boxes.append((name, round(b.x0, 2), round(b.y0, 2), round(b.x1, 2), round(b.y1, 2)))
    write_csv(out_dir / "train.csv", ["Image", "Id"], labels)
    write_csv(out_dir / "boxes.csv", ["Image", "x0", "y0", "x1", "y1"], boxes)
    return {
        "photos": len(labels),
        "individuals": len({lab for _, lab in labels}),
        "boxes": len(boxes),
        "photo_ids": photo_ids,
    }


class _RunReporter:
    """Progress and cancellation, throttled to one database write/read per second."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.lines: list[str] = []
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancel = False
        self._pending = None

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self.lines.append(f"[{stamp}] {line}")
        self.flush(force=True)

    def progress(self, p) -> None:
        self._pending = asdict(p) if dataclasses.is_dataclass(p) else dict(p)
        if p.phase in ("validate", "done", "localizer") and p.message:
            self.lines.append(f"[{timezone.now():%H:%M:%S}] {p.message}")
            self.flush(force=True)
        else:
            self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_INTERVAL_S:
            return
        self._last_write = now
        fields = {"log": "\n".join(self.lines)}
        if self._pending is not None:
            fields["progress"] = self._pending
        TrainingRun.objects.filter(pk=self.run_id).update(**fields)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_check >= PROGRESS_INTERVAL_S:
            self._last_check = now
            self._cancel = TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()
        return self._cancel


def _train_config(run: TrainingRun, data_dir: Path, out_dir: Path):
    from ml.train import TrainConfig

    opts = run.options or {}
    values = {
        "csv": str(data_dir / "train.csv"),
        "images_dir": str(data_dir / "images"),
        "boxes_csv": str(data_dir / "boxes.csv"),
        "out_dir": str(out_dir),
        "arch": opts.get("arch") or settings.ML_DEFAULT_ARCH,
        "image_size": int(opts.get("image_size") or settings.ML_DEFAULT_IMAGE_SIZE),
        "epochs": int(opts.get("epochs") or settings.ML_DEFAULT_EPOCHS),
        "batch_size": int(opts.get("batch_size") or settings.ML_DEFAULT_BATCH_SIZE),
        "device": settings.ML_DEVICE,
        "num_workers": 0,
        "seed": int(opts.get("seed", 0)),
    }
    if settings.ML_TRAIN_MAX_STEPS:
        values["max_steps"] = settings.ML_TRAIN_MAX_STEPS
    if opts.get("max_steps"):
        values["max_steps"] = int(opts["max_steps"])
    if settings.ML_INIT_WEIGHTS:
        values["init_weights"] = settings.ML_INIT_WEIGHTS
    if opts.get("fine_tune", True):
        active = ModelVersion.objects.active().first()
        if active is not None and (cache.model_dir(active) / "model.pt").is_file():
            values["init_from"] = str(cache.model_dir(active))
    return TrainConfig.from_dict(values)


def register_version(result, *, run: TrainingRun | None, config, snapshot: dict, name: str | None = None) -> ModelVersion:
    model_dir = Path(result.model_dir).resolve()
    root = Path(settings.ML_ROOT).resolve()
    artifact = str(model_dir.relative_to(root)) if model_dir.is_relative_to(root) else str(model_dir)
    version_label = (result.metrics or {}).get("version") or timezone.now().strftime("%Y%m%d-%H%M%S")
    return ModelVersion.objects.create(
        name=name or (f"run-{run.pk}-{version_label}" if run else version_label),
        artifact_dir=artifact,
        config=config.to_dict() if hasattr(config, "to_dict") else dict(config),
        metrics=result.metrics or {},
        history=result.history or [],
        training_snapshot=snapshot,
        new_threshold=float(result.new_threshold),
    )


def execute_run(run_id: int) -> str:
    """The body of the ``run_training`` task."""
    from ml.train import TrainingCancelled, train

    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        return "gone"
    if not run.in_progress:
        return "done"
    redelivered = run.status == TrainingRun.Status.RUNNING  # the worker died mid-run: start again
    if run.cancel_requested:
        TrainingRun.objects.filter(pk=run_id).update(status=TrainingRun.Status.CANCELLED, finished_at=timezone.now())
        return "cancelled"
    if TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exclude(pk=run_id).exists():
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED, error="Another training run is already running.",
            finished_at=timezone.now(),
        )
        return "refused"
    TrainingRun.objects.filter(pk=run_id).update(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    reporter = _RunReporter(run_id)
    if run.log:
        reporter.lines = run.log.splitlines()
    if redelivered:
        reporter.log("The worker stopped during this run; starting it again.")
    try:
        data_dir = run_dir(run_id) / "data"
        snapshot = export_dataset(data_dir)
        reporter.log(
            f"Exported {snapshot['photos']} photos of {snapshot['individuals']} individuals "
            f"({snapshot['boxes']} boxes)."
        )
        if snapshot["individuals"] < 2:
            raise ValueError("At least two identified individuals are needed to train a model.")
        out_dir = Path(settings.ML_ROOT) / "models" / f"run-{run_id}"
        if out_dir.exists():
            shutil.rmtree(out_dir)
        config = _train_config(run, data_dir, out_dir)
        reporter.log(
            f"Training {config.arch} at {config.image_size}px for {config.epochs} epochs"
            + (f", fine-tuning from {Path(config.init_from).name}" if config.init_from else "")
            + "."
        )
        result = train(config, progress=reporter.progress, should_stop=reporter.should_stop)
    except TrainingCancelled:
        reporter.log("Cancelled.")
        TrainingRun.objects.filter(pk=run_id).update(status=TrainingRun.Status.CANCELLED, finished_at=timezone.now())
        return "cancelled"
    except Exception as exc:
        log.exception("training run %s failed", run_id)
        reporter.log(f"Failed: {type(exc).__name__}: {exc}")
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=5)}",
            finished_at=timezone.now(),
        )
        return "failed"

    with transaction.atomic():
        version = register_version(result, run=run, config=config, snapshot=snapshot)
        TrainingExample.objects.filter(photo_id__in=snapshot["photo_ids"]).exclude(
            status=TrainingExample.Status.EXCLUDED
        ).update(status=TrainingExample.Status.USED, used_by=run)
        reporter.flush(force=True)
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.SUCCEEDED, model_version=version, metrics=result.metrics or {},
            finished_at=timezone.now(),
        )
    reporter.log(f"Created model version {version.name} (MAP@5 {version.metrics.get('map5')}).")
    _queue_holdout_evaluations(version)
    if settings.AUTO_PROMOTE_BETTER_MODELS:
        _maybe_auto_promote(version, run)
    return "succeeded"


def _queue_holdout_evaluations(version: ModelVersion) -> None:
    """Score the new version, and the active one when it has no score yet, on the holdout set."""
    from .models import HoldoutEvaluation
    jobs.send(jobs.EVALUATE_HOLDOUT, version.pk)
    active = ModelVersion.objects.active().first()
    if active is not None and not HoldoutEvaluation.objects.filter(model_version=active).exists():
        jobs.send(jobs.EVALUATE_HOLDOUT, active.pk)


def _maybe_auto_promote(version: ModelVersion, run: TrainingRun) -> None:
    active = ModelVersion.objects.active().first()
    new = version.metrics.get("map5")
    old = (active.metrics or {}).get("map5") if active else None
    if new is None or (old is not None and new <= old):
        return
    ModelVersion.objects.filter(pk=version.pk).update(promoted_by=run.started_by)
    jobs.send(jobs.REEMBED_GALLERY, version.pk)
