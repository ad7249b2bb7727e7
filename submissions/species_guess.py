"""The species classifier's suggestions (``ml.species``): for one photo (the upload form asks as each is chosen)
and for a sighting's photos in one batch (``submit_sighting``).

Computed in the upload request, not by the worker at process time: the classifier is a small network on a
downscaled photo (milliseconds on a CPU beside the checks every upload already decodes the photo for), and
the watcher's "left on the suggestion" can only be resolved against what the classifier said before the
photo's species is saved — the pipeline reads ``Photo.species`` to pick the catalogue and model, so it must be
right before the photo is queued. Without a classifier folder there is no suggestion (``suggest`` is None)
and each photo takes the sighting's species.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from identification.models import Species

log = logging.getLogger(__name__)

SUGGESTED = "suggested"  # the upload form's value for a photo left on the classifier's suggestion
UNKNOWN = "unknown"  # the watcher does not know the photo's species

_lock = threading.Lock()
_cache: dict = {}  # folder -> (classifier.json mtime, classifier)


@dataclass(frozen=True)
class Suggestion:
    """What the classifier said: ``species`` is its choice (None below the folder's threshold: unknown
    species); ``best`` the most probable species and ``probability`` its probability (what it means, shown
    beside an unknown as "best guess")."""

    species: Species | None
    best: Species | None
    probability: float

    def as_json(self) -> dict:
        """The endpoint's answer: the suggested species' code and label (null: unknown) and probability."""
        best = self.best
        return {
            "species": self.species.code if self.species else None,
            "species_id": self.species.pk if self.species else None,
            "label": self.species.common_name if self.species else "Unknown species",
            "probability": round(self.probability, 4),
            "best": {"species": best.code, "label": best.common_name} if best else None,
        }


def classifier_dir() -> Path:
    return Path(settings.SPECIES_CLASSIFIER_DIR or Path(settings.ML_ROOT) / "species")


def classifier():
    """The classifier in ``classifier_dir()`` (loaded once per process, again when its folder changes), or
    None when there is none (or ``ml.species`` cannot load it: logged, the upload goes on without)."""
    folder = classifier_dir()
    meta = folder / "classifier.json"
    if not meta.is_file():
        return None
    stamp = meta.stat().st_mtime_ns
    with _lock:
        cached = _cache.get(folder)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            from ml.species import SpeciesClassifier

            loaded = SpeciesClassifier.load(folder)
        except Exception:
            log.exception("could not load the species classifier in %s", folder)
            loaded = None
        _cache[folder] = (stamp, loaded)
        return loaded


def _species_by_profile(keys) -> dict[str, Species]:
    """{profile key: its species} in one query; the first species (lowest pk) of a profile wins."""
    by_profile: dict[str, Species] = {}
    for species in Species.objects.filter(profile__in=[k for k in keys if k]).order_by("pk"):
        by_profile.setdefault(species.profile, species)
    return by_profile


def view(image):
    """The small grayscale view the classifier reads (``ml.species.classifier_view``), or None without a
    classifier: what an upload keeps of each photo until its sighting is classified in one batch."""
    if classifier() is None:
        return None
    from ml.species import classifier_view

    return classifier_view(image)


def suggest(image) -> Suggestion | None:
    """The suggestion for a PIL image (or its ``view``), or None without a classifier."""
    return suggest_many([image])[0]


def suggest_many(images) -> list[Suggestion | None]:
    """The suggestions for a sighting's photos (PIL images or views) in one batch: the classifier's network runs
    once per sighting, not once per photo. All None without a classifier."""
    model = classifier()
    if model is None or not images:
        return [None] * len(images)
    guesses = model.predict_many(list(images))
    best_keys = [max(g.probabilities, key=g.probabilities.get) if g.probabilities else g.profile for g in guesses]
    species = _species_by_profile({g.profile for g in guesses} | set(best_keys))
    return [
        Suggestion(
            species=species.get(g.profile) if g.profile else None,
            best=species.get(best) if best else None,
            probability=float(g.probabilities.get(best, g.probability) if best else g.probability),
        )
        for g, best in zip(guesses, best_keys)
    ]
