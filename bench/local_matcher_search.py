"""Choose a species profile's local-feature matching on individuals that are never evaluated (issue 16).

RootSIFT + RANSAC has four knobs: what SIFT reads (the standardized crop, or CLAHE-equalised:
``ml.local_features.CONTRASTS``), how many keypoints a photo keeps, Lowe's ratio, and the geometry RANSAC
fits (``ml.local_features.GEOMETRIC_MODELS``: a similarity, an affine map, a homography). The humpback
fluke's settings (500 keypoints, ratio 0.8, similarity) were set on flukes: a flat, rigid trailing edge. A
seal's face turns in three dimensions, and a right whale's head is seen through moving water. This bench
scores each combination on the *train* individuals of ``bench/profile_reid.py``'s split (closed set, the
same selection as ``bench/profile_crop_search.py``: one source photo of each individual in the gallery, a photo
of another as the query), at the profile's own crop, so that the matching a profile ships is picked here and
measured on the eval individuals there.

    python bench/local_matcher_search.py [--set seal_face] [--keypoints 500,1000] [--contrasts standardized,clahe]

Each row prints RootSIFT-alone MAP@5 on those train individuals; the descriptor matching is done once per
pair and keypoint count, and every ratio and geometry is verified on it.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_crop_search as S  # noqa: E402
import profile_reid as P  # noqa: E402

from ml import local_features as L  # noqa: E402
from ml.preprocess import preprocess  # noqa: E402
from ml.profiles import PROFILES  # noqa: E402


def inlier_tables(feats, gallery, queries, ratios, models, ransac_px) -> dict[tuple, np.ndarray]:
    """{(ratio, model, px): (Q, G) inliers}, the nearest-neighbour search done once per pair."""
    keys = list(itertools.product(ratios, models, ransac_px))
    out = {key: np.zeros((len(queries), len(gallery)), np.float32) for key in keys}
    for a, q in enumerate(tqdm(queries, desc="pairs", leave=False)):
        for b, g in enumerate(gallery):
            qi, ci, r = L.nearest_two(feats[q], feats[g])
            for ratio in ratios:
                keep = r < ratio
                src, dst = feats[q].keypoints[qi[keep]], feats[g].keypoints[ci[keep]]
                for model, px in itertools.product(models, ransac_px):
                    out[(ratio, model, px)][a, b] = L.verify(src, dst, px, model).inliers
    return out


def main(argv=None) -> int:
    ap = S.selection_parser(__doc__)
    ap.add_argument("--keypoints", default="500,1000")
    ap.add_argument("--ratios", default="0.75,0.8,0.85,0.9")
    ap.add_argument("--models", default=",".join(L.GEOMETRIC_MODELS))
    ap.add_argument("--ransac-px", default="6")
    ap.add_argument("--contrasts", default="standardized", help=f"of {', '.join(L.CONTRASTS)}")
    args = ap.parse_args(argv)
    args.sets = args.set
    profile = PROFILES[args.set]
    (raw,) = P.load_sets(args)
    gallery, queries = S.selection_part(raw)
    print(f"{raw.title}: train individuals only, gallery {len(gallery)} photos, {len(queries)} queries")
    print(f"crop {profile.crop}")
    photos = sorted(set(gallery) | set(queries))
    crops = {p: preprocess(raw.photos[p], None, crop=profile.crop) for p in photos}
    ratios = [float(r) for r in args.ratios.split(",")]
    models = args.models.split(",")
    pxs = [float(p) for p in args.ransac_px.split(",")]
    print(f"{'contrast':>13}{'keypoints':>10}{'ratio':>7}{'model':>12}{'px':>5}{'RootSIFT MAP@5':>16}")
    for contrast, n in itertools.product(args.contrasts.split(","), [int(k) for k in args.keypoints.split(",")]):
        t0 = time.perf_counter()
        feats = {p: L.extract(c, max_keypoints=n, contrast=contrast) for p, c in crops.items()}
        tables = inlier_tables(feats, gallery, queries, ratios, models, pxs)
        for (ratio, model, px), inl in tables.items():
            score = S.map5(inl, raw, gallery, queries)
            print(f"{contrast:>13}{n:>10}{ratio:>7.2f}{model:>12}{px:>5.0f}{score:>16.3f}")
        print(f"  ({time.perf_counter() - t0:.0f} s for {contrast}, {n} keypoints)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
