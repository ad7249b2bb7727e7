"""The species classifier's suggestion for one photo (``ml.species``), for the upload form and ``submit_sighting``.

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


def _species_of(profile: str | None) -> Species | None:
    return Species.objects.filter(profile=profile).order_by("pk").first() if profile else None


def suggest(image) -> Suggestion | None:
    """The suggestion for a PIL image, or None without a classifier."""
    model = classifier()
    if model is None:
        return None
    guess = model.predict(image)
    best_key = max(guess.probabilities, key=guess.probabilities.get) if guess.probabilities else guess.profile
    best = _species_of(best_key)
    probability = guess.probabilities.get(best_key, guess.probability) if best_key else guess.probability
    return Suggestion(species=_species_of(guess.profile), best=best, probability=float(probability))
