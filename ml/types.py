"""Typed results shared by every part of ``ml``.

They are plain dataclasses so that callers (the Django site, the CLI, benchmarks) can
store them as JSON without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

NEW_WHALE = "new_whale"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in original-image pixels, x1/y1 exclusive."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


BoxSource = Literal["given", "localizer", "default", "full_frame"]


@dataclass(frozen=True)
class Localization:
    """Where the fluke is, and how far to trust it."""

    box: Box
    confidence: float
    source: BoxSource
    flagged: bool  # True when a moderator should check the box (no localizer, or it was unsure)
    upside_down: bool = False  # the localizer thinks the photo is rotated 180 degrees (seed 000 step 2)


@dataclass(frozen=True)
class ImageHashes:
    sha256: str  # hex digest of the file bytes
    phash: str  # 64-bit perceptual hash, 16 hex characters


@dataclass(frozen=True)
class Match:
    """One ranked candidate: an individual label (or ``NEW_WHALE``) with its score."""

    label: str
    score: float
    best_item: str | None = None  # gallery item (photo) that matched best, when known


@dataclass
class TrainProgress:
    """Sent to a progress callback after every step and at the end of each epoch."""

    epoch: int
    epochs: int
    step: int
    steps_per_epoch: int
    loss: float
    val_map5: float | None = None
    eta_seconds: float | None = None
    phase: Literal["train", "validate", "localizer", "done"] = "train"
    message: str = ""

    def describe(self) -> str:
        """One line for a terminal, each phase with its own label and counter: ``epoch``/``epochs`` are
        the model's in "train"/"validate"/"done" and the localizer's own in "localizer" (printed as
        one counter they read "epoch 13/12": the localizer's start carried the model's history length)."""
        label = PHASE_COUNTERS.get(self.phase, self.phase)
        line = f"{label} {self.epoch}/{self.epochs}" if self.epochs else self.phase  # not started yet
        if self.phase in ("train", "localizer") and self.steps_per_epoch:
            line += f" step {self.step}/{self.steps_per_epoch} loss {self.loss:.3f}"
        if self.val_map5 is not None:
            line += f" val MAP@5 {self.val_map5:.4f}"
        return f"{line}  {self.message}" if self.message else line


PHASE_COUNTERS = {
    "train": "model epoch",
    "validate": "model epoch",
    "done": "model epochs",
    "localizer": "localizer epoch",
}


# Used when validation cannot tune the threshold (too few new or known queries): a cosine
# similarity of 0.5 (60 degrees) between the query and its best gallery match.
DEFAULT_NEW_THRESHOLD = 0.5

# The five headline scores and the other spellings older metrics files (and other tools) used for them.
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "map5": ("map5", "map@5", "map_at_5", "val_map5"),
    "top1": ("top1", "top1_accuracy", "top_1", "acc@1", "top1_acc"),
    "top5": ("top5", "top5_accuracy", "top_5", "acc@5", "top5_acc"),
    "new_precision": ("new_precision", "new_whale_precision", "new_whale_p"),
    "new_recall": ("new_recall", "new_whale_recall", "new_whale_r"),
}
HEADLINE_METRICS = tuple(METRIC_ALIASES)
# present in metrics.json only when there was something to put there (validation queries, fine-tuning, boxes)
_VALIDATED_ONLY = ("n", "map5_known_only", "new_threshold", "new_threshold_choice")
_OPTIONAL = ("init_weights", "init_from", "localizer", "ood")


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class TrainMetrics:
    """What ``ml.train.train`` measured, as written to ``metrics.json`` (``to_dict`` keeps its keys).

    Scores are on the held-out validation queries of the run's own split, with the best epoch's weights;
    they are None when the split left no validation queries. ``from_dict`` also reads older files:
    missing keys stay None and the headline scores accept the spellings in ``METRIC_ALIASES``.
    """

    # headline scores (new_whale inserted at ``new_threshold``)
    map5: float | None = None
    top1: float | None = None
    top5: float | None = None
    new_precision: float | None = None  # of the queries called new_whale, the share that were new
    new_recall: float | None = None  # of the new-whale queries, the share called new_whale
    n: int | None = None  # validation queries scored
    map5_known_only: float | None = None  # MAP@5 of the known queries, threshold-free
    chance_map5: float | None = None  # a random ranking's MAP@5 over the training individuals
    new_threshold: float | None = None
    new_threshold_choice: dict[str, Any] | None = None  # ml.metrics.NewThresholdChoice.as_dict()
    # the model and the run
    version: str | None = None
    arch: str | None = None
    head: str | None = None
    image_size: int | None = None
    embedding_dim: int | None = None
    n_classes: int | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    steps: int | None = None
    stop_reason: str | None = None  # "epochs" | "max_steps" | "time_budget"
    device: str | None = None
    precision: str | None = None  # "bf16" | "fp32"
    train_time_s: float | None = None
    oversample_to: int | None = None
    seed: int | None = None
    init_weights: dict[str, Any] | None = None  # ml.models.load_weights_file's report
    init_from: dict[str, Any] | None = None  # loaded / missing / head_reinitialised
    # the data (ml.data.split_dataset's stats and the near-duplicate report)
    n_images: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_ids: int | None = None
    n_train_ids: int | None = None
    n_val_known: int | None = None
    n_val_new: int | None = None
    n_new_individuals: int | None = None
    n_new_whale_photos: int | None = None
    n_single_group_ids: int | None = None
    new_individuals: list[str] = field(default_factory=list)
    duplicates_dropped: int | None = None
    unusable_dropped: int | None = None
    duplicate_images: int | None = None
    near_duplicate_groups: int | None = None
    localizer: dict[str, Any] | None = None  # ml.localizer.train_localizer's metrics, or {"skipped": why}
    calibration: dict[str, Any] | None = None  # ml.train_calibration: how P(same) was fitted, or why not
    ood: dict[str, Any] | None = None  # ml.ood.OODDetector.info: how the distribution-shift flag was fitted, or why not
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they were

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` dict: the same keys ``train`` has always written."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        drop = [k for k in _OPTIONAL if out[k] is None]
        if self.n is None:
            drop += _VALIDATED_ONLY
        for key in drop:
            del out[key]
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> TrainMetrics:
        """Read a ``metrics.json`` dict of any age (unknown keys go to ``extra``)."""
        raw = dict(raw or {})
        names = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in raw.items() if k in names}
        for name, spellings in METRIC_ALIASES.items():
            values[name] = next((raw[k] for k in spellings if _number(raw.get(k)) is not None), None)
        used = names.union(*METRIC_ALIASES.values())
        return cls(**values, extra={k: v for k, v in raw.items() if k not in used})

    def headline(self) -> dict[str, float | None]:
        """The five headline scores by name (what the site's model pages show)."""
        return {name: _number(getattr(self, name)) for name in HEADLINE_METRICS}


@dataclass
class TrainResult:
    model_dir: str
    metrics: TrainMetrics = field(default_factory=TrainMetrics)
    history: list[dict] = field(default_factory=list)
    new_threshold: float = DEFAULT_NEW_THRESHOLD
