import numpy as np
import pytest

from ml.gallery import GalleryIndex
from ml.types import NEW_WHALE, Match


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _data(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    v = _unit(rng.normal(size=(n, d)))
    ids = [f"img{i}" for i in range(n)]
    labels = [f"whale{i % 37}" for i in range(n)]
    return ids, labels, v


def test_exact_search_matches_numpy_brute_force():
    ids, labels, v = _data()
    g = GalleryIndex(16)
    g.add(ids[:100], labels[:100], v[:100])
    g.add(ids[100:], labels[100:], v[100:] * 3.0)  # not normalised: the index must normalise
    assert len(g) == 300 and not g.is_hnsw
    q = _unit(np.random.default_rng(1).normal(size=(10, 16)))
    scores, found = g.search(q, 5)
    sims = q @ v.T
    for i in range(10):
        order = np.argsort(-sims[i])[:5]
        assert found[i] == [ids[j] for j in order]
        np.testing.assert_allclose(scores[i], sims[i, order], atol=1e-5)


def test_remove_add_save_load_roundtrip(tmp_path):
    ids, labels, v = _data(100)
    g = GalleryIndex(16)
    g.add(ids, labels, v)
    assert g.remove(["img0", "img1", "nope"]) == 2
    assert len(g) == 98 and "img0" not in g
    _, found = g.search(v[:2], 3)
    assert "img0" not in found[0] and "img1" not in found[1]
    # replacing an id keeps one copy
    g.add(["img5"], ["whaleX"], v[7:8])
    assert len(g) == 98
    assert g.rank(v[7], k=1)[0].label in {"whaleX", labels[7]}
    g.save(tmp_path / "gal")
    h = GalleryIndex.load(tmp_path / "gal")
    assert len(h) == len(g)
    assert sorted(h.item_ids) == sorted(g.item_ids)
    assert dict(zip(h.item_ids, h.labels)) == dict(zip(g.item_ids, g.labels))
    q = v[10:20]
    s1, f1 = g.search(q, 5)
    s2, f2 = h.search(q, 5)
    assert f1 == f2
    np.testing.assert_allclose(s1, s2, atol=1e-6)


@pytest.mark.parametrize("hnsw_threshold", [1000, 50])
def test_save_without_compacting_keeps_tombstones_and_the_built_index(tmp_path, hnsw_threshold):
    ids, labels, v = _data(200)
    g = GalleryIndex(16, hnsw_threshold=hnsw_threshold)
    g.add(ids, labels, v)
    g.remove(["img3", "img4"])
    g.add(["img5"], ["whaleX"], v[9:10])  # replaced: its old row is a tombstone too
    g.save(tmp_path / "gal", compact=False)
    h = GalleryIndex.load(tmp_path / "gal")
    assert h._index.ntotal == g._index.ntotal == 201 and h.is_hnsw == g.is_hnsw == (hnsw_threshold == 50)
    assert len(h) == len(g) == 198 and "img3" not in h and "img5" in h
    assert dict(zip(h.item_ids, h.labels)) == dict(zip(g.item_ids, g.labels))
    q = v[:40]
    assert h.search(q, 5)[1] == g.search(q, 5)[1]
    assert all("img3" not in found and "img4" not in found for found in h.search(v[3:5], 5)[1])
    h.remove(["img6"])  # it goes on working as an index
    assert len(h) == 197 and "img6" not in h.search(v[6:7], 5)[1][0]


def test_tombstones_compact_after_20_percent():
    ids, labels, v = _data(100)
    g = GalleryIndex(16)
    g.add(ids, labels, v)
    g.remove(ids[:30])
    assert len(g) == 70
    assert g._index.ntotal == 70  # compacted


def test_hnsw_path_recall():
    rng = np.random.default_rng(0)
    centers = _unit(rng.normal(size=(50, 32)))
    v = _unit(centers[rng.integers(0, 50, 3000)] + 0.3 * rng.normal(size=(3000, 32)))
    ids = [str(i) for i in range(3000)]
    g = GalleryIndex(32, hnsw_threshold=1000)
    g.add(ids[:800], ids[:800], v[:800])
    assert not g.is_hnsw
    g.add(ids[800:], ids[800:], v[800:])
    assert g.is_hnsw and len(g) == 3000
    q = _unit(centers[rng.integers(0, 50, 100)] + 0.3 * rng.normal(size=(100, 32)))
    _, found = g.search(q, 5)
    exact = np.argsort(-(q @ v.T), axis=1)[:, :5]
    recall = np.mean([len(set(found[i]) & {ids[j] for j in exact[i]}) / 5 for i in range(100)])
    assert recall >= 0.95
    # removal on HNSW filters tombstones
    g.remove([found[0][0]])
    _, again = g.search(q[:1], 5)
    assert found[0][0] not in again[0]


def test_rank_aggregates_per_individual_and_inserts_new_whale():
    e = np.eye(4, dtype=np.float32)
    q = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    vecs = np.stack(
        [
            _unit([[1, 0.1, 0, 0]])[0],  # A, sim ~0.995
            _unit([[1, 0.5, 0, 0]])[0],  # A, sim ~0.894
            _unit([[1, 0.3, 0, 0]])[0],  # B, sim ~0.958
            _unit([[1, 1, 0, 0]])[0],  # C, sim ~0.707
            _unit([[0, 1, 1, 0]])[0],  # D, sim 0
            e[0],  # new_whale photo: never a candidate
        ]
    )
    g = GalleryIndex(4)
    g.add(["a1", "a2", "b1", "c1", "d1", "n1"], ["A", "A", "B", "C", "D", NEW_WHALE], vecs)
    r = g.rank(q, k=5)
    assert [m.label for m in r] == ["A", "B", "C", "D"]
    assert r[0].best_item == "a1"
    assert r[0].score == pytest.approx(float(vecs[0] @ q), abs=1e-5)
    r = g.rank(q, k=3, new_threshold=0.9)
    assert [m.label for m in r] == ["A", "B", NEW_WHALE]
    assert r[2] == Match(NEW_WHALE, 0.9, None)
    assert [m.label for m in g.rank(q, k=5, new_threshold=0.99)] == ["A", NEW_WHALE, "B", "C", "D"]
    assert [m.label for m in g.rank(q, k=2, new_threshold=1.5)] == [NEW_WHALE, "A"]
    assert [m.label for m in g.rank(q, k=2, exclude_items=["a1"])] == ["B", "A"]
    assert [m.label for m in g.rank(q, k=2, exclude_labels=["A"])] == ["B", "C"]
    batch = g.rank_batch(np.stack([q, e[2]]), k=1)
    assert batch[0][0].label == "A" and batch[1][0].label == "D"


def test_rank_finds_k_individuals_beyond_first_fetch():
    # 500 photos of one whale closest to the query: rank must still return 3 individuals
    rng = np.random.default_rng(0)
    q = np.zeros(8, dtype=np.float32)
    q[0] = 1
    near = _unit(np.c_[np.ones(500), 0.01 * rng.random((500, 7))])
    far = _unit(np.c_[np.full(2, 0.5), rng.random((2, 7))])
    g = GalleryIndex(8)
    g.add([f"n{i}" for i in range(500)], ["A"] * 500, near)
    g.add(["f0", "f1"], ["B", "C"], far)
    assert [m.label for m in g.rank(q, k=3)][0] == "A"
    assert {m.label for m in g.rank(q, k=3)} == {"A", "B", "C"}


def test_empty_gallery_and_bad_input():
    g = GalleryIndex(4)
    assert g.rank(np.ones(4), k=5) == []
    assert [m.label for m in g.rank(np.ones(4), k=5, new_threshold=0.5)] == [NEW_WHALE]
    with pytest.raises(ValueError):
        g.add(["a"], ["A"], np.ones((1, 3)))
    with pytest.raises(ValueError):
        g.add(["a", "a"], ["A", "A"], np.ones((2, 4)))


def test_ef_search_follows_the_gallery_size_unless_set(tmp_path):
    from ml.gallery import EF_SEARCH_LARGE, EF_SEARCH_STEPS, default_ef_search

    limit, small_ef = EF_SEARCH_STEPS[0]
    assert default_ef_search(1) == default_ef_search(limit) == small_ef < EF_SEARCH_LARGE
    assert default_ef_search(limit + 1) == EF_SEARCH_LARGE
    ids, labels, v = _data(120)
    auto = GalleryIndex(16, hnsw_threshold=50)
    auto.add(ids, labels, v)
    assert auto.is_hnsw and auto.ef_search is None and auto.effective_ef_search == small_ef
    fixed = GalleryIndex(16, hnsw_threshold=50, ef_search=200)
    fixed.add(ids, labels, v)
    assert fixed.effective_ef_search == 200
    for g, name in ((auto, "auto"), (fixed, "fixed")):
        g.rank(v[3], k=5)
        assert g._index.hnsw.efSearch == g.effective_ef_search  # what faiss searched with
        g.save(tmp_path / name)
        assert GalleryIndex.load(tmp_path / name).ef_search == g.ef_search
