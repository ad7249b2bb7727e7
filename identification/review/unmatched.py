"""Why a photo awaiting review has no suggestions, in words a moderator acts on.

Each species is matched only within its own catalogue, by its own model (``pipeline.process``). A photo whose
species is unknown, has no profile, or has no model yet goes to review unranked: the moderator can correct its
species (``curation.correct_species`` ranks it again), name it a new individual of its species (which starts
that species' catalogue), or reject it.
"""

from __future__ import annotations

from ..pipeline.cache import active_version


def why_unmatched(photo) -> str:
    """The reason ``photo`` was not ranked against any catalogue, or "" when it was (or could be)."""
    species = photo.species
    if species is None:
        return (
            "The species of this photo is unknown (the species classifier was unsure and the watcher did not say), "
            "so it was not matched against any catalogue. Set its species to match it, or reject it."
        )
    if not species.profile:
        return (
            f"{species} has no identification profile, so its photos are kept for review but never matched. "
            "If this photo shows another species, correct it; otherwise reject it as another species."
        )
    if active_version(species) is None:  # the pipeline's own rule for which model matches a species
        return (
            f"There is no identification model for {species} yet, so this photo has no suggestions. Name it a new "
            f"individual (its catalogue id starts {species.code}-) or correct its species; it is ranked as soon "
            "as an administrator promotes a model of its species."
        )
    return ""
