"""RootSIFT local features, ratio-test matching and RANSAC verification (HotSpotter-style).

Why: a pretrained embedding ranks look-alikes close together; the exact arrangement of nicks,
scars and callosities is what tells two individuals apart. Keypoints that agree under one
geometric transform (RANSAC inliers) are strong evidence of the same animal, and a watcher can
see them: :func:`matched_pairs` gives the lines the review page draws between the two photos.

A gallery photo's features are computed once, when it joins the gallery, and stored
(:meth:`LocalFeatures.to_bytes`: 136 bytes a keypoint, at most ~68 kB a photo at 500 keypoints);
queries only match against the
embedding's shortlist (:func:`rerank`), never the whole gallery.

Coordinates are in the pixels of the picture the features were computed on (the 224x224 crop
in the pipeline); :func:`crop_to_photo` maps them back into the photo through the crop's box.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"RSF1"
DEFAULT_MAX_KEYPOINTS = 500
DEFAULT_RATIO = 0.8  # Lowe's ratio test
DEFAULT_RANSAC_PX = 6.0  # reprojection error (crop pixels) for an inlier
DEFAULT_SHORTLIST = 50  # individuals from the embedding ranking that get verified
MIN_MATCHES = 4
DESCRIPTOR_SCALE = 255.0  # RootSIFT components lie in [0, 1]: stored as uint8


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("local features need OpenCV: pip install opencv-python-headless") from exc
    return cv2


@dataclass(frozen=True)
class LocalFeatures:
    """One picture's RootSIFT keypoints (x, y) and descriptors (N, 128), and its size (w, h)."""

    keypoints: np.ndarray  # (N, 2) float32
    descriptors: np.ndarray  # (N, 128) uint8, RootSIFT x 255
    size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def float_descriptors(self) -> np.ndarray:
        return self.descriptors.astype(np.float32) / DESCRIPTOR_SCALE

    def to_bytes(self) -> bytes:
        """Compact storage for a gallery photo: a 12-byte header, float32 keypoints (sub-pixel,
        8 bytes each) and uint8 descriptors (128 bytes each)."""
        n = len(self)
        head = MAGIC + struct.pack("<IHH", n, int(self.size[0]), int(self.size[1]))
        return head + self.keypoints.astype("<f4").tobytes() + self.descriptors.astype(np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LocalFeatures:
        if blob[:4] != MAGIC:
            raise ValueError("not RootSIFT features (bad magic)")
        n, w, h = struct.unpack("<IHH", blob[4:12])
        kp_end = 12 + 8 * n
        if len(blob) != kp_end + 128 * n:
            raise ValueError("truncated RootSIFT features")
        kps = np.frombuffer(blob[12:kp_end], dtype="<f4").reshape(n, 2).astype(np.float32)
        desc = np.frombuffer(blob[kp_end:], dtype=np.uint8).reshape(n, 128).copy()
        return cls(kps, desc, (w, h))


@dataclass(frozen=True)
class MatchResult:
    """Geometric verification of one pair: RANSAC inliers and their point pairs (query xy, candidate xy)."""

    inliers: int
    tentative: int  # matches that passed the ratio test
    pairs: np.ndarray = field(repr=False)  # (inliers, 4) float32: xq, yq, xc, yc


@dataclass(frozen=True)
class Reranked:
    """One shortlisted individual: the embedding score, the best inlier count over its photos, and
    which of its photos gave it."""

    label: str
    embedding_score: float
    inliers: int
    best_photo: int  # index into that individual's feature list (-1: none)


def to_uint8(picture: np.ndarray) -> np.ndarray:
    """A standardized float crop (or any grey array) as uint8 for SIFT: z in [-3, 3] -> 0..255."""
    a = np.asarray(picture)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    if a.min() >= 0.0 and a.max() <= 1.0 + 1e-6:  # a [0, 1] picture (a standardized crop has negatives)
        return np.clip(a * 255.0, 0, 255).astype(np.uint8)
    return np.clip((a + 3.0) * (255.0 / 6.0), 0, 255).astype(np.uint8)


def root_sift(descriptors: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, then square root, so that the
    Euclidean distance compares descriptors like the Hellinger kernel."""
    d = np.asarray(descriptors, dtype=np.float32)
    d = d / (np.abs(d).sum(axis=1, keepdims=True) + eps)
    return np.sqrt(d)


CONTRASTS = ("standardized", "clahe")  # what SIFT reads: the crop as given, or locally equalised (``extract``)
CLAHE_CLIP, CLAHE_TILES = 2.0, 8


def extract(
    picture: np.ndarray, max_keypoints: int = DEFAULT_MAX_KEYPOINTS, contrast: str = "standardized"
) -> LocalFeatures:
    """RootSIFT features of a grey picture (standardized crop, [0, 1] or uint8). ``contrast="clahe"`` equalises
    it locally first (CLAHE, 8 x 8 tiles), for a profile whose photos are lit unevenly (glare, murky water); a
    profile picks it with ``bench/local_matcher_search.py`` (none does today: ``ml.profiles``)."""
    cv2 = _cv2()
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}: one of {', '.join(CONTRASTS)}")
    gray = to_uint8(picture)
    if contrast == "clahe":
        gray = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(CLAHE_TILES, CLAHE_TILES)).apply(gray)
    sift = cv2.SIFT_create(nfeatures=int(max_keypoints))
    kps, desc = sift.detectAndCompute(gray, None)
    h, w = gray.shape[:2]
    if desc is None or not kps:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (w, h))
    xy = np.array([k.pt for k in kps], dtype=np.float32)
    rs = np.clip(np.round(root_sift(desc) * DESCRIPTOR_SCALE), 0, 255).astype(np.uint8)
    return LocalFeatures(xy, rs, (w, h))


def nearest_two(q: LocalFeatures, c: LocalFeatures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query descriptor with two candidate neighbours: (query index, nearest candidate index,
    nearest / second-nearest distance). Lowe's ratio test keeps those below the ratio."""
    cv2 = _cv2()
    if len(q) < 2 or len(c) < 2:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(q.float_descriptors(), c.float_descriptors(), k=2)
    knn = [m for m in knn if len(m) == 2]
    qi = np.array([m[0].queryIdx for m in knn], int)
    ci = np.array([m[0].trainIdx for m in knn], int)
    r = np.array([m[0].distance / m[1].distance if m[1].distance > 0 else np.inf for m in knn], np.float32)
    return qi, ci, r


def _ratio_matches(q: LocalFeatures, c: LocalFeatures, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (query, candidate) of matches that pass Lowe's ratio test."""
    qi, ci, r = nearest_two(q, c)
    keep = r < ratio
    return qi[keep], ci[keep]


def match(
    query: LocalFeatures,
    candidate: LocalFeatures,
    ratio: float = DEFAULT_RATIO,
    ransac_px: float = DEFAULT_RANSAC_PX,
    model: str = "similarity",
) -> MatchResult:
    """Ratio test then RANSAC (:func:`verify`). The inlier count is the score."""
    qi, ci = _ratio_matches(query, candidate, ratio)
    return verify(query.keypoints[qi], candidate.keypoints[ci], ransac_px, model)


GEOMETRIC_MODELS = ("similarity", "affine", "homography")


def verify(src: np.ndarray, dst: np.ndarray, ransac_px: float = DEFAULT_RANSAC_PX, model: str = "similarity"):
    """RANSAC over matched points ``src`` -> ``dst``: ``model="similarity"`` (rotation, scale, shift: robust
    with few matches), ``"affine"`` (also shear and unequal scales: a head turned away foreshortens one
    direction) or ``"homography"`` (also perspective)."""
    cv2 = _cv2()
    if model not in GEOMETRIC_MODELS:
        raise ValueError(f"unknown model {model!r}: one of {', '.join(GEOMETRIC_MODELS)}")
    empty = MatchResult(0, int(len(src)), np.zeros((0, 4), np.float32))
    if len(src) < MIN_MATCHES:
        return empty
    if model == "homography":
        _, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransac_px)
    elif model == "affine":
        _, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=ransac_px)
    else:
        _, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=ransac_px)
    if mask is None:
        return empty
    keep = mask.ravel().astype(bool)
    pairs = np.concatenate([src[keep], dst[keep]], axis=1).astype(np.float32)
    return MatchResult(int(keep.sum()), int(len(src)), pairs)


def matched_pairs(
    query: LocalFeatures, candidate: LocalFeatures, **kw
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The RANSAC-verified point pairs ``((xq, yq), (xc, yc))``: the lines the review page draws."""
    return [((float(a), float(b)), (float(c), float(d))) for a, b, c, d in match(query, candidate, **kw).pairs]


def best_inliers(query: LocalFeatures, photos: Sequence[LocalFeatures], **kw) -> tuple[int, int]:
    """(most inliers over one individual's photos, which photo): the individual's local score."""
    best, which = 0, -1
    for i, feats in enumerate(photos):
        n = match(query, feats, **kw).inliers
        if n > best:
            best, which = n, i
    return best, which


def rerank(
    query: LocalFeatures,
    shortlist: Sequence[tuple[str, float]],
    gallery: Mapping[str, Sequence[LocalFeatures]] | Callable[[str], Sequence[LocalFeatures]],
    k: int = DEFAULT_SHORTLIST,
    **kw,
) -> list[Reranked]:
    """Verify the embedding's top-``k`` individuals ``(label, score)`` against their stored
    features (a mapping or a loader ``label -> [LocalFeatures]``). Returns them in the shortlist's
    order with the inlier count beside the embedding score; :mod:`ml.calibration` fuses the two."""
    load = gallery if callable(gallery) else (lambda label: gallery.get(label, ()))
    out = []
    for label, score in list(shortlist)[:k]:
        n, which = best_inliers(query, load(label), **kw)
        out.append(Reranked(label, float(score), n, which))
    return out


def crop_to_photo(points: np.ndarray, crop_box, size: int) -> np.ndarray:
    """Crop pixels -> photo pixels, for a crop made by ``ml.preprocess`` from ``crop_box`` (the
    widened box, ``ml.preprocess.crop_box``): ``x = x0 + u * (x1 - x0) / size``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    sx = (crop_box.x1 - crop_box.x0) / size
    sy = (crop_box.y1 - crop_box.y0) / size
    return np.stack([crop_box.x0 + p[:, 0] * sx, crop_box.y0 + p[:, 1] * sy], axis=1)


__all__ = [
    "LocalFeatures",
    "MatchResult",
    "Reranked",
    "to_uint8",
    "root_sift",
    "extract",
    "match",
    "nearest_two",
    "verify",
    "GEOMETRIC_MODELS",
    "matched_pairs",
    "best_inliers",
    "rerank",
    "crop_to_photo",
    "DEFAULT_SHORTLIST",
]
