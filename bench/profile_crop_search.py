"""Choose a species profile's crop on individuals that are never evaluated (issue 16).

``bench/profile_reid.py`` reports each profile against the humpback-fluke settings on *eval* individuals. A crop
chosen by looking at those figures would be tuned on the test. This bench scores candidate crops on the *train*
individuals of the same split instead (no model is trained here: frozen EfficientNet-Lite0 cosine and RootSIFT
inliers, closed set, best photo per individual; one source photo of each individual in the gallery, a photo from
another source photo as the query), so that the crop a profile ships can be picked here and measured there.

    python bench/profile_crop_search.py [--set seal_face]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_reid as P  # noqa: E402
import real_reid as R  # noqa: E402

from ml import local_features as L  # noqa: E402
from ml.metrics import map_at_k  # noqa: E402
from ml.preprocess import preprocess  # noqa: E402
from ml.profiles import HUMPBACK_FLUKE, PROFILES, Crop  # noqa: E402

CANDIDATES = {
    "square, no margin": Crop(aspect=1.0, margin_left=0.0, margin_right=0.0, margin_top=0.0, margin_bottom=0.0),
    "square, 10% margin": Crop(aspect=1.0),
    "square, 25% margin": Crop(aspect=1.0, margin_left=0.25, margin_right=0.25, margin_top=0.25, margin_bottom=0.25),
    "1.5, no margin": Crop(aspect=1.5, margin_left=0.0, margin_right=0.0, margin_top=0.0, margin_bottom=0.0),
    "2.09, no margin": Crop(aspect=2.09, margin_left=0.0, margin_right=0.0, margin_top=0.0, margin_bottom=0.0),
    "humpback fluke (2.09, seed 000 margins)": HUMPBACK_FLUKE.crop,
}


def selection_part(raw: P.RawSet) -> tuple[list[int], list[int]]:
    """(gallery, queries) among the train individuals: one source photo's photos in the gallery, one photo of
    another source photo as the query."""
    by_id = R._by_individual(raw.labels, raw.groups, raw.split.train)
    gallery, queries = [], []
    for ind in sorted(by_id):
        groups = [by_id[ind][g] for g in sorted(by_id[ind])]
        if len(groups) >= 2:
            gallery += groups[0]
            queries.append(groups[1][0])
    return gallery, queries


def top5(scores: np.ndarray, raw: P.RawSet, gallery: list[int], queries: list[int]) -> tuple[list[str], list]:
    """(each query's truth, its five best individuals by the best photo's score)."""
    inds, best = R.per_individual(scores, [raw.labels[i] for i in gallery])
    return [raw.labels[q] for q in queries], [[inds[j] for j in np.argsort(-row)[:5]] for row in best]


def map5(scores: np.ndarray, raw: P.RawSet, gallery: list[int], queries: list[int]) -> float:
    return map_at_k(*top5(scores, raw, gallery, queries), 5)


def score(raw: P.RawSet, crop: Crop, enc, gallery, queries) -> tuple[float, float]:
    photos = sorted(set(gallery) | set(queries))
    at = {p: k for k, p in enumerate(photos)}
    crops = np.stack([preprocess(raw.photos[p], None, crop=crop) for p in photos]).astype(np.float32)
    with torch.inference_mode():
        v = np.concatenate([enc(torch.from_numpy(crops[s])[:, None]).numpy() for s in R._batches(len(crops), 32)])
    v = R._normalize(v)
    g, q = [at[p] for p in gallery], [at[p] for p in queries]
    cos = v[q] @ v[g].T
    feats = [L.extract(c) for c in crops]
    inl = np.array([[L.match(feats[a], feats[b]).inliers for b in g] for a in q], np.float32)
    return map5(cos, raw, gallery, queries), map5(inl, raw, gallery, queries)


def selection_parser(doc: str) -> argparse.ArgumentParser:
    """The set and ``bench/profile_reid.py``'s split: what every search on train individuals takes."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="seal_face", choices=("seal_face", "right_whale_head"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--calib-fraction", type=float, default=0.15)
    return ap


def main(argv=None) -> int:
    args = selection_parser(__doc__).parse_args(argv)
    args.sets = args.set
    torch.set_num_threads(2)
    from ml.backbones import create_encoder

    enc = create_encoder(P.ARCH).eval()
    (raw,) = P.load_sets(args)
    gallery, queries = selection_part(raw)
    print(f"{raw.title}: train individuals only, gallery {len(gallery)} photos, {len(queries)} queries")
    print(f"current profile crop: {PROFILES[args.set].crop}")
    print(f"{'crop':<42}{'cosine MAP@5':>14}{'RootSIFT MAP@5':>16}{'mean':>8}{'s':>6}")
    for name, crop in CANDIDATES.items():
        t0 = time.perf_counter()
        cos, inl = score(raw, crop, enc, gallery, queries)
        print(f"{name:<42}{cos:>14.3f}{inl:>16.3f}{(cos + inl) / 2:>8.3f}{time.perf_counter() - t0:>6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
