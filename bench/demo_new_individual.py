"""The demo claim: a real photo of a whale not in the catalogue no longer outranks "New individual" with a
high score.

Issue 10 found three real flukes, none in the catalogue, each matched to a synthetic demo whale at cosine
0.93-0.97, above "New individual". This ranks every real fluke photo in ``--real`` (read at run time, never
copied into the project) against a demo-like synthetic gallery with a model folder, exactly as the worker
does (``ml.fused_ranking.suggest`` with stored-feature re-ranking when the folder has calibration.json,
else cosine and the folder's threshold), and prints where "new individual" lands and the top probability.

    python bench/demo_new_individual.py --model var/ml/models/demo-1 --gallery var/ml/runs/1/data
    python bench/demo_new_individual.py --model DIR --gallery DIR --real ../shared/real-flukes/flukes

Controls: synthetic whales not in the catalogue (in distribution), synthetic re-sightings, and the real flukes
themselves joined to the catalogue and re-sighted by a re-photographed copy: out of distribution too, so they
show that a flagged photo's true match is still found (``--no-real-resightings`` skips it).

``--gallery``: a folder with ``train.csv`` (Image,Id) and ``images/`` (what seed_demo exports and trains on;
or ``ml.synth.generate_dataset``'s output).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/real_reid.py's rephotograph

import numpy as np  # noqa: E402

from ml.gallery import GalleryIndex, insert_new_whale  # noqa: E402
from ml.identifier import Identifier  # noqa: E402
from ml.types import NEW_WHALE  # noqa: E402


def read_gallery(folder: Path) -> list[tuple[Path, str]]:
    with open(folder / "train.csv", newline="") as fh:
        return [(folder / "images" / row["Image"], row["Id"]) for row in csv.DictReader(fh) if row["Id"] != NEW_WHALE]


def build(ident: Identifier, photos: list[tuple[Path, str]]):
    """The gallery index and each photo's stored features, as the site keeps them."""
    crops = [ident.prepare(str(path)).crop for path, _ in photos]
    vectors = ident.embed(crops)
    index = GalleryIndex(vectors.shape[1])
    index.add([str(i) for i in range(len(photos))], [label for _, label in photos], vectors)
    by_label: dict[str, list] = {}
    for i, ((_, label), crop) in enumerate(zip(photos, crops)):
        by_label.setdefault(label, []).append((str(i), ident.local_features(crop)))
    return index, by_label


def rank(
    ident: Identifier, index, by_label, path: Path, exclude: str | None = None
) -> tuple[list[tuple[str, float]], str, bool | None]:
    """(label, score) top 6 as the review page lists them, what the score is, and the photo's OOD flag
    (``Identifier.familiarity``; None when the folder has no detector). A flagged photo's cosine is not
    trusted, as in the worker (``identification.pipeline.process.rank_photo``). ``exclude``: a gallery item left
    out of the index and the stored features (a re-sighting queried with its own photo held back)."""
    from ml.fused_ranking import suggest

    prepared = ident.prepare(str(path))
    vector = ident.embed([prepared.crop])[0]
    familiar = ident.familiarity(vector, prepared.crop)
    flagged = None if familiar is None else familiar.flagged
    if ident.calibration is None:
        ranked = insert_new_whale(index.rank(vector, k=5, exclude_items={exclude} - {None}), ident.new_threshold, 6)
        return [(m.label, m.score) for m in ranked], "cosine", flagged
    suggestions = suggest(
        index,
        vector,
        ident.calibration,
        ident.local_features(prepared.crop),
        k=6,
        features_for=lambda labels: {lab: [f for f in by_label.get(lab, []) if f[0] != exclude] for lab in labels},
        exclude_items=[exclude] if exclude is not None else [],
        trust_embedding=not flagged,
    )
    return [(s.label, s.probability) for s in suggestions], "P(same)", flagged


def report(ident: Identifier, index, by_label, photos: list[Path], what_photos: str, high: float) -> int:
    """Rank each photo, print a line each and a summary; returns how many outranked "new individual" at >= high."""
    new_ranks, tops, outranked_high, flags = [], [], 0, []
    what = "score"
    for path in photos:
        ranked, what, flagged = rank(ident, index, by_label, path)
        flags.append(flagged)
        labels = [lab for lab, _ in ranked]
        new_rank = labels.index(NEW_WHALE) + 1 if NEW_WHALE in labels else len(labels) + 1
        top = max(score for lab, score in ranked if lab != NEW_WHALE)
        new_ranks.append(new_rank)
        tops.append(top)
        outranked_high += new_rank > 1 and top >= high
        flag = "" if flagged is None else "  flagged: unlike the training photos" if flagged else "  familiar"
        print(f"{path.name[:12]}  new individual at #{new_rank}  top candidate {what} {top:.3f}{flag}")
    detector = "no OOD detector in the folder" if ident.ood is None else f"flagged {sum(map(bool, flags))}"
    print(
        f"{len(photos)} {what_photos} (none in the catalogue): new individual first for {new_ranks.count(1)}, "
        f"median top {what} {np.median(tops):.3f}, max {max(tops):.3f}; outranked by a candidate at >= {high}: "
        f"{outranked_high}; out of distribution: {detector}"
    )
    return outranked_high


class Resightings:
    """The tally of re-sighted whales' rankings: top candidate, above "new individual", the true whale's P."""

    def __init__(self):
        self.found, self.above_new, self.tops, self.flags, self.what = 0, 0, [], 0, "score"

    def add(self, ranked: list[tuple[str, float]], what: str, flagged: bool | None, label: str) -> None:
        candidates = [(lab, p) for lab, p in ranked if lab != NEW_WHALE]
        hit = bool(candidates) and candidates[0][0] == label
        self.found += hit
        self.above_new += ranked[0][0] == label
        self.tops.append(candidates[0][1] if hit else 0.0)
        self.flags += bool(flagged)
        self.what = what

    def print(self, kind: str, high: float) -> int:
        print(
            f"{len(self.tops)} {kind}: true whale the top candidate for {self.found}, ranked above new individual for "
            f"{self.above_new}, at {self.what} >= {high} for {sum(t >= high for t in self.tops)} (median "
            f"{np.median(self.tops):.3f}); out of distribution: flagged {self.flags}"
        )
        return self.found


def resightings(ident: Identifier, index, by_label, photos: list[tuple[Path, str]], n: int, high: float) -> int:
    """Re-sighted whales (in distribution, must still be found): the first photo of ``n`` catalogued whales,
    queried with that photo held out of the gallery (its other photos stay). Returns how many ranked first."""
    first: dict[str, int] = {}
    for i, (_, label) in enumerate(photos):
        first.setdefault(label, i)
    tally = Resightings()
    for label, i in sorted(first.items())[:n]:
        ranked, what, flagged = rank(ident, index, by_label, photos[i][0], exclude=str(i))
        tally.add(ranked, what, flagged, label)
    return tally.print("synthetic re-sightings (another photo of the whale in the catalogue)", high)


def real_resightings(ident: Identifier, index, by_label, real: list[Path], seed: int, high: float) -> int:
    """Real flukes re-sighted (out of distribution like the strangers, but these must still be found): each
    original joins the catalogue as a whale of its own, and a re-photographed copy (another crop, tilt,
    perspective, light, blur, JPEG: ``bench/real_reid.py``'s ``rephotograph``) is the query. Run last: it adds
    the originals to the gallery. Returns how many ranked first."""
    import tempfile

    from PIL import Image, ImageOps
    from real_reid import rephotograph

    crops = [ident.prepare(str(path)).crop for path in real]
    ids, labels = [f"real-{k}" for k in range(len(real))], [f"real-{path.stem}" for path in real]
    index.add(ids, labels, ident.embed(crops))
    for item, label, crop in zip(ids, labels, crops):
        by_label.setdefault(label, []).append((item, ident.local_features(crop)))
    rng = np.random.default_rng(seed)
    tally = Resightings()
    with tempfile.TemporaryDirectory(prefix="demo-resighted-") as tmp:
        for path, label in zip(real, labels):
            copy = Path(tmp) / path.name
            rephotograph(ImageOps.exif_transpose(Image.open(path)), rng).convert("RGB").save(copy, quality=90)
            ranked, what, flagged = rank(ident, index, by_label, copy)
            tally.add(ranked, what, flagged, label)
    return tally.print("real re-sightings (the original in the catalogue, a re-photographed copy queried)", high)


def synthetic_strangers(n: int, seed: int) -> list[Path]:
    """``n`` synthetic whales the catalogue does not hold (one photo each, a seed of their own), in a temporary
    folder: the in-distribution control. They should rarely be flagged."""
    import tempfile

    from ml.synth import generate_dataset

    out = Path(tempfile.mkdtemp(prefix="demo-strangers-"))
    generate_dataset(out, individuals=n, photos=1, seed=seed, progress=False)
    return sorted((out / "images").glob("*.jpg"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (e.g. seed_demo's)")
    ap.add_argument("--gallery", required=True, help="folder with train.csv and images/ (synthetic)")
    ap.add_argument("--real", default=str(Path(__file__).resolve().parents[2] / "shared" / "real-flukes" / "flukes"))
    ap.add_argument("--high", type=float, default=0.8, help="a top score at or above this counts as 'high'")
    ap.add_argument("--strangers", type=int, default=20, help="synthetic whales not in the catalogue (0: none)")
    ap.add_argument("--strangers-seed", type=int, default=991)
    ap.add_argument("--resightings", type=int, default=10, help="catalogued whales re-queried (0: none)")
    ap.add_argument("--no-real-resightings", dest="real_resightings", action="store_false",
                    help="skip the last control (the real flukes joined to the catalogue and re-sighted)")  # fmt: skip
    args = ap.parse_args(argv)
    ident = Identifier.load(args.model, device="cpu")
    t = time.perf_counter()
    gallery = read_gallery(Path(args.gallery))
    index, by_label = build(ident, gallery)
    print(
        f"model {args.model} ({'calibrated' if ident.calibrated else 'no calibration: cosine'}), gallery "
        f"{len(index)} synthetic photos of {len(by_label)} whales built in {time.perf_counter() - t:.0f} s"
    )
    outranked = report(ident, index, by_label, sorted(Path(args.real).glob("*.jpg")), "real flukes", args.high)
    print(f"[claim: no real fluke outranks new individual at >= {args.high}: {'OK' if outranked == 0 else 'MISS'}]")
    if args.strangers:
        print("control: synthetic whales not in the catalogue (in distribution: rarely flagged)")
        report(ident, index, by_label, synthetic_strangers(args.strangers, args.strangers_seed), "synthetic", args.high)
    if args.resightings:
        print("control: synthetic whales in the catalogue, re-sighted (must still be found)")
        resightings(ident, index, by_label, gallery, args.resightings, args.high)
    if args.real_resightings:
        print("control: the real flukes added to the catalogue, each re-sighted (out of distribution; must be found)")
        real_resightings(ident, index, by_label, sorted(Path(args.real).glob("*.jpg")), args.strangers_seed, args.high)


if __name__ == "__main__":
    main()
