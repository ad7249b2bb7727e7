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
import random
import shutil
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q

from submissions.models import Photo

from ..models import HoldoutSet, ModelVersion, TrainingExample

log = logging.getLogger(__name__)


HOLDOUT_FRACTION = 0.2  # of the individuals with 2+ gallery photos: one photo each
HOLDOUT_MIN_KNOWN = 5
HOLDOUT_NEW_FRACTION = 0.2  # of the individuals with a single gallery photo (the "new whale" cases)
HOLDOUT_MAX = 1000


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


def get_or_create_holdout(seed: int = 0) -> HoldoutSet:
    """The frozen holdout set; created (once) from the current gallery when there is none."""
    with transaction.atomic():
        # one creator at a time: lock a fixed row of a table every site has
        list(ModelVersion.objects.select_for_update().order_by("pk")[:1])
        existing = current_holdout()
        if existing is not None:
            return existing
        by_individual: dict[int, list[tuple[int, str]]] = {}
        for pk, ind_id, cid in (
            Photo.objects.in_gallery()
            .filter(individual__merged_into__isnull=True)
            .order_by("pk")
            .values_list("pk", "individual_id", "individual__catalogue_id")
        ):
            by_individual.setdefault(ind_id, []).append((pk, cid))
        rng = random.Random(seed)
        multi = sorted(i for i, photos in by_individual.items() if len(photos) >= 2)
        single = sorted(i for i, photos in by_individual.items() if len(photos) == 1)
        rng.shuffle(multi)
        rng.shuffle(single)
        n_known = min(len(multi), max(HOLDOUT_MIN_KNOWN, round(len(multi) * HOLDOUT_FRACTION)))
        n_new = min(len(single), max(1, round(len(single) * HOLDOUT_NEW_FRACTION))) if single else 0
        items = []
        for ind_id in multi[:n_known]:
            pk, cid = rng.choice(by_individual[ind_id])
            items.append({"photo_id": pk, "individual_id": ind_id, "catalogue_id": cid, "new": False})
        for ind_id in single[:n_new]:
            pk, cid = by_individual[ind_id][0]
            items.append({"photo_id": pk, "individual_id": ind_id, "catalogue_id": cid, "new": True})
        items = sorted(items, key=lambda it: it["photo_id"])[:HOLDOUT_MAX]
        if not items:
            raise ValidationError("The gallery has no photos to hold out yet.")
        return HoldoutSet.objects.create(items=items, seed=seed)


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
    try:  # freeze the benchmark before the first run trains: photos chosen later were trained on
        get_or_create_holdout()
    except ValidationError:
        log.info("training export: no gallery photos to hold out yet")
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
    from ml.data import write_csv  # imports torch: not at import time, the web process never needs it

    write_csv(out_dir / "train.csv", ["Image", "Id"], labels)
    write_csv(out_dir / "boxes.csv", ["Image", "x0", "y0", "x1", "y1"], boxes)
    return {
        "photos": len(labels),
        "individuals": len({lab for _, lab in labels}),
        "boxes": len(boxes),
        "photo_ids": photo_ids,
    }
