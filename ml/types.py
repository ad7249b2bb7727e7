"""Typed results shared by every part of ``ml``.

They are plain dataclasses so that callers (the Django site, the CLI, benchmarks) can
store them as JSON without importing torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

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

    def to_normalized(self, image_width: int, image_height: int) -> tuple[float, float, float, float]:
        """(cx, cy, w, h) in 0..1, the localizer's regression target (seed 003)."""
        return (
            (self.x0 + self.x1) / 2 / image_width,
            (self.y0 + self.y1) / 2 / image_height,
            self.width / image_width,
            self.height / image_height,
        )

    @classmethod
    def from_normalized(cls, cx: float, cy: float, w: float, h: float, image_width: int, image_height: int) -> "Box":
        return cls(
            (cx - w / 2) * image_width,
            (cy - h / 2) * image_height,
            (cx + w / 2) * image_width,
            (cy + h / 2) * image_height,
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


BoxSource = Literal["given", "localizer", "default"]


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


@dataclass
class TrainResult:
    model_dir: str
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    new_threshold: float = 0.5
