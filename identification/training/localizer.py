"""Retraining the localizer from the boxes moderators corrected (and boxes given with photos): a run on
the training queue that adds the new ``localizer.pt`` to a copy of the active model folder, registered
as an inactive version with the IoU before and after on the same validation photos. Per species, and
only for a species whose profile localizes a fluke (``SpeciesProfile.localizer == "fluke"``): the others
crop the full frame."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from ml.images import load_image
from ml.profiles import get_profile
from submissions.models import Photo

from .. import jobs
from ..models import ModelVersion, TrainingRun
from ..permissions import MANAGE_MODELS_PERMISSION, require
from ..pipeline import cache
from ..pipeline.process import read_image_bytes
from .dataset import species_or_default
from .runs import claim_run, finish_run, run_lifecycle

LOCALIZER_VAL_FRACTION = 0.2
LOCALIZER_MIN_PHOTOS = 3
LOCALIZER_EPOCHS = 30


def localizer_training_photos(species=None):
    """``species``' photos (the humpback's when None; a photo of unknown species counts by its sighting)
    with a trusted box: corrected by a moderator, or given with the photo."""
    species = species_or_default(species)
    corrected = Photo.objects.with_corrected_boxes()
    given = Photo.objects.filter(box_source=Photo.BoxSource.GIVEN, box_x0__isnull=False)
    mine = Q(species=species) | Q(species__isnull=True, sighting__species=species)
    return (corrected | given).filter(mine).exclude(status=Photo.Status.REJECTED).distinct().order_by("pk")


def has_fluke_localizer(species) -> bool:
    """Whether ``species``' profile localizes (a fluke); full-frame profiles have no localizer to retrain."""
    return species is not None and bool(species.profile) and get_profile(species.profile).localizer == "fluke"


def start_localizer_retrain(*, user, species=None, epochs: int = LOCALIZER_EPOCHS) -> TrainingRun:
    """A training-queue run (``TrainingRun`` with ``options.kind == "localizer"``) for ``species``."""
    require(user, MANAGE_MODELS_PERMISSION)
    species = species_or_default(species)
    if not has_fluke_localizer(species):
        raise ValidationError(f"{species or 'This species'} is cropped from the full frame: it has no localizer.")
    if ModelVersion.objects.active_for(species).first() is None:
        raise ValidationError(
            f"Promote a {species} model first: the new localizer is added to a copy of its active model."
        )
    n = localizer_training_photos(species).count()
    if n < LOCALIZER_MIN_PHOTOS:
        raise ValidationError(
            f"At least {LOCALIZER_MIN_PHOTOS} photos with corrected or given boxes are needed ({n} so far)."
        )
    with transaction.atomic():
        if TrainingRun.objects.select_for_update().in_progress().exists():
            raise ValidationError("A training run is already queued or running; wait for it to finish.")
        run = TrainingRun.objects.create(
            options={"kind": "localizer", "epochs": int(epochs)}, started_by=user, species=species
        )
        jobs.enqueue(jobs.RETRAIN_LOCALIZER, run.pk)
    return run


def _load_photo_image(photo):
    return load_image(read_image_bytes(photo))


def _trusted_examples(reporter, species):
    """(images, boxes, photo ids) of ``species``' readable photos with a trusted box."""
    images, boxes, ids = [], [], []
    for photo in localizer_training_photos(species):
        try:
            images.append(_load_photo_image(photo))
        except Exception as exc:
            reporter.log(f"Photo {photo.pk} skipped: {exc}")
            continue
        boxes.append(photo.box)
        ids.append(photo.pk)
    if len(images) < LOCALIZER_MIN_PHOTOS:
        raise ValueError(
            f"Only {len(images)} readable photos with trusted boxes; at least {LOCALIZER_MIN_PHOTOS} are needed."
        )
    return images, boxes, ids


def execute_localizer_retrain(run_id: int) -> str:
    """The body of the ``retrain_localizer`` task: train on the trusted boxes, compare IoU on the
    same validation photos before (current localizer, default box) and after, and register a copy
    of the active model folder with the new ``localizer.pt`` as an inactive version."""
    run, why_not = claim_run(run_id, restart_running=False, exclusive=False)
    if run is None:
        return why_not
    with run_lifecycle(run, what="localizer retraining") as life:
        species = species_or_default(run.species)
        active = ModelVersion.objects.active_for(species).first()
        if active is None:
            raise ValueError(f"No active {species or ''} model version to add the localizer to.")
        images, boxes, ids = _trusted_examples(life.reporter, species)
        new, metrics = _train_and_compare(run, active, images, boxes, ids, life.reporter)
        version = _register_localizer(run, active, new, metrics, ids)
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        life.reporter.log(
            f"IoU before: current localizer {fmt(metrics['iou_before_current'])}, default box "
            f"{fmt(metrics['iou_before_default'])}; after {fmt(metrics['iou_after'])}. "
            f"Created inactive version {version.name}."
        )
    return life.outcome or "succeeded"


def _train_and_compare(run, active, images, boxes, ids, reporter):
    """Train a localizer on a fixed split and score it, the active one and the default box on the
    validation photos. Returns (Localizer, metrics)."""
    from ml.localizer import Localizer, evaluate_localizer, train_localizer  # loads torch

    order = list(range(len(images)))
    random.Random(0).shuffle(order)
    n_val = max(1, round(len(images) * LOCALIZER_VAL_FRACTION))
    val, train = sorted(order[:n_val]), sorted(order[n_val:])
    reporter.log(f"Training the localizer on {len(train)} photos, validating on {len(val)}.")
    opts = run.options or {}
    new, train_metrics = train_localizer(
        [images[i] for i in train],
        [boxes[i] for i in train],
        epochs=int(opts.get("epochs") or LOCALIZER_EPOCHS),
        val_fraction=0.0,
        device=settings.ML_DEVICE or "cpu",
        max_steps=int(opts["max_steps"]) if opts.get("max_steps") else None,
        progress=reporter.progress,
    )
    val_images, val_boxes = [images[i] for i in val], [boxes[i] for i in val]
    after = evaluate_localizer(new, val_images, val_boxes)
    old_path = cache.model_dir(active) / "localizer.pt"
    before_current = None
    if old_path.is_file():
        before_current = evaluate_localizer(Localizer.load(old_path), val_images, val_boxes)["val_iou_mean"]
    metrics = {
        "iou_before_current": before_current,
        "iou_before_default": after["iou_default_mean"],
        "iou_after": after["val_iou_mean"],
        "upside_accuracy_after": after["val_upside_accuracy"],
        "n_train": len(train),
        "n_val": len(val),
        "base_version": active.name,
        "val_photo_ids": [ids[i] for i in val],
        "seconds": train_metrics.get("seconds"),
    }
    new.metrics = {**train_metrics, **metrics}
    return new, metrics


def _register_localizer(run, active, new, metrics, ids) -> ModelVersion:
    """Copy the active model folder with the new ``localizer.pt`` and register it, inactive."""
    run_id, opts = run.pk, run.options or {}
    out_dir = Path(settings.ML_ROOT) / "models" / f"localizer-run-{run_id}"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(cache.model_dir(active), out_dir, ignore=shutil.ignore_patterns("localizer.pt"))
    new.save(out_dir / "localizer.pt")
    with transaction.atomic():
        version = ModelVersion.objects.create(
            name=f"{active.name[:40]}+loc{run_id}",
            artifact_dir=str(out_dir.relative_to(Path(settings.ML_ROOT))),
            config={**(active.config or {}), "localizer": {"epochs": opts.get("epochs"), "base_version": active.name}},
            metrics={**(active.metrics or {}), "localizer_retrain": metrics},
            history=active.history,
            training_snapshot={
                "kind": "localizer",
                "photos": len(ids),
                "photo_ids": ids,
                "individuals": None,
                "boxes": len(ids),
                "base_version": active.name,
            },
            new_threshold=active.new_threshold,
            species=active.species,
        )
        finish_run(run_id, version, metrics)
    return version
