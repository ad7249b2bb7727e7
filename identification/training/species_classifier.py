"""Retrain the upload form's species classifier (``ml.species``) from the catalogue.

The demo's classifier learned synthetic flukes and fins only, and a classifier that has never seen a real
humpback fluke calls most of them something else (``bench/species_classifier.py``: 5 of 19 real flukes).
A running site has better data: every photo a moderator confirmed shows its species' body part. This trains
on those, a capped and even share of each species' individuals, for every species with a profile and enough
photos, and writes the folder the upload form reads (``submissions.species_guess.classifier_dir``); the form
notices the new ``classifier.json`` and reloads it.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from pathlib import Path

from django.db.models import F

from submissions.models import Photo
from submissions.species_guess import classifier_dir

from ..pipeline.process import read_image_bytes

PER_PROFILE = 400  # photos per species profile at most: enough for a linear head on frozen features
MIN_PHOTOS = 20  # a profile with fewer confirmed photos is left out (it would be a guess from a handful)


class NotEnoughPhotos(ValueError):
    """Fewer than two species profiles have ``MIN_PHOTOS`` confirmed photos."""


def catalogue_photos(per_profile: int = PER_PROFILE) -> dict[str, list[Photo]]:
    """``{profile key: confirmed photos}``: for each species with a profile, up to ``per_profile`` photos taken
    round-robin over its individuals (one whale photographed 200 times does not outweigh the rest)."""
    rows = (
        Photo.objects.in_gallery()
        .exclude(individual__species__profile="")
        .annotate(profile=F("individual__species__profile"))
        .order_by("profile", "individual_id", "pk")
        .only("pk", "image", "individual_id")
    )
    by_whale: dict[str, dict[int, list[Photo]]] = defaultdict(lambda: defaultdict(list))
    for photo in rows.iterator(chunk_size=2000):
        by_whale[photo.profile][photo.individual_id].append(photo)
    return {profile: _round_robin(list(whales.values()), per_profile) for profile, whales in by_whale.items()}


def _round_robin(groups: list[list[Photo]], limit: int) -> list[Photo]:
    chosen: list[Photo] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(g) for g in groups):
        chosen += [g[depth] for g in groups if depth < len(g)][: limit - len(chosen)]
        depth += 1
    return chosen


def train_from_catalogue(
    features: str = "efficientnet_lite0",
    per_profile: int = PER_PROFILE,
    min_photos: int = MIN_PHOTOS,
    out_dir: Path | None = None,
):
    """Train and write the classifier; ``NotEnoughPhotos`` says which profiles are short. Returns
    ``ml.species.SpeciesClassifierReport``."""
    from ml.species import train_species_classifier  # loads torch

    found = catalogue_photos(per_profile)
    photos = {k: v for k, v in found.items() if len(v) >= min_photos}
    if len(photos) < 2:
        have = ", ".join(f"{k}: {len(v)}" for k, v in found.items()) or "none"
        raise NotEnoughPhotos(
            f"a species classifier needs {min_photos} confirmed photos of two species profiles or more (have {have})"
        )
    data = {profile: [partial(read_image_bytes, p) for p in chosen] for profile, chosen in photos.items()}
    return train_species_classifier(data, out_dir or classifier_dir(), features=features)
