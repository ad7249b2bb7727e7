"""The species classifier: which species profile (``ml.profiles``) a whole photo shows, as in seed 002, which
classifies the species first and then identifies the individual within it.

It runs before any crop (the crop depends on the profile), on the whole photo in grayscale:

- ``efficientnet_lite0`` (the default): the frozen pretrained EfficientNet-Lite0 of ``ml.backbones`` (weights
  from the installed package), average-pooled features of the photo at 224 px;
- ``thumbnail``: a weight-free feature (a 24 px standardized thumbnail and gradient-orientation histograms),
  for tests and machines without the weights package.

A multinomial logistic regression on the standardized features gives P(profile). "Unknown species" (profile
None) when the top probability is below the folder's ``threshold`` or the photo's features are farther from
every training photo than ``distance_threshold`` (the 99th percentile of the training photos' own nearest-
neighbour distances): a photo unlike anything trained on is never forced into a profile.

Folder: ``classifier.pt`` (head, feature scaling, a reference sample of training features) and
``classifier.json`` (profiles, thresholds, feature kind, the sha256 of ``classifier.pt``, checked at load).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .backbones import sha256_of
from .data import DatasetError
from .images import load_image
from .model_folder import ModelFolderError
from .profiles import PROFILES

__all__ = [
    "FEATURES",
    "SpeciesClassifier",
    "SpeciesClassifierReport",
    "SpeciesGuess",
    "classifier_view",
    "train_species_classifier",
]

FEATURES = ("efficientnet_lite0", "thumbnail")
MODEL_FILE = "classifier.pt"
META_FILE = "classifier.json"
DEFAULT_THRESHOLD = 0.6  # below this top probability the photo is "unknown species"
REFERENCE_PHOTOS = 2000  # training features kept for the nearest-neighbour check
VIEW_SIZE = 224  # the side of the grayscale view every feature kind reads (``classifier_view``)


@dataclass(frozen=True)
class SpeciesGuess:
    profile: str | None  # None: unknown species (unsure, or unlike every training photo)
    probability: float  # of the most probable profile
    probabilities: dict[str, float] = field(default_factory=dict)
    distance: float = 0.0  # to the nearest training photo, in standardized feature space


@dataclass(frozen=True)
class SpeciesClassifierReport:
    profiles: tuple[str, ...]
    photos: dict[str, int]  # training photos per profile
    train_accuracy: float
    out_dir: Path


# --------------------------------------------------------------------------- features
def _gray(image) -> Image.Image:
    """A photo in grayscale from a PIL image, a path, bytes, or a zero-argument callable returning one of those
    (read only when its batch comes: a catalogue is never held in memory whole)."""
    if callable(image):
        image = image()
    img = image if isinstance(image, Image.Image) else load_image(image, min_side=1)  # seal chips are small
    return img.convert("L")


def classifier_view(image) -> Image.Image:
    """All the classifier reads of a photo: grayscale, squashed to 224 x 224 (what the backbone sees; the
    thumbnail features shrink it further). Training and prediction reduce every photo to it first, so an upload
    can keep this 50 KB view per photo instead of the decoded photo and classify a whole sighting in one batch,
    with the same answer as one photo at a time."""
    if isinstance(image, Image.Image) and image.mode == "L" and image.size == (VIEW_SIZE, VIEW_SIZE):
        return image  # a view already
    return _gray(image).resize((VIEW_SIZE, VIEW_SIZE), Image.Resampling.BILINEAR)


def _thumbnail(img: Image.Image) -> np.ndarray:
    small = np.asarray(img.resize((24, 24), Image.Resampling.BILINEAR), dtype=np.float32)
    small = (small - small.mean()) / (small.std() + 1e-6)
    big = np.asarray(img.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    gy, gx = np.gradient(big)
    mag, ang = np.hypot(gx, gy), (np.arctan2(gy, gx) % np.pi)
    hist = []
    for rows in np.array_split(np.arange(64), 4):
        for cols in np.array_split(np.arange(64), 4):
            m, a = mag[np.ix_(rows, cols)].ravel(), ang[np.ix_(rows, cols)].ravel()
            h, _ = np.histogram(a, bins=8, range=(0, np.pi), weights=m)
            hist.append(h / (h.sum() + 1e-6))
    stats = [big.mean(), big.std(), float(np.mean(mag))]
    return np.concatenate([small.ravel(), np.concatenate(hist), stats]).astype(np.float32)


class _Featurizer:
    def __init__(self, kind: str):
        if kind not in FEATURES:
            raise ValueError(f"unknown species features {kind!r}; choose one of {', '.join(FEATURES)}")
        self.kind = kind
        self._encoder: torch.nn.Module | None = None

    def __call__(self, images: Sequence, batch: int = 16) -> np.ndarray:
        """Features of ``images``, decoded ``batch`` at a time (at most one batch of photos in memory)."""
        views = (images[s : s + batch] for s in range(0, len(images), batch))
        out = [self._features([classifier_view(i) for i in chunk]) for chunk in views]
        return np.concatenate(out).astype(np.float32)

    def _features(self, grays: list[Image.Image]) -> np.ndarray:
        if self.kind == "thumbnail":
            return np.stack([_thumbnail(g) for g in grays])
        if self._encoder is None:
            from .backbones import create_encoder

            self._encoder = create_encoder("efficientnet_lite0").eval()
        arrays = [np.asarray(g, dtype=np.float32) for g in grays]
        arrays = [(a - a.mean()) / (a.std() + 1e-6) for a in arrays]
        with torch.inference_mode():
            return self._encoder(torch.from_numpy(np.stack(arrays)[:, None])).numpy()


# --------------------------------------------------------------------------- training
def _fit_head(x: np.ndarray, y: np.ndarray, classes: int, steps: int = 300, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    counts = np.bincount(y, minlength=classes).astype(np.float32)
    weights = torch.from_numpy(counts.sum() / (classes * np.maximum(counts, 1)))  # balanced classes
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(xt), yt, weight=weights)
        loss.backward()
        opt.step()
    return head.eval()


def _nearest(a: np.ndarray, ref: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """RMS distance of each row of ``a`` to its nearest row of ``ref``, from one matrix product (an (n, m, d)
    difference array would need 20 GB for 2,000 reference photos of 1,280 features)."""
    sq = (a * a).sum(axis=1)[:, None] + (ref * ref).sum(axis=1)[None, :] - 2.0 * (a @ ref.T)
    d = np.maximum(sq, 0.0) / a.shape[1]
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.sqrt(d.min(axis=1))


def train_species_classifier(
    data: Mapping[str, Sequence],
    out_dir,
    *,
    features: str = "efficientnet_lite0",
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
) -> SpeciesClassifierReport:
    """Train on ``{profile key: photos}`` (two profiles or more) and write the folder ``out_dir``. A photo is a
    path, bytes, a PIL image or a zero-argument callable returning one (the site reads its catalogue lazily).
    ``classifier.pt`` is written beside and moved into place before ``classifier.json``, whose change tells a
    running site to reload."""
    unknown = [k for k in data if k not in PROFILES]
    if unknown:
        raise ValueError(f"unknown species profile(s) {', '.join(unknown)}; choose from {', '.join(PROFILES)}")
    empty = [k for k, paths in data.items() if not paths]
    if empty or len(data) < 2:
        raise DatasetError(f"a species classifier needs photos of two profiles or more (none of: {empty or 'others'})")
    profiles = tuple(sorted(data))
    featurize = _Featurizer(features)
    xs, ys = [], []
    for i, key in enumerate(profiles):
        xs.append(featurize([Path(p) if isinstance(p, str) else p for p in data[key]]))
        ys.append(np.full(len(data[key]), i, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    head = _fit_head(z, y, len(profiles), seed=seed)
    with torch.no_grad():
        accuracy = float((head(torch.from_numpy(z)).argmax(1).numpy() == y).mean())
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(z))[:REFERENCE_PHOTOS]
    reference = z[keep]
    own = _nearest(reference, reference, exclude_self=True)
    distance_threshold = float(np.quantile(own[np.isfinite(own)], 0.99)) * 1.5 if len(reference) > 1 else 1e9
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        "weight": head.weight.detach(),
        "bias": head.bias.detach(),
        "mean": torch.from_numpy(mean),
        "std": torch.from_numpy(std),
        "reference": torch.from_numpy(reference),
    }
    torch.save(state, out / f"{MODEL_FILE}.tmp")
    os.replace(out / f"{MODEL_FILE}.tmp", out / MODEL_FILE)
    photos = {k: len(data[k]) for k in profiles}
    meta = {
        "profiles": list(profiles),
        "features": features,
        "threshold": threshold,
        "distance_threshold": distance_threshold,
        "photos": photos,
        "train_accuracy": accuracy,
        "sha256": sha256_of(out / MODEL_FILE),
    }
    (out / f"{META_FILE}.tmp").write_text(json.dumps(meta, indent=2))
    os.replace(out / f"{META_FILE}.tmp", out / META_FILE)
    return SpeciesClassifierReport(profiles, photos, accuracy, out)


# --------------------------------------------------------------------------- inference
class SpeciesClassifier:
    def __init__(self, meta: dict, state: dict):
        self.profiles: tuple[str, ...] = tuple(meta["profiles"])
        self.threshold = float(meta["threshold"])
        self.distance_threshold = float(meta["distance_threshold"])
        self._featurize = _Featurizer(meta["features"])
        self._state = state

    @classmethod
    def load(cls, folder) -> SpeciesClassifier:
        folder = Path(folder)
        meta_path, model_path = folder / META_FILE, folder / MODEL_FILE
        if not meta_path.is_file() or not model_path.is_file():
            raise ModelFolderError(f"{folder}: no species classifier ({META_FILE} and {MODEL_FILE})")
        meta = json.loads(meta_path.read_text())
        if sha256_of(model_path) != meta.get("sha256"):
            raise ModelFolderError(f"{model_path}: sha256 does not match {META_FILE}; the file is damaged or replaced")
        return cls(meta, torch.load(model_path, map_location="cpu", weights_only=True))

    def predict_many(self, images: Sequence) -> list[SpeciesGuess]:
        s = self._state
        z = (torch.from_numpy(self._featurize(list(images))) - s["mean"]) / s["std"]
        with torch.no_grad():
            probs = torch.softmax(z @ s["weight"].T + s["bias"], dim=1).numpy()
        distances = _nearest(z.numpy(), s["reference"].numpy())
        guesses = []
        for p, d in zip(probs, distances):
            best = int(p.argmax())
            sure = p[best] >= self.threshold and d <= self.distance_threshold
            guesses.append(
                SpeciesGuess(
                    profile=self.profiles[best] if sure else None,
                    probability=float(p[best]),
                    probabilities={k: float(v) for k, v in zip(self.profiles, p)},
                    distance=float(d),
                )
            )
        return guesses

    def predict(self, image) -> SpeciesGuess:
        """The profile of one photo (PIL image, path or bytes), or ``profile=None`` for an unknown species."""
        return self.predict_many([image])[0]
