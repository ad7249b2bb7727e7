"""The body of ``reembed_gallery``: embed every gallery photo with a model version, then (when
promoting) make it the active one and queue the photos that waited for it."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from submissions.models import Photo

from .. import jobs
from ..errors import TRANSIENT_ERRORS
from ..models import Embedding, ModelVersion
from . import cache
from .gallery_sync import gallery
from .process import crop_png, embed_photo, embedding_fields, local_features, replace_crop

log = logging.getLogger(__name__)


def reembed_gallery(version_id: int, promote: bool = True) -> str:
    """Embed every gallery photo with ``version``, then (when ``promote``) make it the active one."""
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        return "gone"
    ident = cache.identifier(version)
    failed = []
    todo = list(
        Photo.objects.in_catalogue_of(version.species_id).exclude(embeddings__model_version=version).order_by("pk")
    )
    for photo in todo:
        try:
            vector, prepared = embed_photo(photo, version, ident)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # one unreadable gallery file must not block a promotion
            log.warning("could not embed gallery photo %s with %s: %s", photo.pk, version.name, exc)
            failed.append(photo.pk)
            continue
        Embedding.objects.update_or_create(  # the crop's RootSIFT features too: queries only read them
            photo=photo,
            model_version=version,
            defaults=embedding_fields(
                vector, local_features(ident, prepared), ident.familiarity(vector, prepared.crop)
            ),
        )
        if photo.box_source == Photo.BoxSource.MODERATOR or not photo.crop:
            replace_crop(photo, crop_png(prepared.crop))  # a moderator's box fix shows in the crop too
    # build the new version's gallery index here, once: it is saved as a snapshot that every worker
    # then loads at its first task with this version, instead of each building it (gallery_sync.gallery)
    gallery(version)
    if not promote:
        ModelVersion.objects.filter(pk=version_id).update(gallery_ready=True)
        return "embedded"
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version_id)
        if not version.is_active:  # each species has its own active model: only this species' one steps down
            ModelVersion.objects.active_for(version.species_id).exclude(pk=version.pk).update(is_active=False)
            version.is_active = True
            version.promoted_at = timezone.now()
        version.gallery_ready = True
        if failed:
            version.training_snapshot = {**(version.training_snapshot or {}), "gallery_embed_failures": failed}
        version.save()
        # this species' photos that waited for a model, and those awaiting review (re-ranked with the new model,
        # or ranked at last: they went to review unmatched); other species' photos keep their own model's ranks
        of_species = Photo.objects.filter(species_id=version.species_id)
        waiting = list(of_species.failed().filter(failure_code="no_model").values_list("pk", flat=True))
        Photo.objects.filter(pk__in=waiting).update(
            status=Photo.Status.UPLOADED, failure_code="", failure_reason="", updated_at=timezone.now()
        )
        review = list(of_species.awaiting_review().values_list("pk", flat=True))
        for pk in waiting:
            jobs.enqueue(jobs.PROCESS_PHOTO, pk)
        for pk in review:
            jobs.enqueue(jobs.RERANK_PHOTO, pk)
    return "promoted"
