"""Comparing a photo with a candidate whale: the candidate's gallery photos in order of similarity,
the occlusion map that shows which parts of the fluke the model matched on, and the audit log."""

from __future__ import annotations

import hashlib
import io

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Q

from ml.explain import occlusion_map
from submissions.models import Photo

from ..models import Decision, Embedding, Suggestion
from ..permissions import REVIEW_PERMISSION, require
from ..pipeline import cache
from ..pipeline.cache import vector_from_bytes
from ..pipeline.process import read_image_bytes

CANDIDATE_POOL = 60  # newest gallery photos of a candidate that are ranked by similarity


def candidate_photos(photo, individual_id, best_photo_id=None, limit: int = 4) -> list:
    """Up to ``limit`` gallery photos of a candidate: the suggestion's best photo first, then by
    similarity to ``photo`` (when both are embedded by the photo's model version), else newest."""
    pool = list(
        Photo.objects.in_gallery()
        .filter(individual_id=individual_id)
        .exclude(pk=photo.pk)
        .order_by("-created_at", "-pk")[:CANDIDATE_POOL]
    )
    score = {}
    if photo.model_version_id and pool:
        rows = dict(
            Embedding.objects.filter(
                model_version_id=photo.model_version_id, photo_id__in=[photo.pk, *[p.pk for p in pool]]
            ).values_list("photo_id", "vector")
        )
        if photo.pk in rows:
            q = vector_from_bytes(rows.pop(photo.pk))
            score = {pid: float(q @ vector_from_bytes(v)) for pid, v in rows.items()}
    ordered = sorted(
        enumerate(pool),
        key=lambda ip: (ip[1].pk != best_photo_id, ip[1].pk not in score, -score.get(ip[1].pk, 0.0), ip[0]),
    )
    out = [p for _, p in ordered[:limit]]
    for p in out:
        p.similarity = score.get(p.pk)
    return out


def _model_crop(ident, photo):
    """The photo's crop exactly as the pipeline makes it (stored box unless it was the default)."""
    image = ident.open(read_image_bytes(photo))  # the same grayscale decode as the pipeline
    box = photo.box if photo.box is not None and photo.box_source != Photo.BoxSource.DEFAULT else None
    return ident.prepare(image, box=box, upside_down=photo.upside_down if box is not None else None).crop


def explain_png(*, photo, individual, user) -> bytes:
    """``ml.explain.occlusion_map`` of the query crop against the candidate's best photo, with the
    process's cached Identifier of the active model; the PNG is cached in storage."""
    require(user, REVIEW_PERMISSION)
    version = cache.active_version(individual.species)
    if version is None:
        raise ValidationError(f"No identification model of {individual.species} is active.")
    best = (
        Suggestion.objects.filter(photo=photo, individual=individual, best_photo__isnull=False)
        .order_by("-model_version__is_active", "rank")
        .first()
    )
    reference = best.best_photo if best else None
    if reference is None or reference.individual_id != individual.pk:
        found = candidate_photos(photo, individual.pk, limit=1)
        reference = found[0] if found else None
    if reference is None:
        raise ValidationError("This individual has no gallery photo to compare with.")
    boxes = (
        f"{photo.box}{photo.box_source}{photo.upside_down}|{reference.box}{reference.box_source}{reference.upside_down}"
    )
    key = f"explain/{version.pk}/{photo.pk}-{reference.pk}-{hashlib.sha1(boxes.encode()).hexdigest()[:12]}.png"
    if default_storage.exists(key):
        with default_storage.open(key, "rb") as fh:
            return fh.read()
    ident = cache.identifier(version)
    occlusion = occlusion_map(ident, _model_crop(ident, photo), _model_crop(ident, reference))
    buf = io.BytesIO()
    occlusion.overlay.save(buf, "PNG")
    data = buf.getvalue()
    default_storage.save(key, ContentFile(data))
    return data


def audit_log(*, photo=None, individual=None):
    """Decisions about a photo or an individual (incl. merges into or out of it), newest first."""
    qs = Decision.objects.select_related("moderator", "individual", "model_version", "photo")
    if photo is not None:
        return qs.filter(photo=photo)
    ids = [individual.pk, *individual.merged.values_list("pk", flat=True)]
    return qs.filter(
        Q(individual_id__in=ids) | Q(photo__individual_id__in=ids) | Q(details__source_id=individual.pk)
    ).distinct()
