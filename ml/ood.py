"""Out-of-distribution detection: does a query photo look like the photos the model was trained on?

Why: a model trained on synthetic flukes embeds a real photo somewhere it has never been taught to
read, and a calibration fitted on synthetic pairs then says "99% same whale" for a stranger (issue 10,
item 6: 13 of 19 real flukes of whales not in the demo catalogue outranked "new individual" at P >= 0.8).
The calibration is only valid where it was fitted; this tells the worker when a query is outside that.

The detector is the k-nearest-neighbour distance in embedding space (Sun et al. 2022, "Out-of-distribution
detection with deep nearest neighbors"): the mean cosine distance from the query to its ``k`` nearest
*training* embeddings. It needs no labels and no distributional assumption, and it reads the same vectors
the gallery does. The threshold is a high quantile (``quantile``, 0.99 by default) of the scores of
*held-out validation photos* (never trained on, individuals held out whole included): in-distribution
photos of unseen whales are flagged about 1% of the time, and the flag means "unlike anything here".

Two spaces, flagged when either is far (issue 10, second round): the trained embedding alone missed most real
flukes (4 of 19 flagged), because a head trained on synthetic flukes pulls a real photo next to synthetic ones
-- it was taught to ignore exactly the texture and lighting that differ. The backbone's pooled features
(``ml.models.pooled_crops``, before the trained embedding layer; the pretrained EfficientNet-Lite0 of the
default preset is frozen) keep what ImageNet taught, and there a real photo is far from every render. Both are
fitted the same way, on the same training and validation photos, each with its own threshold.

At query time a flagged photo's embedding evidence is not trusted (``ml.fused_ranking.suggest`` replaces
the cosine's probability by the calibration's prior), so only geometric evidence (RootSIFT inliers) can
carry a match: a real fluke whose twin is in the gallery is still found, a stranger is not matched.

Stored in the model folder as ``ood.npz`` (``ml.model_folder``: numpy arrays, loaded without pickle).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.io import atomic_write_bytes

OOD_FILE = "ood.npz"
DEFAULT_K = 5
DEFAULT_QUANTILE = 0.99
MAX_REFERENCE = 8192  # training embeddings kept: 8192 x 512 float16 = 8 MiB, a query's k-NN in ~1 ms
MIN_VALIDATION = 5  # fewer held-out photos than this: the threshold would be a guess, no detector


@dataclass(frozen=True)
class Familiarity:
    """One photo's OOD verdict (``OODDetector.check``): the k-NN cosine distance to the training set in the
    embedding (``score``) and, when the folder has it and the crop was given, in the backbone's pooled features
    (``pooled_score``), the thresholds they were compared with, and ``flagged`` when either is far."""

    score: float
    threshold: float
    flagged: bool
    pooled_score: float | None = None
    pooled_threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "threshold": self.threshold, "flagged": self.flagged}
        if self.pooled_score is not None:
            out.update(pooled_score=self.pooled_score, pooled_threshold=self.pooled_threshold)
        return out


def _normalised(vectors) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def knn_scores(reference: np.ndarray, vectors, k: int) -> np.ndarray:
    """Mean cosine distance (1 - cos) of each vector to its ``k`` nearest rows of ``reference``."""
    q = _normalised(vectors)
    sims = q @ reference.astype(np.float32).T
    k = max(1, min(k, sims.shape[1]))
    nearest = -np.partition(-sims, k - 1, axis=1)[:, :k]
    return 1.0 - nearest.mean(axis=1)


def _reference(vectors, max_reference: int, seed: int) -> np.ndarray:
    ref = _normalised(vectors)
    if len(ref) > max_reference:
        ref = ref[np.random.default_rng(seed).choice(len(ref), max_reference, replace=False)]
    return ref.astype(np.float16)


def _threshold(reference: np.ndarray, val, k: int, quantile: float) -> tuple[float, np.ndarray]:
    val_scores = knn_scores(reference, val, k)
    return float(np.quantile(val_scores, quantile)), val_scores


@dataclass
class OODDetector:
    """k-NN distance to the training photos (module doc) and the flagging thresholds: in the embedding and,
    optionally (folders from before it have none), in the backbone's pooled features."""

    reference: np.ndarray  # (N, D) L2-normalised training embeddings (float16 on disk)
    threshold: float
    k: int = DEFAULT_K
    info: dict[str, Any] = field(default_factory=dict)
    pooled_reference: np.ndarray | None = None  # (N, F) L2-normalised backbone features of the training photos
    pooled_threshold: float | None = None

    @property
    def uses_pooled(self) -> bool:
        return self.pooled_reference is not None and self.pooled_threshold is not None

    def scores(self, vectors) -> np.ndarray:
        """Mean cosine distance (1 - cos) of each embedding to its ``k`` nearest reference embeddings."""
        return knn_scores(self.reference, vectors, self.k)

    def pooled_scores(self, pooled) -> np.ndarray:
        """The same k-NN distance in the backbone's pooled features (``ml.models.pooled_crops``)."""
        if self.pooled_reference is None:
            raise ValueError("this OOD detector has no pooled-feature reference")
        return knn_scores(self.pooled_reference, pooled, self.k)

    def check(self, vector, pooled=None) -> Familiarity:
        """Flag the photo when its embedding *or* (given ``pooled`` and a pooled reference) its backbone
        features are farther from the training photos than the held-out validation photos' ``quantile``."""
        score = float(self.scores(vector)[0])
        flagged = score > self.threshold
        if pooled is None or not self.uses_pooled:
            return Familiarity(score, float(self.threshold), bool(flagged))
        p_score = float(self.pooled_scores(pooled)[0])
        p_thr = float(self.pooled_threshold)  # type: ignore[arg-type]
        return Familiarity(score, float(self.threshold), bool(flagged or p_score > p_thr), p_score, p_thr)

    @classmethod
    def fit(
        cls,
        train_vectors,
        val_vectors,
        k: int = DEFAULT_K,
        quantile: float = DEFAULT_QUANTILE,
        max_reference: int = MAX_REFERENCE,
        seed: int = 0,
        train_pooled=None,
        val_pooled=None,
    ) -> OODDetector | None:
        """Reference = the training embeddings (a random ``max_reference`` of them when more); threshold = the
        ``quantile`` of the held-out ``val_vectors``' scores; the same on ``train_pooled``/``val_pooled`` (the
        backbone's pooled features of the same photos) when given. None when there are too few photos."""
        if len(_normalised(train_vectors)) < k or len(_normalised(val_vectors)) < MIN_VALIDATION:
            return None
        ref = _reference(train_vectors, max_reference, seed)
        threshold, val_scores = _threshold(ref, val_vectors, k, quantile)
        detector = cls(ref, threshold, int(k))
        detector.info = {
            "method": "knn",
            "k": int(k),
            "quantile": float(quantile),
            "reference": len(ref),
            "validation_photos": len(val_scores),
            "validation_median": float(np.median(val_scores)),
            "validation_flagged": float(np.mean(val_scores > threshold)),
        }
        if train_pooled is not None and val_pooled is not None:
            detector.pooled_reference = _reference(train_pooled, max_reference, seed)
            detector.pooled_threshold, p_scores = _threshold(detector.pooled_reference, val_pooled, k, quantile)
            detector.info["pooled"] = {
                "dim": int(detector.pooled_reference.shape[1]),
                "validation_median": float(np.median(p_scores)),
                "threshold": detector.pooled_threshold,
            }
        return detector

    # ------------------------------------------------------------------ the model folder's ood.npz
    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / OOD_FILE
        buf = io.BytesIO()
        arrays: dict[str, Any] = {
            "reference": self.reference.astype(np.float16),
            "threshold": np.float64(self.threshold),
            "k": np.int64(self.k),
            "info": np.array(json.dumps(self.info)),
            **self._pooled_arrays(),
        }
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def _pooled_arrays(self) -> dict[str, Any]:
        if not self.uses_pooled:
            return {}
        assert self.pooled_reference is not None and self.pooled_threshold is not None
        return {
            "pooled_reference": self.pooled_reference.astype(np.float16),
            "pooled_threshold": np.float64(self.pooled_threshold),
        }

    @classmethod
    def load(cls, model_dir: str | Path) -> OODDetector | None:
        """The folder's detector, or None for folders trained before ``ood.npz`` existed (an ``ood.npz`` from
        before the pooled-feature reference loads with the embedding check alone)."""
        path = Path(model_dir) / OOD_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            pooled = "pooled_reference" in data.files and "pooled_threshold" in data.files
            return cls(
                data["reference"],
                float(data["threshold"]),
                int(data["k"]),
                json.loads(str(data["info"])),
                data["pooled_reference"] if pooled else None,
                float(data["pooled_threshold"]) if pooled else None,
            )


__all__ = ["OOD_FILE", "Familiarity", "OODDetector", "knn_scores"]
