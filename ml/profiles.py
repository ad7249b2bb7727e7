"""Species profiles: one per identifiable body part, stated once (importable without torch).

A profile says how photos of one body part of one species become network inputs and which matchers apply:
the crop (aspect ratio and margins around the box), whether a horizontal mirror shows the same animal, a new
identity or must never be made, the augmentation ranges, the localizer, and the matchers. ``ml`` (crop,
training, identification), the site's pipeline and its review page read them from here.

Whalesite identifies individuals *within* a profile: each has its own gallery and its own model, so a
dorsal fin is never cropped at a fluke's 2.09 aspect nor ranked against humpbacks.

- ``humpback_fluke`` is seed 000 (the ResNet50 humpback study) unchanged: the margins and 2.09 aspect of
  ``ml.preprocess``, rotation 20 degrees, zoom and shift 20 %, the fluke localizer (seed 003); a flip is
  allowed (seed 000 used it, Kaggle 2019's 2nd place trained flips as new ids) and off by default.
- ``dolphin_fin``: dorsal fins are not symmetric, so a mirror is never the same fin (seed 002: no horizontal
  flip for fins, small rotations only, no random crops).
- ``right_whale_head``: aerial photos of the callosity pattern, already cut and turned to a square by a head
  detector (``../shared/real-data/right-whales``); the photo is the crop.
- ``seal_face``: face chips (SealNet); the photo is the crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum

from ml import local_features as _lf

__all__ = [
    "DEFAULT_MATCHING",
    "DEFAULT_PROFILE",
    "PROFILES",
    "Augmentation",
    "Crop",
    "LocalMatching",
    "Mirror",
    "SpeciesProfile",
    "folder_profile",
    "get_profile",
    "profile_for_species",
]


class Mirror(StrEnum):
    """What a horizontally mirrored photo is."""

    NEVER = "never"  # never mirror: neither augmentation nor an extra identity (dorsal fins, seal faces)
    SAME = "same"  # a random flip is an allowed augmentation (and mirrored copies as new ids)
    NEW_ID = "new_id"  # another identity: mirrored copies may train as extra individuals (``<id>_flip``)


@dataclass(frozen=True)
class Crop:
    """The region around a box that becomes the network input (see ``ml.preprocess.expand_box``)."""

    aspect: float  # width / height of the cropped region before it is mapped onto the square input
    margin_left: float = 0.10  # fractions of the box's width / height added on each side (seed 000)
    margin_right: float = 0.15
    margin_top: float = 0.10
    margin_bottom: float = 0.10


@dataclass(frozen=True)
class Augmentation:
    """Geometric augmentation ranges for ``ml.preprocess.TrainTransform`` (seed 000's by default)."""

    rotation: float = 20.0  # degrees, +-
    zoom: float = 0.2  # 1 +- zoom
    shift: float = 0.2  # of width / height, +-


@dataclass(frozen=True)
class LocalMatching:
    """How the ``local_features`` matcher verifies a pair (``ml.local_features``): keypoints kept per photo,
    Lowe's ratio, and the geometry RANSAC fits. The fluke's are the library defaults (a flat, rigid edge: a
    similarity); a profile whose body part turns in depth may fit an affine map instead."""

    max_keypoints: int = _lf.DEFAULT_MAX_KEYPOINTS
    ratio: float = _lf.DEFAULT_RATIO
    geometry: str = "similarity"  # one of ml.local_features.GEOMETRIC_MODELS (checked)
    ransac_px: float = _lf.DEFAULT_RANSAC_PX
    contrast: str = "standardized"  # one of ml.local_features.CONTRASTS: what SIFT reads (checked)

    def __post_init__(self):
        # a misspelt profile fails when defined, not at a query
        if self.geometry not in _lf.GEOMETRIC_MODELS:
            raise ValueError(f"unknown geometry {self.geometry!r}: one of {', '.join(_lf.GEOMETRIC_MODELS)}")
        if self.contrast not in _lf.CONTRASTS:
            raise ValueError(f"unknown contrast {self.contrast!r}: one of {', '.join(_lf.CONTRASTS)}")

    def match_options(self) -> dict:
        """Keyword arguments of ``ml.local_features.match`` (and ``best_inliers``, ``rerank``, ``matched_pairs``)."""
        return {"ratio": self.ratio, "ransac_px": self.ransac_px, "model": self.geometry}

    def extract_options(self) -> dict:
        """Keyword arguments of ``ml.local_features.extract``: what a stored gallery feature depends on."""
        return {"max_keypoints": self.max_keypoints, "contrast": self.contrast}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping) -> LocalMatching:
        """The matching a model folder recorded (``to_dict``); keys this version does not know are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


DEFAULT_MATCHING = LocalMatching()  # the library defaults: the humpback fluke's


@dataclass(frozen=True)
class SpeciesProfile:
    key: str  # stable id stored in model folders and the site's database
    label: str  # what people read: "Humpback whale fluke"
    common_name: str
    scientific_name: str  # Darwin Core scientificName
    catalogue_prefix: str  # catalogue ids read <prefix>-0001
    body_part: str
    crop: Crop
    mirror: Mirror
    augmentation: Augmentation
    localizer: str  # "fluke": the trained box localizer (seed 003); "full_frame": the photo is the crop
    matchers: tuple[str, ...]  # "embedding" and/or "local_features" (RootSIFT re-ranking)
    local_matching: LocalMatching = DEFAULT_MATCHING  # how "local_features" verifies a pair


HUMPBACK_FLUKE = SpeciesProfile(
    key="humpback_fluke",
    label="Humpback whale fluke",
    common_name="Humpback whale",
    scientific_name="Megaptera novaeangliae",
    catalogue_prefix="HW",
    body_part="fluke (ventral side)",
    crop=Crop(aspect=2.09),
    mirror=Mirror.SAME,  # seed 000 flipped flukes as augmentation; today's recipe leaves it off (hflip False)
    augmentation=Augmentation(),
    localizer="fluke",
    matchers=("embedding", "local_features"),
)
DOLPHIN_FIN = SpeciesProfile(
    key="dolphin_fin",
    label="Bottlenose dolphin dorsal fin",
    common_name="Common bottlenose dolphin",
    scientific_name="Tursiops truncatus",
    catalogue_prefix="TT",
    body_part="dorsal fin (left or right side)",
    crop=Crop(aspect=1.5, margin_left=0.10, margin_right=0.10, margin_top=0.10, margin_bottom=0.05),
    mirror=Mirror.NEVER,
    augmentation=Augmentation(rotation=8.0, zoom=0.1, shift=0.1),
    localizer="full_frame",
    matchers=("embedding", "local_features"),
)
RIGHT_WHALE_HEAD = SpeciesProfile(
    key="right_whale_head",
    label="Right whale head (aerial)",
    common_name="North Atlantic right whale",
    scientific_name="Eubalaena glacialis",
    catalogue_prefix="EG",
    body_part="head, callosity pattern from above",
    crop=Crop(aspect=1.0, margin_left=0.0, margin_right=0.0, margin_top=0.0, margin_bottom=0.0),
    # a mirrored head is another callosity pattern. Whether its copies should train as extra ids, and which
    # ranges, was tried on the train individuals only (bench/profile_finetune_search.py, two halves, 523
    # queries, fine-tuned Lite0 tail): every pairing of {new_id, never} x {these, seed 000's} ranges scored
    # MAP@5 0.099-0.117, each within a paired 95% interval of these (frozen: 0.117), so these stay
    mirror=Mirror.NEW_ID,
    augmentation=Augmentation(rotation=15.0, zoom=0.15, shift=0.1),
    localizer="full_frame",
    matchers=("embedding", "local_features"),
    # the library's matching. CLAHE contrast was tried: on the train individuals of bench/profile_reid.py's split
    # (bench/local_matcher_search.py, RootSIFT alone, 122 queries) 0.233 against 0.225 standardized, but on the
    # eval individuals of bench/real_reid.py it lowered the site's ranking (frozen Lite0 + RootSIFT, MAP@5 0.341
    # against 0.359) for a gain of RootSIFT alone within noise (0.361 / 0.357); seals lose with it outright
)
SEAL_FACE = SpeciesProfile(
    key="seal_face",
    label="Harbour seal face",
    common_name="Harbour seal",
    scientific_name="Phoca vitulina",
    catalogue_prefix="PV",
    body_part="face",
    # chosen on the train individuals of bench/profile_reid.py's split (bench/profile_crop_search.py), never on the
    # reported ones: a wider frame than the chip beats a square one (frozen cosine + RootSIFT MAP@5, mean 0.690
    # at 1.5, 0.693 at 2.09, 0.677 square); 1.5 of the two near-equal ones squeezes the face less
    crop=Crop(aspect=1.5, margin_left=0.0, margin_right=0.0, margin_top=0.0, margin_bottom=0.0),
    mirror=Mirror.NEVER,
    augmentation=Augmentation(rotation=10.0, zoom=0.1, shift=0.1),
    localizer="full_frame",
    matchers=("embedding", "local_features"),
    # a face turns in depth, foreshortening one direction: an affine map, not a similarity, relates two views.
    # Chosen on the same train individuals (bench/local_matcher_search.py, RootSIFT alone, 119 queries): affine
    # beats similarity at every ratio (0.743 / 0.729 at 0.75, 0.755 / 0.711 at 0.8, 0.750 / 0.727 at 0.85);
    # 1,000 keypoints gave the same figures as 500
    local_matching=LocalMatching(geometry="affine"),
)

PROFILES: dict[str, SpeciesProfile] = {p.key: p for p in (HUMPBACK_FLUKE, DOLPHIN_FIN, RIGHT_WHALE_HEAD, SEAL_FACE)}
DEFAULT_PROFILE = HUMPBACK_FLUKE  # a model folder written before profiles existed is a humpback fluke model


def get_profile(key: str | None) -> SpeciesProfile:
    """The profile named ``key`` (``None`` or empty: the humpback fluke, as every model before profiles);
    ``ValueError`` naming the known keys for anything else."""
    if not key:
        return DEFAULT_PROFILE
    try:
        return PROFILES[key]
    except KeyError:
        raise ValueError(f"unknown species profile {key!r}; choose one of {', '.join(PROFILES)}") from None


def folder_profile(config: Mapping | None) -> SpeciesProfile:
    """The profile of a model folder, from its ``config.json``: its key's profile, matching as the folder recorded
    at training (``local_matching``). Its gallery's stored RootSIFT features and its calibration were made that
    way, so a query must be too: a later change to a profile's matching applies to the models trained after it.
    A folder without the record keeps today's verification (it changes no stored feature) on the extraction of
    its time (standardized crop, default keypoints)."""
    config = config or {}
    profile = get_profile(config.get("profile"))
    raw = config.get("local_matching")
    if raw is not None:
        matching = LocalMatching.from_dict(raw)
    else:
        # before the record every folder extracted from the standardized crop with the default keypoints
        matching = replace(profile.local_matching, max_keypoints=_lf.DEFAULT_MAX_KEYPOINTS, contrast="standardized")
    return profile if matching == profile.local_matching else replace(profile, local_matching=matching)


def profile_for_species(scientific_name: str) -> SpeciesProfile | None:
    """The profile of a species by its scientific name, or None when no profile identifies it."""
    wanted = scientific_name.strip().lower()
    return next((p for p in PROFILES.values() if p.scientific_name.lower() == wanted), None)
