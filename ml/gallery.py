"""Cosine nearest-neighbour gallery of fluke embeddings (FAISS).

Vectors are L2-normalised on the way in, so inner product == cosine similarity.
While the gallery is small (``len <= hnsw_threshold``, default 20,000) the index is exact
(``IndexFlatIP``); once it grows past the threshold it is rebuilt as an HNSW graph
(``IndexHNSWFlat``, ``METRIC_INNER_PRODUCT``), which answers a top-5 query over a
million 512-d vectors in a few milliseconds with recall@5 ~0.99 (see
``bench/gallery_search.py``).

Removal: HNSW graphs cannot delete nodes, so ``remove`` only marks rows as
tombstones (for both index kinds, to keep one code path); searches over-fetch and
filter them out; the index is compacted (rebuilt from the kept vectors) when
tombstones exceed 20% of the rows. The raw vectors are kept beside the index so
it can always be rebuilt (and so ``save`` / ``load`` round-trip exactly).

Thread safety: every public method takes an internal ``threading.RLock``, so one
``GalleryIndex`` may be shared by threads (searches are then serialised, which is
fine because FAISS already uses all cores inside one search). It is *not* safe
across processes: each worker process should ``GalleryIndex.load`` its own copy
and reload it when the gallery file changes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ml.types import NEW_WHALE, Match

TOMBSTONE_FRACTION = 0.20
# exact search above this many photos costs more than a backbone forward on a 2-core CPU
# (100k x 512 exact: ~22 ms/query idle vs ~1-2 ms HNSW; bench/pipeline_vs_forward.py)
HNSW_THRESHOLD = 20_000
# 1M clustered 512-d vectors (bench/gallery_search.py): efConstruction 80 left photo-level recall@5 stuck at
# 0.979 whatever the efSearch (sibling photos never linked at insert); 200 gives 0.998 at efSearch 128
EF_CONSTRUCTION = 200
# efSearch when the caller sets none, by gallery size. Recall falls as a gallery grows, so each step was measured
# at its upper end (bench/gallery_search.py, clustered 512-d vectors, M=32, efConstruction 200, 500 queries):
# 300k photos: photo recall@5 1.000 from efSearch 32 up, rank()'s individual recall@5 0.994 at 32, 0.998 at 64;
# 1M: photo recall@5 0.998 at 128. efSearch is most of a search's cost: 100k photos, right after a ResNet50
# forward, 128 -> 64 takes a search from ~2.3 to ~1.2 ms.
EF_SEARCH_STEPS = ((300_000, 64),)
EF_SEARCH_LARGE = 128
FORMAT_VERSION = 1


def default_ef_search(n_photos: int) -> int:
    """The HNSW efSearch a gallery of ``n_photos`` searches with unless told otherwise."""
    for limit, ef in EF_SEARCH_STEPS:
        if n_photos <= limit:
            return ef
    return EF_SEARCH_LARGE


def l2_normalize(vectors) -> np.ndarray:
    """Return a float32 C-contiguous copy with unit rows (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


def insert_new_whale(matches: list[Match], new_threshold: float, k: int) -> list[Match]:
    """Insert ``Match(NEW_WHALE, new_threshold)`` before the first match scoring
    below the threshold (Kaggle style) and keep ``k`` entries."""
    out = [m for m in matches if m.label != NEW_WHALE]
    pos = 0
    while pos < len(out) and out[pos].score >= new_threshold:
        pos += 1
    out.insert(pos, Match(NEW_WHALE, float(new_threshold), None))
    return out[:k]


class GalleryIndex:
    """Incremental cosine-similarity index of gallery photos labelled by individual."""

    def __init__(
        self,
        dim: int,
        hnsw_threshold: int = HNSW_THRESHOLD,
        hnsw_m: int = 32,
        ef_search: int | None = None,
        ef_construction: int = EF_CONSTRUCTION,
    ):
        if dim <= 0:
            raise ValueError("dim must be positive")
        self.dim = int(dim)
        self.hnsw_threshold = int(hnsw_threshold)
        self.hnsw_m = int(hnsw_m)
        self.ef_search = None if ef_search is None else int(ef_search)  # None: by size (default_ef_search)
        self.ef_construction = int(ef_construction)
        self._lock = threading.RLock()
        self._reset_storage()
        self._index = self._new_index(0)

    # ------------------------------------------------------------------ storage
    def _reset_storage(self) -> None:
        self._ids: list[str] = []  # one per index row (including tombstones)
        self._labels: list[str] = []
        self._chunks: list[np.ndarray] = []  # appended vectors, concatenated lazily
        self._vectors = np.zeros((0, self.dim), dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self._row_of: dict[str, int] = {}
        self._n_dead = 0

    def _all_vectors(self) -> np.ndarray:
        if self._chunks:
            self._vectors = np.concatenate([self._vectors, *self._chunks], axis=0)
            self._chunks = []
        return self._vectors

    @property
    def effective_ef_search(self) -> int:
        return self.ef_search if self.ef_search is not None else default_ef_search(len(self))

    @property
    def is_hnsw(self) -> bool:
        return isinstance(self._index, faiss.IndexHNSWFlat)

    def _new_index(self, n_alive: int):
        if n_alive > self.hnsw_threshold:
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            return index
        return faiss.IndexFlatIP(self.dim)

    def _rebuild(self) -> None:
        """Compact: drop tombstones and rebuild the right kind of index."""
        vectors = self._all_vectors()
        keep = np.flatnonzero(self._alive)
        ids = [self._ids[i] for i in keep]
        labels = [self._labels[i] for i in keep]
        kept = np.ascontiguousarray(vectors[keep])
        self._reset_storage()
        self._index = self._new_index(len(ids))
        if len(ids):
            self._append(ids, labels, kept)

    def _append(self, item_ids: list[str], labels: list[str], vectors: np.ndarray) -> None:
        start = len(self._ids)
        self._ids.extend(item_ids)
        self._labels.extend(labels)
        self._chunks.append(vectors)
        self._alive = np.concatenate([self._alive, np.ones(len(item_ids), dtype=bool)])
        for i, item in enumerate(item_ids):
            self._row_of[item] = start + i
        self._index.add(vectors)

    # ------------------------------------------------------------------ mutation
    def add(self, item_ids: Sequence[str], labels: Sequence[str], vectors) -> None:
        """Add photos. An id already present is replaced (removed, then added)."""
        item_ids = [str(i) for i in item_ids]
        labels = [str(label) for label in labels]
        vectors = l2_normalize(vectors)
        if not (len(item_ids) == len(labels) == len(vectors)):
            raise ValueError(
                f"item_ids ({len(item_ids)}), labels ({len(labels)}) and vectors "
                f"({len(vectors)}) must have the same length"
            )
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, index expects {self.dim}")
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("duplicate item ids in one add() call")
        if not item_ids:
            return
        with self._lock:
            replaced = [i for i in item_ids if i in self._row_of]
            if replaced:
                self._mark_dead(replaced)
            self._append(item_ids, labels, vectors)
            n_alive = len(self._ids) - self._n_dead
            crossed = not self.is_hnsw and n_alive > self.hnsw_threshold
            if crossed or self._n_dead > TOMBSTONE_FRACTION * len(self._ids):
                self._rebuild()

    def _mark_dead(self, item_ids: Iterable[str]) -> int:
        n = 0
        for item in item_ids:
            row = self._row_of.pop(item, None)
            if row is not None and self._alive[row]:
                self._alive[row] = False
                self._n_dead += 1
                n += 1
        return n

    def remove(self, item_ids: Iterable[str]) -> int:
        """Remove photos by id (unknown ids are ignored); returns how many were removed."""
        with self._lock:
            n = self._mark_dead([str(i) for i in item_ids])
            if self._n_dead and self._n_dead > TOMBSTONE_FRACTION * len(self._ids):
                self._rebuild()
            return n

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._ids) - self._n_dead

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._row_of

    @property
    def item_ids(self) -> list[str]:
        return [i for i, a in zip(self._ids, self._alive) if a]

    @property
    def labels(self) -> list[str]:
        """Labels of the live photos, aligned with ``item_ids``."""
        return [lab for lab, a in zip(self._labels, self._alive) if a]

    def vectors(self) -> np.ndarray:
        """Normalised vectors of the live photos, aligned with ``item_ids``."""
        with self._lock:
            return self._all_vectors()[self._alive].copy()

    def _search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live rows per query: (scores (Q,k) float32, rows (Q,k) int64, -1 = none)."""
        total = len(self._ids)
        n_alive = total - self._n_dead
        q = len(queries)
        out_s = np.full((q, k), -np.inf, dtype=np.float32)
        out_r = np.full((q, k), -1, dtype=np.int64)
        if n_alive == 0 or k <= 0:
            return out_s, out_r
        ef = self.effective_ef_search
        if self.is_hnsw:
            self._index.hnsw.efSearch = max(ef, k)
        fetch = min(total, k + self._n_dead) if self._n_dead <= 4 * k + 256 else min(total, 4 * k)
        todo = np.arange(q)
        while len(todo):
            scores, rows = self._index.search(queries[todo], fetch)
            if self.is_hnsw:
                self._index.hnsw.efSearch = max(ef, k)
            unfinished = []
            for j, qi in enumerate(todo):
                r = rows[j]
                ok = r >= 0
                ok[ok] = self._alive[r[ok]]
                sel_r, sel_s = r[ok][:k], scores[j][ok][:k]
                if len(sel_r) < min(k, n_alive) and fetch < total:
                    unfinished.append(qi)
                    continue
                out_s[qi, : len(sel_s)] = sel_s
                out_r[qi, : len(sel_r)] = sel_r
            todo = np.array(unfinished, dtype=np.int64)
            fetch = min(total, fetch * 4)
            if self.is_hnsw and len(todo):
                self._index.hnsw.efSearch = max(ef, fetch)
        return out_s, out_r

    def search(self, vectors, k: int) -> tuple[np.ndarray, list[list[str]]]:
        """Top-k photos per query: (scores (Q, k) float32, item ids). Rows with fewer
        than k live photos are padded with score -inf and no id."""
        queries = l2_normalize(vectors)
        with self._lock:
            scores, rows = self._search_rows(queries, k)
            ids = [[self._ids[r] for r in row if r >= 0] for row in rows]
        return scores, ids

    def rank(
        self,
        vector,
        k: int = 5,
        new_threshold: float | None = None,
        exclude_items: Iterable[str] = (),
        exclude_labels: Iterable[str] = (),
    ) -> list[Match]:
        """Top-k individuals for one query (max cosine similarity over their photos)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1, self.dim)[:1]  # rank_batch normalises it
        return self.rank_batch(query, k, new_threshold, [exclude_items], [exclude_labels])[0]

    def rank_batch(
        self, vectors, k: int = 5, new_threshold: float | None = None, exclude_items=None, exclude_labels=None
    ) -> list[list[Match]]:
        """``rank`` for many queries in one FAISS call.

        ``exclude_items`` / ``exclude_labels``: None, one iterable applied to every
        query, or a list with one iterable per query. Gallery photos labelled
        ``new_whale`` never appear as candidates.
        """
        queries = l2_normalize(vectors)
        q = len(queries)
        ex_items = _per_query(exclude_items, q)
        ex_labels = _per_query(exclude_labels, q)
        results: list[list[Match] | None] = [None] * q
        with self._lock:
            total = len(self)
            # photos to fetch for k individuals: a few per individual. The fetch bounds the HNSW efSearch from
            # below, so fetching 100 cost a 100k search twice its time; whales with many photos near the
            # query are handled by the retry below (4x the fetch each time).
            fetch = min(total, max(k * 8, 40))
            todo = list(range(q))
            while todo:
                scores, rows = self._search_rows(queries[todo], fetch)
                retry = []
                for j, qi in enumerate(todo):
                    best: dict[str, tuple[float, str]] = {}
                    bad_labels = ex_labels[qi] | {NEW_WHALE}
                    for s, r in zip(scores[j], rows[j]):
                        if r < 0:
                            break
                        item, label = self._ids[r], self._labels[r]
                        if label in bad_labels or item in ex_items[qi] or label in best:
                            continue  # rows come sorted, so the first hit is the max
                        best[label] = (float(s), item)
                    if len(best) < k and fetch < total:
                        retry.append(qi)
                        continue
                    matches = [Match(lab, s, it) for lab, (s, it) in best.items()]
                    matches.sort(key=lambda m: -m.score)
                    matches = matches[:k]
                    if new_threshold is not None:
                        matches = insert_new_whale(matches, new_threshold, k)
                    results[qi] = matches
                todo = retry
                fetch = min(total, fetch * 4)
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ persistence
    def save(self, path, compact: bool = True) -> Path:
        """Write ``path/`` (a folder): ``index.faiss``, ``items.npz`` (vectors), ``meta.json``.

        ``compact=False`` keeps removed photos as tombstones (a mask in ``items.npz``) instead of
        rebuilding the index first, which for a large HNSW gallery takes minutes (100k: ~80 s)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._n_dead and compact:
                self._rebuild()
            faiss.write_index(self._index, str(path / "tmp-index.faiss"))
            arrays: dict[str, Any] = {"vectors": self._all_vectors()}
            if self._n_dead:
                arrays["alive"] = self._alive
            np.savez(path / "tmp-items.npz", **arrays)
            meta = {
                "format": FORMAT_VERSION,
                "dim": self.dim,
                "hnsw_threshold": self.hnsw_threshold,
                "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search,
                "ef_construction": self.ef_construction,
                "item_ids": self._ids,
                "labels": self._labels,
            }
            (path / "tmp-meta.json").write_text(json.dumps(meta))
            for name in ("index.faiss", "items.npz", "meta.json"):  # meta last: it marks completeness
                (path / f"tmp-{name}").replace(path / name)
        return path

    @classmethod
    def load(cls, path) -> GalleryIndex:
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.exists():
            raise FileNotFoundError(f"no gallery at {path} (meta.json missing)")
        meta = json.loads(meta_file.read_text())
        self = cls(
            meta["dim"],
            hnsw_threshold=meta["hnsw_threshold"],
            hnsw_m=meta["hnsw_m"],
            ef_search=meta["ef_search"],
            ef_construction=meta.get("ef_construction", 80),
        )
        with np.load(path / "items.npz") as data:
            vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            alive = np.asarray(data["alive"], dtype=bool) if "alive" in data else np.ones(len(vectors), dtype=bool)
        ids, labels = list(meta["item_ids"]), list(meta["labels"])
        if len(ids) != len(labels) or len(ids) != len(vectors) or len(alive) != len(ids):
            raise ValueError(f"gallery at {path} is inconsistent (ids/labels/vectors lengths differ)")
        index = None
        index_file = path / "index.faiss"
        if index_file.exists():
            index = faiss.read_index(str(index_file))
            if index.ntotal != len(ids) or index.d != self.dim:
                index = None  # stale index: rebuild from the vectors
        if index is None:
            keep = np.flatnonzero(alive)
            self._index = self._new_index(len(keep))
            if len(keep):
                self._append([ids[i] for i in keep], [labels[i] for i in keep], np.ascontiguousarray(vectors[keep]))
        else:
            self._index = index
            self._ids, self._labels, self._vectors = ids, labels, vectors
            self._alive = alive
            self._n_dead = int((~alive).sum())
            self._row_of = {item: i for i, item in enumerate(ids) if alive[i]}
        return self


def _per_query(value, q: int) -> list[set[str]]:
    if value is None:
        return [set() for _ in range(q)]
    value = list(value)
    if len(value) == q and all(not isinstance(v, str) and isinstance(v, Iterable) for v in value):
        return [set(map(str, v)) for v in value]
    shared = set(map(str, value))
    return [shared for _ in range(q)]
