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
    """One photo's OOD verdict (``OODDetector.check``): the k-NN cosine distance to the training set, the
    threshold it was compared with, and ``flagged`` when the photo looks unlike the training photos."""

    score: float
    threshold: float
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "threshold": self.threshold, "flagged": self.flagged}


def _normalised(vectors) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


@dataclass
class OODDetector:
    """k-NN distance to the training embeddings (module doc) and the flagging threshold."""

    reference: np.ndarray  # (N, D) L2-normalised training embeddings (float16 on disk)
    threshold: float
    k: int = DEFAULT_K
    info: dict[str, Any] = field(default_factory=dict)

    def scores(self, vectors) -> np.ndarray:
        """Mean cosine distance (1 - cos) of each vector to its ``k`` nearest reference embeddings."""
        q = _normalised(vectors)
        sims = q @ self.reference.astype(np.float32).T
        k = max(1, min(self.k, sims.shape[1]))
        nearest = -np.partition(-sims, k - 1, axis=1)[:, :k]
        return 1.0 - nearest.mean(axis=1)

    def check(self, vector) -> Familiarity:
        score = float(self.scores(vector)[0])
        return Familiarity(score, float(self.threshold), bool(score > self.threshold))

    @classmethod
    def fit(
        cls,
        train_vectors,
        val_vectors,
        k: int = DEFAULT_K,
        quantile: float = DEFAULT_QUANTILE,
        max_reference: int = MAX_REFERENCE,
        seed: int = 0,
    ) -> OODDetector | None:
        """Reference = the training embeddings (a random ``max_reference`` of them when more); threshold = the
        ``quantile`` of the held-out ``val_vectors``' scores. None when there are too few of either."""
        ref = _normalised(train_vectors)
        val = _normalised(val_vectors)
        if len(ref) < k or len(val) < MIN_VALIDATION:
            return None
        if len(ref) > max_reference:
            ref = ref[np.random.default_rng(seed).choice(len(ref), max_reference, replace=False)]
        detector = cls(ref.astype(np.float16), 0.0, int(k))
        val_scores = detector.scores(val)
        detector.threshold = float(np.quantile(val_scores, quantile))
        detector.info = {
            "method": "knn",
            "k": int(k),
            "quantile": float(quantile),
            "reference": len(ref),
            "validation_photos": len(val),
            "validation_median": float(np.median(val_scores)),
            "validation_flagged": float(np.mean(val_scores > detector.threshold)),
        }
        return detector

    # ------------------------------------------------------------------ the model folder's ood.npz
    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / OOD_FILE
        buf = io.BytesIO()
        np.savez(
            buf,
            reference=self.reference.astype(np.float16),
            threshold=np.float64(self.threshold),
            k=np.int64(self.k),
            info=np.array(json.dumps(self.info)),
        )
        atomic_write_bytes(path, buf.getvalue())
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> OODDetector | None:
        """The folder's detector, or None for folders trained before ``ood.npz`` existed."""
        path = Path(model_dir) / OOD_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(
                data["reference"],
                float(data["threshold"]),
                int(data["k"]),
                json.loads(str(data["info"])),
            )


__all__ = ["OOD_FILE", "Familiarity", "OODDetector"]
