"""Model registry: the frozen holdout ("benchmark") set, evaluating any version on it, the
registry pages' numbers, and retraining the localizer from moderator-corrected boxes.

Holdout: created once (the first evaluation) from the gallery with a fixed seed and then never
changed; its photos are left out of every training export (``identification.training``), so
every version is compared on photos none of them trained on (versions trained before the
holdout existed may have seen some: the registry shows that overlap as "leaked").

Evaluation (``evaluate_on_holdout``): gallery = gallery photos not in the holdout, embedded with
the version (stored ``Embedding`` rows are reused; missing ones are computed and stored, which
also prepares a later promotion); each holdout photo is ranked with ``GalleryIndex.rank`` and
the version's new-individual threshold; truth is the photo's individual, or ``new_whale`` when
its whale has no other gallery photo; scored with ``ml.evaluate.evaluate_rankings``.
"""
from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ml.images import load_image
from submissions.models import Photo

from . import jobs
from .models import HoldoutEvaluation, HoldoutSet, ModelVersion, TrainingRun

from .pipeline import cache
from .pipeline.cache import vector_from_bytes
from .pipeline.process import embed_photo, read_image_bytes

log = logging.getLogger(__name__)

MANAGE_MODELS_PERMISSION = "identification.manage_models"
METRIC_KEYS = ("map5", "top1", "top5", "new_precision", "new_recall")
HOLDOUT_FRACTION = 0.2  # of the individuals with 2+ gallery photos: one photo each
HOLDOUT_MIN_KNOWN = 5
HOLDOUT_NEW_FRACTION = 0.2  # of the individuals with a single gallery photo (the "new whale" cases)
HOLDOUT_MAX = 1000
LOCALIZER_VAL_FRACTION = 0.2


def _require(user) -> None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.has_perm(MANAGE_MODELS_PERMISSION):
        raise PermissionDenied("You do not have permission to do this.")


# --------------------------------------------------------------------------- holdout


def current_holdout() -> HoldoutSet | None:
    return HoldoutSet.objects.order_by("created_at", "pk").first()


def holdout_photo_ids() -> set[int]:
    holdout = current_holdout()
    return set(holdout.photo_ids) if holdout else set()


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
            Photo.objects.in_gallery().filter(individual__merged_into__isnull=True)
            .order_by("pk").values_list("pk", "individual_id", "individual__catalogue_id")
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


def _resolve(individual_id: int, merged: dict[int, int]) -> int:
    seen = set()
    while individual_id in merged and individual_id not in seen:
        seen.add(individual_id)
        individual_id = merged[individual_id]
    return individual_id


def _embed_photos(photos, version, ident) -> dict[int, np.ndarray]:
    """Vectors of ``photos`` under ``version``: stored embeddings, else computed (and stored)."""
    from .models import Embedding

    ids = [p.pk for p in photos]
    vectors = {
        pid: vector_from_bytes(v)
        for pid, v in Embedding.objects.filter(model_version=version, photo_id__in=ids).values_list("photo_id", "vector")
    }
    for photo in photos:
        if photo.pk in vectors:
            continue
        try:
            vector, _ = embed_photo(photo, version, ident)
        except Exception as exc:  # an unreadable file is left out, not fatal
            log.warning("holdout evaluation: cannot embed photo %s: %s", photo.pk, exc)
            continue
        Embedding.objects.update_or_create(
            photo=photo, model_version=version, defaults={"vector": np.ascontiguousarray(vector).tobytes()}
        )
        vectors[photo.pk] = vector
    return vectors


def evaluate_on_holdout(version: ModelVersion) -> HoldoutEvaluation:
    """Score ``version`` on the frozen holdout set; the result is stored (one row per version)."""
    from ml.evaluate import evaluate_rankings
    from ml.gallery import GalleryIndex
    from ml.types import NEW_WHALE

    from .models import Individual

    started = time.monotonic()
    holdout = get_or_create_holdout()
    held = holdout.photo_ids
    merged = dict(Individual.objects.filter(merged_into__isnull=False).values_list("pk", "merged_into_id"))
    ident = cache.identifier(version)
    gallery_photos = list(Photo.objects.in_gallery().exclude(pk__in=held).select_related("sighting").order_by("pk"))
    held_photos = list(Photo.objects.filter(pk__in=held).select_related("sighting").order_by("pk"))
    gallery_vectors = _embed_photos(gallery_photos, version, ident)
    query_vectors = _embed_photos(held_photos, version, ident)
    labels = {p.pk: str(_resolve(p.individual_id, merged)) for p in gallery_photos if p.pk in gallery_vectors}
    index = None
    if labels:
        ids = sorted(labels)
        index = GalleryIndex(len(next(iter(gallery_vectors.values()))))
        index.add([str(i) for i in ids], [labels[i] for i in ids], np.stack([gallery_vectors[i] for i in ids]))
    known_labels = set(labels.values())
    truth, predictions = [], []
    for item in holdout.items:
        vector = query_vectors.get(int(item["photo_id"]))
        if vector is None:
            continue
        label = str(_resolve(int(item["individual_id"]), merged))
        truth.append(NEW_WHALE if item.get("new") or label not in known_labels else label)
        matches = index.rank(vector, k=5, new_threshold=version.new_threshold) if index is not None else []
        ranked = [m.label for m in matches][:5] or [NEW_WHALE]
        predictions.append(ranked)
    if not truth:
        raise ValidationError("No holdout photo could be embedded.")
    metrics = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in evaluate_rankings(truth, predictions).items()}
    metrics["new_cases"] = sum(1 for t in truth if t == NEW_WHALE)
    evaluation, _ = HoldoutEvaluation.objects.update_or_create(
        holdout=holdout, model_version=version,
        defaults={"metrics": metrics, "gallery_size": len(labels), "seconds": round(time.monotonic() - started, 2)},
    )
    return evaluation


def queue_holdout_evaluation(version: ModelVersion, user=None) -> None:
    """Evaluate ``version`` in the pipeline queue (after the current transaction commits)."""
    if user is not None:
        _require(user)
    jobs.enqueue(jobs.EVALUATE_HOLDOUT, version.pk)


# --------------------------------------------------------------------------- registry pages


def _evaluation(version, holdout):
    if version is None or holdout is None:
        return None
    return HoldoutEvaluation.objects.filter(model_version=version, holdout=holdout).first()


def registry_rows() -> list[dict]:
    holdout = current_holdout()
    evaluations = {}
    if holdout is not None:
        evaluations = {e.model_version_id: e for e in HoldoutEvaluation.objects.filter(holdout=holdout)}
    rows = []
    for v in ModelVersion.objects.select_related("promoted_by").all():
        snap = v.training_snapshot or {}
        ev = evaluations.get(v.pk)
        rows.append({
            "version": v, "photos": snap.get("photos"), "individuals": snap.get("individuals"),
            "kind": snap.get("kind", "identifier"), "holdout": ev.metrics if ev else None,
        })
    return rows


def version_detail(version: ModelVersion) -> dict:
    """Everything the detail page shows: snapshot, config, holdout metrics beside the active
    version's with deltas, the training run, who promoted it."""
    holdout = current_holdout()
    active = ModelVersion.objects.active().first()
    mine = _evaluation(version, holdout)
    theirs = _evaluation(active, holdout) if active and active.pk != version.pk else None
    comparison = []
    for key, label in (("map5", "MAP@5"), ("top1", "Top-1"), ("top5", "Top-5"),
                       ("new_precision", "New-individual precision"), ("new_recall", "New-individual recall")):
        a = (mine.metrics or {}).get(key) if mine else None
        b = (theirs.metrics or {}).get(key) if theirs else None
        delta = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        comparison.append({"key": key, "label": label, "value": a, "active": b, "delta": delta})
    snap = dict(version.training_snapshot or {})
    photo_ids = list(snap.pop("photo_ids", []) or [])
    held = set(holdout.photo_ids) if holdout else set()
    run = TrainingRun.objects.filter(model_version=version).select_related("started_by").first()
    return {
        "version": version, "active": active, "is_active": version.is_active,
        "holdout": holdout, "evaluation": mine, "active_evaluation": theirs, "comparison": comparison,
        "snapshot": snap, "photo_ids": photo_ids, "leaked": sorted(held & set(photo_ids)),
        "config": sorted((version.config or {}).items()),
        "training_metrics": {k: (version.metrics or {}).get(k) for k in METRIC_KEYS},
        "localizer_metrics": (version.metrics or {}).get("localizer_retrain"),
        "run": run,
    }


# --------------------------------------------------------------------------- localizer retraining


def localizer_training_photos():
    """Photos with a trusted box: corrected by a moderator, or given with the photo."""
    corrected = Photo.objects.with_corrected_boxes() if hasattr(Photo.objects, "with_corrected_boxes") else (
        Photo.objects.filter(box_source=Photo.BoxSource.MODERATOR, box_x0__isnull=False))
    given = Photo.objects.filter(box_source=Photo.BoxSource.GIVEN, box_x0__isnull=False)
    return (corrected | given).exclude(status=Photo.Status.REJECTED).distinct().order_by("pk")


def start_localizer_retrain(*, user, epochs: int = 30) -> TrainingRun:
    """A training-queue run (``TrainingRun`` with ``options.kind == "localizer"``)."""
    _require(user)
    if ModelVersion.objects.active().first() is None:
        raise ValidationError("Promote a model first: the new localizer is added to a copy of the active model.")
    n = localizer_training_photos().count()
    if n < 3:
        raise ValidationError(f"At least 3 photos with corrected or given boxes are needed ({n} so far).")
    with transaction.atomic():
        if TrainingRun.objects.select_for_update().in_progress().exists():
            raise ValidationError("A training run is already queued or running; wait for it to finish.")
        run = TrainingRun.objects.create(options={"kind": "localizer", "epochs": int(epochs)}, started_by=user)
        jobs.enqueue(jobs.RETRAIN_LOCALIZER, run.pk)
    return run


def _load_photo_image(photo):
    return load_image(read_image_bytes(photo))


def execute_localizer_retrain(run_id: int) -> str:
    """The body of the ``retrain_localizer`` task: train on the trusted boxes, compare IoU on the
    same validation photos before (current localizer, default box) and after, and register a copy
    of the active model folder with the new ``localizer.pt`` as an inactive version."""
    import traceback

    from ml.localizer import Localizer, evaluate_localizer, train_localizer

    from .training import _RunReporter

    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        return "gone"
    if run.status != TrainingRun.Status.QUEUED:
        return "done"
    if run.cancel_requested:
        TrainingRun.objects.filter(pk=run_id).update(status=TrainingRun.Status.CANCELLED, finished_at=timezone.now())
        return "cancelled"
    TrainingRun.objects.filter(pk=run_id).update(status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    reporter = _RunReporter(run_id)
    try:
        active = ModelVersion.objects.active().first()
        if active is None:
            raise ValueError("No active model version to add the localizer to.")
        images, boxes, ids = [], [], []
        for photo in localizer_training_photos():
            try:
                images.append(_load_photo_image(photo))
            except Exception as exc:
                reporter.log(f"Photo {photo.pk} skipped: {exc}")
                continue
            boxes.append(photo.box)
            ids.append(photo.pk)
        if len(images) < 3:
            raise ValueError(f"Only {len(images)} readable photos with trusted boxes; at least 3 are needed.")
        order = list(range(len(images)))
        random.Random(0).shuffle(order)
        n_val = max(1, round(len(images) * LOCALIZER_VAL_FRACTION))
        val, train = sorted(order[:n_val]), sorted(order[n_val:])
        reporter.log(f"Training the localizer on {len(train)} photos, validating on {len(val)}.")
        opts = run.options or {}
        new, train_metrics = train_localizer(
            [images[i] for i in train], [boxes[i] for i in train], epochs=int(opts.get("epochs") or 30),
            val_fraction=0.0, device=settings.ML_DEVICE or "cpu",
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
            "n_train": len(train), "n_val": len(val), "base_version": active.name,
            "val_photo_ids": [ids[i] for i in val], "seconds": train_metrics.get("seconds"),
        }
        new.metrics = {**train_metrics, **metrics}
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
                training_snapshot={"kind": "localizer", "photos": len(ids), "photo_ids": ids,
                                   "individuals": None, "boxes": len(ids), "base_version": active.name},
                new_threshold=active.new_threshold,
            )
            TrainingRun.objects.filter(pk=run_id).update(
                status=TrainingRun.Status.SUCCEEDED, model_version=version, metrics=metrics,
                finished_at=timezone.now(),
            )
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        reporter.log(f"IoU before: current localizer {fmt(before_current)}, default box "
                     f"{fmt(metrics['iou_before_default'])}; after {fmt(metrics['iou_after'])}. "
                     f"Created inactive version {version.name}.")
        return "succeeded"
    except Exception as exc:
        log.exception("localizer retraining %s failed", run_id)
        reporter.log(f"Failed: {type(exc).__name__}: {exc}")
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=5)}",
            finished_at=timezone.now(),
        )
        return "failed"
