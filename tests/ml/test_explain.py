"""Occlusion maps with toy embedders whose answer is known."""

import numpy as np
import pytest
from PIL import Image

from ml.explain import Occlusion, occlusion_map


class BlockMeans:
    """Embedding = 8x8 grid of block means (a 'model' that looks at every region equally)."""

    def __init__(self):
        self.calls = 0

    def embed(self, crops):
        self.calls += 1
        a = np.stack([np.asarray(c, dtype=np.float32) for c in crops])
        n, h, w = a.shape
        v = a.reshape(n, 8, h // 8, 8, w // 8).mean(axis=(2, 4)).reshape(n, 64) + 0.05
        return v / np.linalg.norm(v, axis=1, keepdims=True)


class LooksTopLeft:
    """A 'model' that only looks at the top-left quadrant."""

    def embed(self, crops):
        a = np.stack([np.asarray(c, dtype=np.float32) for c in crops])
        v = a[:, :32, :32].reshape(len(a), 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(a), -1) + 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(0, 0.05, (64, 64)).astype(np.float32)
    c = rng.normal(0, 0.05, (64, 64)).astype(np.float32)
    q[40:56, 8:24] += 3.0  # the shared marking
    c[40:56, 8:24] += 3.0
    return q, c


def test_shape_range_overlay_and_batching():
    q, c = _pair()
    emb = BlockMeans()
    occ = occlusion_map(emb, q, c)
    assert isinstance(occ, Occlusion)
    assert occ.heatmap.shape == (64, 64) and occ.heatmap.dtype == np.float32
    assert occ.heatmap.min() >= 0.0 and occ.heatmap.max() == pytest.approx(1.0)
    assert isinstance(occ.overlay, Image.Image) and occ.overlay.mode == "RGB" and occ.overlay.size == (64, 64)
    assert occ.base_similarity > 0.9
    assert occ.forwards == 4 * 4 + 2  # default grid
    assert emb.calls == 1  # all occluded copies in one batch


def test_occluding_the_shared_marking_drives_the_drop():
    q, c = _pair()
    occ = occlusion_map(BlockMeans(), q, c, patch=16, stride=8)
    heat = occ.heatmap
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert 40 <= y < 56 and 8 <= x < 24
    assert heat[40:56, 8:24].mean() > 3 * heat[:32, 32:].mean()
    assert occ.max_drop > 0.3


def test_heat_follows_where_the_model_looks():
    rng = np.random.default_rng(1)
    q = rng.normal(0, 1, (64, 64)).astype(np.float32)
    c = q + rng.normal(0, 0.1, (64, 64)).astype(np.float32)
    heat = occlusion_map(LooksTopLeft(), q, c, patch=16, stride=16).heatmap
    assert heat[:32, :32].mean() > 0.2
    assert heat[32:, :].max() == 0.0 and heat[:, 32:].max() == 0.0


def test_bad_input():
    with pytest.raises(ValueError):
        occlusion_map(BlockMeans(), np.zeros((2, 64, 64)), np.zeros((64, 64)))
    with pytest.raises(ValueError):
        occlusion_map(BlockMeans(), np.zeros((64, 64)), np.zeros((64, 64)), patch=100)
