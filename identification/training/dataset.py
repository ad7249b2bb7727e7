"""What the training set is, in one place: the photos a run trains on, the boxes it trusts, the
frozen holdout it never sees, and how a merged whale is followed to the one it was merged into.
The retrain (``runs.execute_run``) and the administrators' exports (``exports``) both read it.

Layout under ``settings.ML_ROOT`` written by ``export_dataset``::

    runs/<run_id>/data/images/<photo_id>.<ext>   copied from storage (works for S3)
    runs/<run_id>/data/train.csv                 Image,Id (Id = catalogue id)
    runs/<run_id>/data/boxes.csv                 Image,x0,y0,x1,y1 (given / moderator / confident localizer boxes)
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.core.files.storage import default_storage
from django.db.models import Q

from ml.data import write_csv
from submissions.models import Photo

from ..models import HoldoutSet, TrainingExample

log = logging.getLogger(__name__)


def current_holdout() -> HoldoutSet | None:
    return HoldoutSet.objects.order_by("created_at", "pk").first()


def holdout_photo_ids() -> set[int]:
    holdout = current_holdout()
    return set(holdout.photo_ids) if holdout else set()


def resolve_merged(individual):
    """The individual a merged one now lives on (itself when it was never merged)."""
    while individual.merged_into_id:
        individual = individual.merged_into
    return individual


def resolve_merged_id(individual_id: int, merged: dict[int, int]) -> int:
    """``resolve_merged`` on ids, with ``merged`` = {individual id: merged-into id} read once."""
    seen = set()
    while individual_id in merged and individual_id not in seen:
        seen.add(individual_id)
        individual_id = merged[individual_id]
    return individual_id


def trusted_box(photo):
    """The photo's box when it can be trained on: given, corrected by a moderator, or a localizer box
    that was not flagged as unsure. None otherwise."""
    trusted = photo.box_source in (Photo.BoxSource.GIVEN, Photo.BoxSource.MODERATOR) or (
        photo.box_source == Photo.BoxSource.LOCALIZER and not photo.box_flagged
    )
    return photo.box if trusted and photo.box is not None else None


def training_queryset():
    """Photos a run trains on: usable training examples plus every gallery photo, minus the frozen
    holdout and the examples an administrator excluded."""
    example_photos = TrainingExample.objects.usable().values_list("photo_id", flat=True)
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
    images = out_dir / "images"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    images.mkdir(parents=True)
    labels, boxes, photo_ids = [], [], []
    for photo in training_queryset():
        ext = Path(photo.image.name).suffix.lower() or ".jpg"
        name = f"{photo.pk}{ext}"
        try:
            with default_storage.open(photo.image.name, "rb") as src, open(images / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except FileNotFoundError:
            log.warning("training export: photo %s has no file, skipped", photo.pk)
            continue
        labels.append((name, resolve_merged(photo.individual).catalogue_id))
        photo_ids.append(photo.pk)
        b = trusted_box(photo)
        if b is not None:
            boxes.append((name, round(b.x0, 2), round(b.y0, 2), round(b.x1, 2), round(b.y1, 2)))
    write_csv(out_dir / "train.csv", ["Image", "Id"], labels)
    write_csv(out_dir / "boxes.csv", ["Image", "x0", "y0", "x1", "y1"], boxes)
    return {
        "photos": len(labels),
        "individuals": len({lab for _, lab in labels}),
        "boxes": len(boxes),
        "photo_ids": photo_ids,
    }
