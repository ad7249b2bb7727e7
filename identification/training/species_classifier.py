"""Retrain the upload form's species classifier (``ml.species``) from the catalogue.

The demo's classifier learned synthetic flukes and fins only, and a classifier that has never seen a real
humpback fluke calls most of them something else (``bench/species_classifier.py``: 5 of 19 real flukes).
A running site has better data: every photo a moderator confirmed shows its species' body part. This trains
on those, a capped and even share of each species' individuals, for every species with a profile and enough
photos, and writes the folder the upload form reads (``submissions.species_guess.classifier_dir``); the form
notices the new ``classifier.json`` and reloads it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from ml.profiles import get_profile
from submissions.models import Photo
from submissions.species_guess import classifier_dir

from .. import jobs
from ..permissions import MANAGE_MODELS_PERMISSION, require
from ..pipeline.process import read_image_bytes

log = logging.getLogger(__name__)

PER_PROFILE = 400  # photos per species profile at most: enough for a linear head on frozen features


class NotEnoughPhotos(ValueError):
    """Fewer than two species profiles have ``required_photos()`` confirmed photos."""


def _profiled_gallery():
    """Confirmed photos of whales whose species has a profile, each annotated with that ``profile``."""
    return (
        Photo.objects.in_gallery()
        .exclude(individual__species__profile="")
        .annotate(profile=F("individual__species__profile"))
    )


def catalogue_photos(per_profile: int = PER_PROFILE) -> dict[str, list[Photo]]:
    """``{profile key: confirmed photos}``: for each species with a profile, up to ``per_profile`` photos taken
    round-robin over its individuals (one whale photographed 200 times does not outweigh the rest): every whale's
    first photo, then every whale's second, ... Ranked in SQL, so only the photos taken are read."""
    depth = Window(RowNumber(), partition_by=[F("individual_id")], order_by=F("pk").asc())
    ranked = _profiled_gallery().annotate(depth=depth).only("pk", "image", "individual_id")
    profiles = ranked.order_by().values_list("profile", flat=True).distinct()
    return {
        profile: list(ranked.filter(profile=profile).order_by("depth", "individual_id", "pk")[:per_profile])
        for profile in sorted(set(profiles))
    }


def required_photos() -> int:
    """Confirmed photos a species needs to be learned (``SPECIES_CLASSIFIER_MIN_PHOTOS``): with fewer it would be
    a guess from a handful."""
    return settings.SPECIES_CLASSIFIER_MIN_PHOTOS


def train_from_catalogue(
    features: str = "efficientnet_lite0",
    per_profile: int = PER_PROFILE,
    min_photos: int | None = None,
    out_dir: Path | None = None,
):
    """Train and write the classifier; ``NotEnoughPhotos`` says which profiles are short. Returns
    ``ml.species.SpeciesClassifierReport``."""
    from ml.species import train_species_classifier  # loads torch

    min_photos = required_photos() if min_photos is None else min_photos
    found = catalogue_photos(per_profile)
    photos = {k: v for k, v in found.items() if len(v) >= min_photos}
    if len(photos) < 2:
        have = ", ".join(f"{k}: {len(v)}" for k, v in found.items()) or "none"
        raise NotEnoughPhotos(
            f"a species classifier needs {min_photos} confirmed photos of two species profiles or more (have {have})"
        )
    data = {profile: [partial(read_image_bytes, p) for p in chosen] for profile, chosen in photos.items()}
    return train_species_classifier(data, out_dir or classifier_dir(), features=features)


def confirmed_counts() -> dict[str, int]:
    """Confirmed photos per species profile, in one aggregate query (what the dashboard shows)."""
    rows = _profiled_gallery().order_by().values("profile").annotate(n=Count("pk"))
    return {r["profile"]: r["n"] for r in rows}


def classifier_status() -> dict | None:
    """The classifier the upload form reads: its photos per profile, training accuracy, features and when it
    was written; None when there is none."""
    meta_path = classifier_dir() / "classifier.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    written = datetime.fromtimestamp(meta_path.stat().st_mtime, tz=UTC)
    return {**meta, "written_at": written}


def request_retrain(user) -> None:
    """The dashboard's "Retrain from the catalogue": refused (``ValidationError``, in words) when fewer than two
    profiles have ``required_photos()`` confirmed photos, else queued on the training worker after the commit."""
    require(user, MANAGE_MODELS_PERMISSION)
    counts = confirmed_counts()
    need = required_photos()
    if sum(n >= need for n in counts.values()) < 2:
        have = ", ".join(f"{get_profile(k).label} {n}" for k, n in sorted(counts.items())) or "none"
        raise ValidationError(
            f"The species classifier needs {need} confirmed photos of two species or more (have {have})."
        )
    jobs.enqueue(jobs.TRAIN_SPECIES_CLASSIFIER)


def retrain_species_classifier() -> str:
    """The body of the ``train_species_classifier`` task: a catalogue that shrank below the minimum in the
    meantime is logged and answered, not raised (the old classifier stays)."""
    try:
        report = train_from_catalogue(settings.SPECIES_CLASSIFIER_FEATURES)
    except NotEnoughPhotos as exc:
        log.warning("species classifier not retrained: %s", exc)
        return f"skipped: {exc}"
    return f"trained on {report.photos}"


def dashboard_panel() -> dict:
    """What the dashboard's species-classifier card shows: the current classifier (or None) and the confirmed
    photos each profile has now, labelled for people."""

    def labelled(counts: dict) -> list[tuple[str, int]]:
        return [(get_profile(k).label, n) for k, n in sorted(counts.items())]

    status = classifier_status()
    if status is not None:
        status["photos_labelled"] = labelled(status.get("photos", {}))
    return {"current": status, "confirmed": labelled(confirmed_counts()), "min_photos": required_photos()}
