"""Each species profile against the humpback-fluke settings on the same real photos (issue 16).

For every real set the same frozen pretrained EfficientNet-Lite0 (``ml.backbones``) embeds each photo twice: once
cropped with the set's own profile (``ml.profiles``: its margins and aspect) and once with the humpback fluke's
(seed 000's margins, widened to 2.09), which is what the site did to every photo before profiles. No localizer runs
(none exists for these body parts, and the site's pipeline then uses the whole photo as the box), so the crop
geometry is the only difference. Ranking: cosine, best photo per individual.

Protocol, split by individual: each individual with two photos or more puts half of them (at least one) in the
gallery and up to two others in the queries; seals are split by source photo (chips cut from one field photo are
near-duplicates) so that a query never shares a source photo with its gallery. The real dorsal fins (8 photos of 3
animals) are gallery photos, and their re-photographed copies (``bench/real_reid.py:rephotograph``: another crop,
tilt, perspective, light, blur, JPEG) are the queries. Closed set: every query's individual is in the gallery.

    python bench/profile_reid.py
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_reid import rephotograph, seal_source_photo  # noqa: E402

from ml.backbones import create_encoder  # noqa: E402
from ml.metrics import map_at_k, top_k_accuracy  # noqa: E402
from ml.preprocess import preprocess  # noqa: E402
from ml.profiles import HUMPBACK_FLUKE, PROFILES  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def _labels(folder: Path) -> list[tuple[Path, str]]:
    with open(folder / "labels.csv") as fh:
        return [(folder / "images" / r["Image"], r["Id"]) for r in csv.DictReader(fh)]


def split(items: list[tuple[Path, str]], group_of, seed: int) -> tuple[list, list]:
    """(gallery, queries) of ``(image, individual)``; a query's group (source photo) is never in the gallery."""
    by_id: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for path, ind in items:
        by_id[ind][group_of(path)].append((path, ind))
    rng = np.random.default_rng(seed)
    gallery, queries = [], []
    for ind in sorted(by_id):
        groups = [by_id[ind][g] for g in sorted(by_id[ind])]
        if len(groups) < 2:
            continue
        order = rng.permutation(len(groups))
        half = max(1, len(groups) // 2)
        gallery += [x for i in order[:half] for x in groups[i]]
        queries += [groups[i][0] for i in order[half:]][:2]
    return gallery, queries


def fins(seed: int, views: int = 3) -> tuple[list, list]:
    folder = SHARED / "real-flukes"
    with open(folder / "labels.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if "fin" in r["kind"]]
    gallery = [(folder / r["image"], r["individual_id"]) for r in rows]
    rng = np.random.default_rng(seed)
    queries = [(rephotograph(Image.open(p).convert("RGB"), rng), ind) for p, ind in gallery for _ in range(views)]
    return gallery, queries


class Embedder:
    def __init__(self, batch: int = 32):
        self.encoder = create_encoder("efficientnet_lite0").eval()
        self.batch = batch
        self.seconds = 0.0
        self.photos = 0

    def __call__(self, images: list, crop) -> np.ndarray:
        out = []
        start = time.perf_counter()
        for i in range(0, len(images), self.batch):
            crops = [
                preprocess(img if isinstance(img, Image.Image) else Image.open(img), None, size=224, crop=crop)
                for img in images[i : i + self.batch]
            ]
            with torch.inference_mode():
                v = self.encoder(torch.from_numpy(np.stack(crops)[:, None])).numpy()
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        self.seconds += time.perf_counter() - start
        self.photos += len(images)
        return np.concatenate(out)


def score(embed: Embedder, gallery: list, queries: list, crop) -> dict:
    g = embed([p for p, _ in gallery], crop)
    q = embed([p for p, _ in queries], crop)
    g_ids = [ind for _, ind in gallery]
    individuals = sorted(set(g_ids))
    cos = q @ g.T
    best = np.stack([cos[:, [j for j, x in enumerate(g_ids) if x == ind]].max(axis=1) for ind in individuals], axis=1)
    ranked = [[individuals[j] for j in np.argsort(-row)[:5]] for row in best]
    truth = [ind for _, ind in queries]
    return {
        "map5": map_at_k(truth, ranked, 5),
        "top1": top_k_accuracy(truth, ranked, 1),
        "top5": top_k_accuracy(truth, ranked, 5),
        "queries": len(queries),
        "individuals": len(individuals),
    }


def sets(seed: int) -> dict:
    rw = _labels(SHARED / "real-data" / "right-whales")
    seals = _labels(SHARED / "real-data" / "harbour-seals")
    return {
        "right_whale_head": ("right whales", split(rw, lambda p: p.name, seed)),
        "seal_face": ("harbour seals", split(seals, lambda p: seal_source_photo(p.name), seed)),
        "dolphin_fin": ("dorsal fins, re-photographed", fins(seed)),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    embed = Embedder()
    print(f"{'set':<30}{'settings':<22}{'MAP@5':>7}{'top-1':>7}{'top-5':>7}{'queries':>9}{'whales':>8}")
    for key, (name, (gallery, queries)) in sets(args.seed).items():
        rows = {}
        for label, crop in ((key, PROFILES[key].crop), ("humpback_fluke", HUMPBACK_FLUKE.crop)):
            rows[label] = r = score(embed, gallery, queries, crop)
            print(
                f"{name:<30}{label:<22}{r['map5']:>7.3f}{r['top1']:>7.3f}{r['top5']:>7.3f}"
                f"{r['queries']:>9}{r['individuals']:>8}"
            )
        ratio = rows[key]["map5"] / max(rows["humpback_fluke"]["map5"], 1e-9)
        print(f"{'':<30}{'profile / humpback':<22}{ratio:>7.2f}x MAP@5\n")
    print(f"{1000 * embed.seconds / max(embed.photos, 1):.1f} ms per photo (crop + frozen Lite0, this CPU)")


if __name__ == "__main__":
    main()
