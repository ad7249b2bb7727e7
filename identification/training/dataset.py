"""What the training set is, in one place: the photos a run trains on, the boxes it trusts, the
frozen holdout it never sees, and how a merged whale is followed to the one it was merged into.
The retrain (``runs.execute_run``) and the administrators' exports (``exports``) both read it.

Each species is trained and benchmarked on its own: its training set is its own whales' photos, minus
its own frozen holdout. ``species=None`` everywhere means the humpback (``default_species``), the only
species with a model before profiles.

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

from ..models import HoldoutSet, ModelVersion, Species, TrainingExample

log = logging.getLogger(__name__)


HOLDOUT_FRACTION = 0.2  # of the individuals with 2+ gallery photos: one photo each
HOLDOUT_MIN_KNOWN = 5
HOLDOUT_NEW_FRACTION = 0.2  # of the individuals with a single gallery photo (the "new whale" cases)
HOLDOUT_MAX = 1000


def default_species() -> Species | None:
    """The humpback: the retrain form's default, and the owner of rows written before profiles."""
    return (
        Species.objects.filter(code=Species.HUMPBACK_CODE).first()
        or Species.objects.filter(profile="humpback_fluke").order_by("pk").first()
    )


def species_or_default(species) -> Species | None:
    return species if species is not None else default_species()


def species_gallery(species):
    """``species``' gallery: the photos its model ranks a new photo against (``Photo.objects.in_catalogue_of``),
    so the holdout and its evaluation see the gallery the pipeline uses."""
    return Photo.objects.in_catalogue_of(species)


def current_holdout(species=None) -> HoldoutSet | None:
    """``species``' frozen holdout (the humpback's when None), or None before its first run or evaluation."""
    return HoldoutSet.objects.filter(species=species_or_default(species)).order_by("created_at", "pk").first()


def holdout_photo_ids(species=None) -> set[int]:
    holdout = current_holdout(species)
    return set(holdout.photo_ids) if holdout else set()


def all_holdout_photo_ids() -> set[int]:
    """Every species' held-out photos (the exports, which span species, leave them all out)."""
    return {int(item["photo_id"]) for items in HoldoutSet.objects.values_list("items", flat=True) for item in items}


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


def get_or_create_holdout(species=None, seed: int = 0) -> HoldoutSet:
    """``species``' frozen holdout set; created (once) from its current gallery when there is none."""
    species = species_or_default(species)
    with transaction.atomic():
        # one creator at a time: lock the species' row (or a fixed row of a table every site has)
        if species is not None:
            list(Species.objects.select_for_update().filter(pk=species.pk))
        else:
            list(ModelVersion.objects.select_for_update().order_by("pk")[:1])
        existing = current_holdout(species)
        if existing is not None:
            return existing
        by_individual: dict[int, list[tuple[int, str]]] = {}
        for pk, ind_id, cid in (
            species_gallery(species)
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
            raise ValidationError(f"The {species or 'humpback'} gallery has no photos to hold out yet.")
        return HoldoutSet.objects.create(items=items, seed=seed, species=species)


def _trainable(held: set[int]):
    """Usable training examples plus gallery photos, minus ``held`` and the examples an admin excluded."""
    example_photos = TrainingExample.objects.usable().values_list("photo_id", flat=True)
    return (
        Photo.objects.filter(Q(pk__in=example_photos) | Q(pk__in=Photo.objects.in_gallery().values("pk")))
        .filter(individual__isnull=False)
        .exclude(status=Photo.Status.REJECTED)
        .exclude(pk__in=held)  # the frozen benchmark is never trained on
        .exclude(training_example__status=TrainingExample.Status.EXCLUDED)  # an admin excluded it
        .select_related("individual")
        .order_by("pk")
    )


def training_queryset(species=None):
    """Photos a run for ``species`` (the humpback when None) trains on: its usable training examples plus
    its gallery photos, minus its frozen holdout and the examples an administrator excluded."""
    species = species_or_default(species)
    return (
        _trainable(holdout_photo_ids(species))
        .filter(individual__species=species)
        .filter(Q(species__isnull=True) | Q(species=species))
    )


def all_training_photos():
    """Every species' training sets together (the administrators' exports span species)."""
    return _trainable(all_holdout_photo_ids())


def export_dataset(out_dir: Path, species=None) -> dict:
    """Write ``species``' images, ``train.csv`` and ``boxes.csv`` for ``ml.train``. Returns a snapshot dict."""
    species = species_or_default(species)
    try:  # freeze the benchmark before the first run trains: photos chosen later were trained on
        get_or_create_holdout(species)
    except ValidationError:
        log.info("training export: no %s gallery photos to hold out yet", species)
    images = out_dir / "images"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    images.mkdir(parents=True)
    labels, boxes, photo_ids = [], [], []
    for photo in training_queryset(species):
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
        "species": species.common_name if species else "",
    }
