"""Occlusion maps (seed 002): where does the model look when it matches two flukes?

A grey square (0 = the mean after per-image standardisation) slides over the QUERY
crop; every occluded copy is embedded in one batch and compared (cosine) with the
candidate's embedding. The heat at a pixel is the mean similarity drop over the
squares covering it, clipped at 0 and scaled to 0..1: hot = the part of the query
fluke that made it look like the candidate.

Cost: ``n*n + 2`` forwards with ``n = 1 + (size - patch) / stride``. The default is a
64 px square (2/7 of the crop) on a 4x4 grid, stride 54 (18 forwards at
224 px): a ResNet50 forward costs ~70-100 ms per image on the 2-core CPU, so that keeps
one pair near the ~2 s budget (bench/occlusion_speed.py, bench/README.md). Pass
``patch``/``stride`` (e.g. 56/28 = 7x7, 51 forwards) for a finer map on a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

DEFAULT_GRID = 4


class Embedder(Protocol):
    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass
class Occlusion:
    heatmap: np.ndarray  # (H, W) float32 in 0..1 (1 = biggest similarity drop)
    overlay: Image.Image  # RGB crop with the heat-map blended in
    base_similarity: float  # cosine similarity of the un-occluded pair
    max_drop: float = 0.0  # largest similarity drop of a single square (before scaling)
    patch: int = 0
    stride: int = 0
    forwards: int = 0
    seconds: float = 0.0


def _positions(size: int, patch: int, stride: int) -> list[int]:
    pos = list(range(0, max(1, size - patch + 1), stride))
    if pos[-1] != size - patch:  # always reach the far edge so every pixel is covered
        pos.append(size - patch)
    return pos


def default_patch_stride(size: int, grid: int = DEFAULT_GRID) -> tuple[int, int]:
    patch = max(1, round(size * 2 / 7))  # 64 px at 224: neighbouring squares overlap a little
    stride = max(1, int(np.ceil((size - patch) / max(1, grid - 1))))
    return patch, stride


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def colorize(heat: np.ndarray) -> np.ndarray:
    """0..1 -> RGB uint8 with a jet-like map (blue, cyan, yellow, red)."""
    h = np.clip(heat, 0, 1)[..., None]
    r = np.clip(1.5 - np.abs(4 * h - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * h - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * h - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).astype(np.uint8)


def overlay_heatmap(crop: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """Blend the coloured heat-map over a grayscale crop (any float range), weighted by heat."""
    c = np.asarray(crop, dtype=np.float32)
    if c.ndim == 3:
        c = c.mean(axis=0) if c.shape[0] in (1, 3) else c.mean(axis=-1)
    lo, hi = float(c.min()), float(c.max())
    gray = (c - lo) / (hi - lo + 1e-12) * 255
    base = np.repeat(gray[..., None], 3, axis=-1)
    weight = alpha * np.clip(heat, 0, 1)[..., None] ** 0.7
    out = base * (1 - weight) + colorize(heat).astype(np.float32) * weight
    return Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")


def occlusion_map(
    identifier: Embedder,
    query_crop: np.ndarray,
    candidate_crop: np.ndarray,
    patch: int | None = None,
    stride: int | None = None,
    fill: float = 0.0,
    batch_size: int = 64,
) -> Occlusion:
    """Occlude the query crop square by square and map the drop in similarity to the candidate.

    ``identifier``: anything with ``.embed(list[np.ndarray]) -> (N, D)`` (ml.identifier.Identifier,
    or a toy embedder in tests). Crops are float32 (H, W) standardised arrays as produced by
    ``ml.preprocess.preprocess``.
    """
    started = time.perf_counter()
    q = np.asarray(query_crop, dtype=np.float32)
    if q.ndim != 2:
        raise ValueError(f"query crop must be (H, W), got shape {q.shape}")
    h, w = q.shape
    size = min(h, w)
    d_patch, d_stride = default_patch_stride(size)
    patch = int(patch or d_patch)
    stride = int(stride or d_stride)
    if not (0 < patch <= size) or stride <= 0:
        raise ValueError(f"bad patch/stride {patch}/{stride} for a {h}x{w} crop")

    ys, xs = _positions(h, patch, stride), _positions(w, patch, stride)
    batch = [q, np.asarray(candidate_crop, dtype=np.float32)]
    for y in ys:
        for x in xs:
            occ = q.copy()
            occ[y : y + patch, x : x + patch] = fill
            batch.append(occ)
    emb = []
    for i in range(0, len(batch), batch_size):
        emb.append(np.asarray(identifier.embed(batch[i : i + batch_size]), dtype=np.float32))
    e = _unit(np.concatenate(emb, axis=0))
    base = float(e[0] @ e[1])
    drops = base - e[2:] @ e[1]

    total = np.zeros((h, w), dtype=np.float64)
    cover = np.zeros((h, w), dtype=np.float64)
    i = 0
    for y in ys:
        for x in xs:
            total[y : y + patch, x : x + patch] += drops[i]
            cover[y : y + patch, x : x + patch] += 1
            i += 1
    heat = np.clip(total / np.maximum(cover, 1), 0, None)
    peak = float(heat.max())
    heat = (heat / peak if peak > 0 else heat).astype(np.float32)
    return Occlusion(
        heatmap=heat,
        overlay=overlay_heatmap(q, heat),
        base_similarity=base,
        max_drop=float(max(0.0, drops.max())),
        patch=patch,
        stride=stride,
        forwards=len(batch),
        seconds=time.perf_counter() - started,
    )
