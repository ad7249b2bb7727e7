"""Top-5 search in a large gallery: HNSW (GalleryIndex) vs exact, side by side in one run.

Clustered synthetic embeddings: ``n / photos`` individuals, each photo a noisy view of its
individual's centre (cosine ~0.8 to the centre, like a trained model's embeddings);
queries are fresh views of random individuals. Reports ms/query for single-query
calls (the site's case), recall@5 of HNSW against exact search, and build times.

    python bench/gallery_search.py                      # 1M x 512 (needs ~8 GB RAM, long HNSW build)
    python bench/gallery_search.py --n 200000 --ef 64 128 256
    (the built HNSW gallery is saved under --save and loaded by the next run with the same settings)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.gallery import EF_CONSTRUCTION, HNSW_THRESHOLD, GalleryIndex, l2_normalize  # noqa: E402


def clustered(
    n: int, dim: int, photos: int, noise: float, rng: np.random.Generator, chunk: int = 100_000, groups: int = 1000
):
    """Two-level clusters: ``groups`` broad groups (pose/lighting/population look-alikes), individuals
    around them, photos around the individuals (exactly ``photos`` each)."""
    group_centres = l2_normalize(rng.standard_normal((groups, dim), dtype=np.float32))
    n_ind = max(1, n // photos)
    centres = l2_normalize(
        group_centres[rng.integers(0, groups, n_ind)]
        + rng.standard_normal((n_ind, dim), dtype=np.float32) / np.sqrt(dim)
    )
    labels = rng.permutation(np.arange(n) % n_ind)
    out = np.empty((n, dim), dtype=np.float32)
    for i in tqdm(range(0, n, chunk), desc="vectors", leave=False):
        j = slice(i, min(n, i + chunk))
        out[j] = l2_normalize(
            centres[labels[j]] + noise / np.sqrt(dim) * rng.standard_normal((j.stop - i, dim), dtype=np.float32)
        )
    return centres, labels, out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--photos", type=int, default=5, help="photos per individual")
    ap.add_argument("--noise", type=float, default=0.75, help="noise norm relative to the centre (0.75 -> cos ~0.8)")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=EF_CONSTRUCTION)
    ap.add_argument(
        "--ef",
        nargs="+",
        default=["auto", 64, 128, 256],
        help="efSearch values to compare; 'auto' = GalleryIndex's default for this size",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--save",
        default="/tmp/whalesite-bench-hnsw",
        help="keep the built gallery here (GalleryIndex.save) and load it next time; '' = don't",
    )
    return ap


def _exact_baseline(args, vectors, queries):
    """The exact index, its batched top-5 (the ground truth) and its single-query time."""
    t = time.perf_counter()
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(vectors)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    _, truth = exact.search(queries, 5)  # batched ground truth
    t_batch = (time.perf_counter() - t) / args.queries
    n_single = min(args.queries, 50)
    t = time.perf_counter()
    for i in tqdm(range(n_single), desc="exact single queries", leave=False):
        exact.search(queries[i : i + 1], 5)
    t_single = (time.perf_counter() - t) / n_single
    print(f"build: exact {t_build:.1f} s")
    print(
        f"exact IndexFlatIP: {t_single * 1000:.2f} ms/query single, {t_batch * 1000:.3f} ms/query "
        f"batched ({args.queries} queries)"
    )
    return exact, truth, t_single


def _hnsw_gallery(args, vectors, ids, str_labels) -> GalleryIndex:
    """The HNSW gallery: loaded from an earlier run's save when there is one (the production way)."""
    folder = (
        Path(f"{args.save}-{args.n}x{args.dim}-M{args.m}-efc{args.ef_construction}-s{args.seed}") if args.save else None
    )
    if folder is not None and (folder / "meta.json").is_file():
        t = time.perf_counter()
        gallery = GalleryIndex.load(folder)
        print(f"HNSW gallery loaded from {folder} in {time.perf_counter() - t:.1f} s (built by an earlier run)")
        return gallery
    gallery = GalleryIndex(
        args.dim, hnsw_threshold=min(HNSW_THRESHOLD, args.n - 1), hnsw_m=args.m, ef_construction=args.ef_construction
    )
    t = time.perf_counter()
    step = 50_000  # added in chunks for a progress bar; past the threshold each chunk goes into the graph
    for i in tqdm(range(0, args.n, step), desc="building HNSW", unit="chunk"):
        gallery.add(ids[i : i + step], str_labels[i : i + step], vectors[i : i + step])
    t_build = time.perf_counter() - t
    print(
        f"build: HNSW (M={args.m}, efConstruction={args.ef_construction}, faiss threads "
        f"{faiss.omp_get_max_threads()}) {t_build:.1f} s ({args.n / t_build:,.0f} vectors/s)"
    )
    if folder is not None:
        t = time.perf_counter()
        gallery.save(folder)
        print(f"saved to {folder} in {time.perf_counter() - t:.1f} s")
    return gallery


def _exact_individuals(exact, queries, str_labels) -> list[set]:
    """Exact top-5 individuals (max similarity per individual), for rank()'s recall."""
    _, deep = exact.search(queries[:100], 200)
    out = []
    for row in deep:
        seen = []
        for r in row:
            lab = str_labels[r]
            if lab not in seen:
                seen.append(lab)
        out.append(set(seen[:5]))
    return out


def _compare_ef(args, gallery, queries, truth_sets, exact_ind, t_exact_single) -> None:
    for ef in args.ef:
        gallery.ef_search = None if str(ef) == "auto" else int(ef)
        ef = f"auto ({gallery.effective_ef_search})" if gallery.ef_search is None else ef
        found, times = [], []
        for i in tqdm(range(args.queries), desc=f"HNSW ef={ef}", leave=False):
            t = time.perf_counter()
            _, hit = gallery.search(queries[i : i + 1], 5)
            times.append(time.perf_counter() - t)
            found.append({int(h) for h in hit[0]})
        recall = np.mean([len(f & s) / 5 for f, s in zip(found, truth_sets)])
        t_rank = time.perf_counter()
        n_rank = min(100, args.queries)
        ranks = [gallery.rank(queries[i], k=5) for i in range(n_rank)]
        t_rank = (time.perf_counter() - t_rank) / n_rank
        ind_recall = np.mean([len({m.label for m in r} & s) / 5 for r, s in zip(ranks, exact_ind[:n_rank])])
        ms = np.median(times) * 1000
        print(
            f"HNSW efSearch={ef}: {ms:.2f} ms/query median (p95 {np.percentile(times, 95) * 1000:.2f}), "
            f"recall@5 {recall:.4f}, speed-up vs exact single {t_exact_single * 1000 / ms:.0f}x; "
            f"rank() top-5 individuals {t_rank * 1000:.2f} ms/query, individual recall@5 {ind_recall:.4f}   "
            f"[targets <= 5 ms, >= 0.99: {'OK' if ms <= 5 and recall >= 0.99 else 'MISS'}]"
        )


def main(argv=None):
    args = _parser().parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(
        f"gallery {args.n:,} x {args.dim}, {args.n // args.photos:,} individuals, faiss threads "
        f"{faiss.omp_get_max_threads()}"
    )
    centres, labels, vectors = clustered(args.n, args.dim, args.photos, args.noise, rng)
    q_labels = rng.integers(0, len(centres), args.queries)
    queries = l2_normalize(
        centres[q_labels]
        + args.noise / np.sqrt(args.dim) * rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    )
    str_labels = [str(v) for v in labels]
    exact, truth, t_exact_single = _exact_baseline(args, vectors, queries)
    gallery = _hnsw_gallery(args, vectors, [str(i) for i in range(args.n)], str_labels)
    assert gallery.is_hnsw
    del vectors
    truth_sets = [set(map(int, row)) for row in truth]
    _compare_ef(args, gallery, queries, truth_sets, _exact_individuals(exact, queries, str_labels), t_exact_single)


if __name__ == "__main__":
    main()
