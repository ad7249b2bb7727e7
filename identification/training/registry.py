"""Model registry: the frozen holdout ("benchmark") set, evaluating any version on it, the
registry pages' numbers, and promoting or rolling back a model version.

Each species has its own models and its own frozen holdout: a version is scored on its species' holdout,
compared only with its species' active version, and promotion or rollback touches only its species.

Holdout: created once (``training.dataset.get_or_create_holdout``, before the first training export or
evaluation) from the gallery with a fixed seed and then never changed; its photos are left out of every
training export, so every version is compared on photos none of them trained on (versions trained
before this rule may have seen some: the registry shows that overlap as "leaked").

Evaluation (``evaluate_on_holdout``): gallery = gallery photos not in the holdout, embedded with
the version (stored ``Embedding`` rows are reused; missing ones are computed and stored, which
also prepares a later promotion); each holdout photo is ranked with ``GalleryIndex.rank`` and
the version's new-individual threshold; truth is the photo's individual, or ``new_whale`` when
its whale has no other gallery photo; scored with ``ml.evaluate.evaluate_rankings``.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q

from ml.evaluate import bootstrap_intervals, evaluate_rankings
from ml.types import NEW_WHALE
from submissions.models import Photo

from .. import jobs
from ..models import (
    Decision,
    Embedding,
    HoldoutEvaluation,
    Individual,
    ModelVersion,
    Species,
    TrainingExample,
    TrainingRun,
)
from ..permissions import MANAGE_MODELS_PERMISSION, require
from ..pipeline import cache
from ..pipeline.cache import vector_from_bytes
from ..pipeline.process import embed_photo, embedding_fields, local_features
from .dataset import current_holdout, get_or_create_holdout, resolve_merged_id, species_gallery, species_or_default

log = logging.getLogger(__name__)

METRIC_KEYS = ("map5", "top1", "top5", "new_precision", "new_recall")


def _embed_photos(photos, version, ident) -> dict[int, np.ndarray]:
    """Vectors of ``photos`` under ``version``: stored embeddings, else computed (and stored)."""
    ids = [p.pk for p in photos]
    vectors = {
        pid: vector_from_bytes(v)
        for pid, v in Embedding.objects.filter(model_version=version, photo_id__in=ids).values_list(
            "photo_id", "vector"
        )
    }
    for photo in photos:
        if photo.pk in vectors:
            continue
        try:
            vector, prepared = embed_photo(photo, version, ident)
        except Exception as exc:  # an unreadable file is left out, not fatal
            log.warning("holdout evaluation: cannot embed photo %s: %s", photo.pk, exc)
            continue
        # with its RootSIFT features, as the pipeline stores them: reembed skips photos already embedded
        Embedding.objects.update_or_create(
            photo=photo,
            model_version=version,
            defaults=embedding_fields(
                vector, local_features(ident, prepared), ident.familiarity(vector, prepared.crop)
            ),
        )
        vectors[photo.pk] = vector
    return vectors


def _features(version, photo_ids) -> dict[int, object]:
    """Stored ``ml.local_features.LocalFeatures`` of ``photo_ids`` under ``version`` (one query)."""
    from ml.local_features import LocalFeatures

    rows = Embedding.objects.filter(model_version=version, photo_id__in=list(photo_ids), features__isnull=False)
    return {pid: LocalFeatures.from_bytes(bytes(b)) for pid, b in rows.values_list("photo_id", "features")}


def _ranker(version, ident, labels: dict[int, str], query_ids):
    """``rank(index, photo_id, vector) -> [label]``: the fused, calibrated ranking when the version has a
    calibration (as the pipeline ranks), else cosine with the version's threshold."""
    calibration = getattr(ident, "calibration", None)

    def by_cosine(index, pid, vector):
        return [m.label for m in index.rank(vector, k=5, new_threshold=version.new_threshold)]

    if calibration is None:
        return by_cosine
    from ml.fused_ranking import suggest

    feats = _features(version, [*labels, *query_ids])
    by_label: dict[str, list] = {}
    for pid, label in labels.items():
        if pid in feats:
            by_label.setdefault(label, []).append((str(pid), feats[pid]))

    def fused(index, pid, vector):
        return [
            s.label
            for s in suggest(
                index,
                vector,
                calibration,
                feats.get(pid),
                k=5,
                features_for=lambda ls: {lab: by_label.get(lab, []) for lab in ls},
                matching=ident.profile.local_matching,
            )
        ]

    return fused


def evaluate_on_holdout(version: ModelVersion) -> HoldoutEvaluation:
    """Score ``version`` on its species' frozen holdout set against that species' gallery; the result is
    stored (one row per version and holdout)."""
    from ml.gallery import GalleryIndex  # loads torch

    started = time.monotonic()
    species = species_or_default(version.species)
    holdout = get_or_create_holdout(species)
    held = holdout.photo_ids
    merged = dict(Individual.objects.filter(merged_into__isnull=False).values_list("pk", "merged_into_id"))
    ident = cache.identifier(version)
    gallery = species_gallery(species).exclude(pk__in=held)
    gallery_photos = list(gallery.select_related("sighting").order_by("pk"))
    held_photos = list(Photo.objects.filter(pk__in=held).select_related("sighting").order_by("pk"))
    gallery_vectors = _embed_photos(gallery_photos, version, ident)
    query_vectors = _embed_photos(held_photos, version, ident)
    labels = {p.pk: str(resolve_merged_id(p.individual_id, merged)) for p in gallery_photos if p.pk in gallery_vectors}
    index = None
    if labels:
        ids = sorted(labels)
        index = GalleryIndex(len(next(iter(gallery_vectors.values()))))
        index.add([str(i) for i in ids], [labels[i] for i in ids], np.stack([gallery_vectors[i] for i in ids]))
    known_labels = set(labels.values())
    rank = _ranker(version, ident, labels, query_vectors)
    truth, predictions = [], []
    for item in holdout.items:
        vector = query_vectors.get(int(item["photo_id"]))
        if vector is None:
            continue
        label = str(resolve_merged_id(int(item["individual_id"]), merged))
        truth.append(NEW_WHALE if item.get("new") or label not in known_labels else label)
        ranked = (rank(index, int(item["photo_id"]), vector) if index is not None else [])[:5] or [NEW_WHALE]
        predictions.append(ranked)
    if not truth:
        raise ValidationError("No holdout photo could be embedded.")
    metrics = {
        k: float(v) if isinstance(v, (float, np.floating)) else v
        for k, v in evaluate_rankings(truth, predictions).items()
    }
    metrics["new_cases"] = sum(1 for t in truth if t == NEW_WHALE)
    metrics["intervals"] = bootstrap_intervals(truth, predictions)  # how much of a difference is noise
    evaluation, _ = HoldoutEvaluation.objects.update_or_create(
        holdout=holdout,
        model_version=version,
        defaults={"metrics": metrics, "gallery_size": len(labels), "seconds": round(time.monotonic() - started, 2)},
    )
    return evaluation


def queue_holdout_evaluation(version: ModelVersion, user=None) -> None:
    """Evaluate ``version`` in the pipeline queue (after the current transaction commits)."""
    if user is not None:
        require(user, MANAGE_MODELS_PERMISSION)
    jobs.enqueue(jobs.EVALUATE_HOLDOUT, version.pk)


def _evaluation(version, holdout):
    if version is None or holdout is None:
        return None
    return HoldoutEvaluation.objects.filter(model_version=version, holdout=holdout).first()


def _rows(versions, holdout) -> list[dict]:
    evaluations = {}
    if holdout is not None:
        evaluations = {e.model_version_id: e for e in HoldoutEvaluation.objects.filter(holdout=holdout)}
    rows = []
    for v in versions.select_related("promoted_by"):
        snap = v.training_snapshot or {}
        ev = evaluations.get(v.pk)
        rows.append(
            {
                "version": v,
                "photos": snap.get("photos"),
                "individuals": snap.get("individuals"),
                "kind": snap.get("kind", "identifier"),
                "holdout": ev.metrics if ev else None,
            }
        )
    return rows


def registry_rows(species=None) -> list[dict]:
    """``species``' versions (the humpback's when None), each with its score on the species' holdout."""
    species = species_or_default(species)
    return _rows(ModelVersion.objects.of_species(species), current_holdout(species))


def registry_species() -> list[Species]:
    """The species the registry and dashboard show: every identifiable one (with a model or not yet) and
    any other that has versions; the humpback first."""
    with_versions = ModelVersion.objects.exclude(species__isnull=True).values("species")
    listed = list(Species.objects.filter(Q(profile__gt="") | Q(pk__in=with_versions)).order_by("common_name"))
    humpback = species_or_default(None)
    return sorted(listed, key=lambda sp: (humpback is None or sp.pk != humpback.pk, sp.common_name))


def _group(species, versions, holdout) -> dict:
    rows = _rows(versions, holdout)
    active = next((r["version"] for r in rows if r["version"].is_active), None)
    return {"species": species, "active": active, "holdout": holdout, "rows": rows}


def registry_groups() -> list[dict]:
    """Per species: its active version, its frozen holdout (size) and its versions with their holdout scores.
    Versions that record no species (none should: migration 0015 gave the old ones the humpback) are listed
    last on their own, never hidden and never compared with a species' models."""
    groups = [_group(sp, ModelVersion.objects.of_species(sp), current_holdout(sp)) for sp in registry_species()]
    orphans = ModelVersion.objects.filter(species__isnull=True)
    if orphans.exists():
        groups.append(_group(None, orphans, None))
    return groups


def _interval(evaluation, key):
    return ((evaluation.metrics or {}).get("intervals") or {}).get(key) if evaluation else None


def within_noise(a, b) -> bool:
    """Two holdout scores whose 95% bootstrap intervals overlap: the difference may be noise."""
    return bool(a and b and a[0] <= b[1] and b[0] <= a[1])


def version_detail(version: ModelVersion) -> dict:
    """Everything the detail page shows: snapshot, config, holdout metrics beside its species' active
    version's (like with like: the same species, the same holdout) with deltas, the training run, who
    promoted it."""
    holdout = current_holdout(version.species)
    active = ModelVersion.objects.active_for(version.species).first()
    mine = _evaluation(version, holdout)
    theirs = _evaluation(active, holdout) if active and active.pk != version.pk else None
    comparison = []
    for key, label in (
        ("map5", "MAP@5"),
        ("top1", "Top-1"),
        ("top5", "Top-5"),
        ("new_precision", "New-individual precision"),
        ("new_recall", "New-individual recall"),
    ):
        a = (mine.metrics or {}).get(key) if mine else None
        b = (theirs.metrics or {}).get(key) if theirs else None
        delta = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        mine_ci, their_ci = _interval(mine, key), _interval(theirs, key)
        comparison.append(
            {
                "key": key,
                "label": label,
                "value": a,
                "active": b,
                "delta": delta,
                "interval": mine_ci,
                "active_interval": their_ci,
                "within_noise": delta is not None and within_noise(mine_ci, their_ci),
            }
        )
    snap = dict(version.training_snapshot or {})
    photo_ids = list(snap.pop("photo_ids", []) or [])
    held = set(holdout.photo_ids) if holdout else set()
    run = TrainingRun.objects.filter(model_version=version).select_related("started_by").first()
    return {
        "version": version,
        "species": version.species,
        "active": active,
        "is_active": version.is_active,
        "holdout": holdout,
        "evaluation": mine,
        "active_evaluation": theirs,
        "comparison": comparison,
        "snapshot": snap,
        "photo_ids": photo_ids,
        "leaked": sorted(held & set(photo_ids)),
        "config": sorted((version.config or {}).items()),
        "training_metrics": {k: (version.metrics or {}).get(k) for k in METRIC_KEYS},
        "localizer_metrics": (version.metrics or {}).get("localizer_retrain"),
        "run": run,
    }


def promote_model_version(*, version, user) -> ModelVersion:
    """Embed the gallery with ``version`` (in the pipeline queue), then switch to it atomically."""
    require(user, MANAGE_MODELS_PERMISSION)
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if locked.is_active:
            raise ValidationError("This model version is already active.")
        locked.promoted_by = user
        locked.save(update_fields=["promoted_by"])
        jobs.enqueue(jobs.REEMBED_GALLERY, locked.pk)
    version.refresh_from_db()
    return version


def rollback_model(*, user, species=None) -> ModelVersion:
    """Re-activate ``species``' version (the humpback's when None) promoted before its active one."""
    require(user, MANAGE_MODELS_PERMISSION)
    species = species_or_default(species)
    active = ModelVersion.objects.active_for(species).first()
    previous = (
        ModelVersion.objects.of_species(species)
        .filter(promoted_at__isnull=False)
        .exclude(pk=getattr(active, "pk", None))
    )
    if active is not None and active.promoted_at is not None:
        previous = previous.filter(promoted_at__lt=active.promoted_at)
    previous = previous.order_by("-promoted_at").first()
    if previous is None:
        of = f" of the {species}" if species else ""
        raise ValidationError(f"There is no earlier model version{of} to roll back to.")
    return promote_model_version(version=previous, user=user)


def dashboard_summary() -> dict:
    photos = Photo.objects
    return {
        "active_version": ModelVersion.objects.active_for(species_or_default(None)).first(),  # the humpback's
        "versions": list(ModelVersion.objects.all()[:20]),
        "queued_examples": TrainingExample.objects.queued().count(),
        "usable_examples": TrainingExample.objects.usable().count(),
        "gallery_photos": photos.in_gallery().count(),
        "individuals": Individual.objects.active().count(),
        "awaiting_review": photos.awaiting_review().count(),
        "processing": photos.pending().count(),
        "failed": photos.failed().count(),
        "stuck": photos.stuck().count(),
        "runs": list(TrainingRun.objects.select_related("model_version", "started_by")[:20]),
        "current_run": TrainingRun.objects.in_progress().first(),
        "last_decision_at": Decision.objects.aggregate(t=Max("created_at"))["t"],
    }
