"""The species classifier (``ml.species``) on held-out photos: accuracy and the confusion matrix over the profiles.

Train and test are split by individual (test individuals are never trained on):

- humpback_fluke: synthetic flukes (``ml.synth``) to train and test, plus the 19 real flukes of
  ``../shared/real-flukes/flukes`` as test photos only;
- dolphin_fin: synthetic fins (``ml.synth_fins``) to train and test, plus the 8 real fins as test photos only;
- right_whale_head, seal_face: the real re-sightings of ``../shared/real-data`` (split by individual).

Out-of-profile photos (noise, gradients, checkerboards) should come out "unknown". The last row is the site's
case once it has a catalogue (``manage.py train_species_classifier``): real flukes classified by a classifier that
also learned other real flukes, cross-validated by individual (``--catalogue-folds``). The real photos are only read
from ``../shared``: nothing here is copied into the project or a shipped model (the site's classifier is trained
by ``seed_demo`` on synthetic photos only).

    python bench/species_classifier.py --per-class 150 --features efficientnet_lite0
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.species import SpeciesClassifier, train_species_classifier  # noqa: E402
from ml.synth_fins import SYNTHESIZERS  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
UNKNOWN = "unknown"


def _by_individual(folder: Path, labels: str = "labels.csv") -> dict[str, list[Path]]:
    """``{individual: photos}`` of a Kaggle-style folder (``images/`` + an ``Image,Id`` CSV)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    with open(folder / labels) as fh:
        for row in csv.DictReader(fh):
            groups[row["Id"]].append(folder / "images" / row["Image"])
    return groups


def _split(groups: dict[str, list[Path]], per_class: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Individuals shuffled; the first 70 % train, the rest test; each side capped at ``per_class`` photos."""
    ids = sorted(groups)
    np.random.default_rng(seed).shuffle(ids)
    cut = int(len(ids) * 0.7)
    train = [p for i in ids[:cut] for p in groups[i]][:per_class]
    test = [p for i in ids[cut:] for p in groups[i]][: max(per_class // 2, 1)]
    return train, test


def _synthetic(kind: str, root: Path, per_class: int, seed: int) -> dict[str, list[Path]]:
    make = SYNTHESIZERS["humpback_fluke" if kind == "fluke" else "dolphin_fin"]
    individuals = max(per_class // 3, 4)
    make(root / kind, individuals=int(individuals * 1.5), photos=3, seed=seed, image_size=(640, 400), progress=False)
    return _by_individual(root / kind, "train.csv")


def _real_flukes(kind: str) -> list[Path]:
    folder = SHARED / "real-flukes" / kind
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _real_fluke_folds(k: int) -> list[list[Path]]:
    """The real flukes in ``k`` folds by individual (a whale's photos stay in one fold)."""
    folder = SHARED / "real-flukes"
    with open(folder / "labels.csv") as fh:
        rows = [(folder / r["image"], r["individual_id"]) for r in csv.DictReader(fh) if r["kind"] == "humpback_fluke"]
    ids = sorted({i for _, i in rows})
    return [[p for p, i in rows if ids.index(i) % k == f] for f in range(k)]


def catalogue_trained(train: dict, root: Path, folds: int, features: str, seed: int) -> dict[str, int]:
    """What a site's catalogue-trained classifier (``manage.py train_species_classifier``) gets right on real
    flukes: each fold of real flukes is classified by a classifier that also learned the other folds' real
    flukes (never the fold's own whales). ``{predicted: count}`` over all folds."""
    counts: dict[str, int] = defaultdict(int)
    parts = _real_fluke_folds(folds)
    for f, test in enumerate(parts):
        seen = [p for g, part in enumerate(parts) if g != f for p in part]
        data = {**train, "humpback_fluke": train["humpback_fluke"] + seen}
        train_species_classifier(data, root / f"fold{f}", features=features, seed=seed)
        for guess in SpeciesClassifier.load(root / f"fold{f}").predict_many(test):
            counts[guess.profile or UNKNOWN] += 1
    return dict(counts)


def _off_profile(root: Path, n: int, seed: int) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            a = rng.integers(0, 255, (300, 400))
        elif kind == 1:
            a = np.tile(np.linspace(0, 255, 400), (300, 1)) * rng.uniform(0.3, 1)
        else:
            a = (np.indices((300, 400)).sum(axis=0) // int(rng.integers(4, 30)) % 2) * 255
        path = root / f"off_{i}.png"
        Image.fromarray(a.astype(np.uint8)).save(path)
        out.append(path)
    return out


def build_sets(root: Path, per_class: int, seed: int) -> tuple[dict, dict]:
    train, test = {}, {}
    for key, kind in (("humpback_fluke", "fluke"), ("dolphin_fin", "fin")):
        train[key], test[key] = _split(_synthetic(kind, root, per_class, seed), per_class, seed)
    test["humpback_fluke (real)"] = _real_flukes("flukes")
    test["dolphin_fin (real)"] = _real_flukes("fins")
    for key, folder in (("right_whale_head", "right-whales"), ("seal_face", "harbour-seals")):
        train[key], test[key] = _split(_by_individual(SHARED / "real-data" / folder), per_class, seed)
    test["off-profile"] = _off_profile(root, 30, seed)
    return train, test


def confusion(model: SpeciesClassifier, test: dict) -> tuple[dict, float]:
    """``{test set: {predicted: count}}`` and the ms per photo."""
    rows: dict[str, dict[str, int]] = {}
    start, n = time.perf_counter(), 0
    for name, paths in test.items():
        counts: dict[str, int] = defaultdict(int)
        for guess in model.predict_many(paths):
            counts[guess.profile or UNKNOWN] += 1
        rows[name] = dict(counts)
        n += len(paths)
    return rows, 1000 * (time.perf_counter() - start) / max(n, 1)


def truth_of(name: str) -> str:
    return UNKNOWN if name == "off-profile" else name.split(" ")[0]


def report(rows: dict, columns: list[str], ms: float) -> None:
    width = max(len(r) for r in rows) + 2
    print(f"{'test set (truth)':<{width}}" + "".join(f"{c[:14]:>16}" for c in columns) + f"{'recall':>9}{'n':>6}")
    correct = total = 0
    for name, counts in rows.items():
        n = sum(counts.values())
        hit = counts.get(truth_of(name), 0)
        correct, total = correct + hit, total + n
        cells = "".join(f"{counts.get(c, 0):>16}" for c in columns)
        print(f"{name:<{width}}{cells}{hit / max(n, 1):>9.3f}{n:>6}")
    print(f"\naccuracy over all held-out photos (unknown counts as wrong except off-profile): {correct / total:.3f}")
    print(f"{ms:.1f} ms per photo (features + head, this CPU)")


def plot(rows: dict, columns: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    m = np.array([[rows[r].get(c, 0) / max(sum(rows[r].values()), 1) for c in columns] for r in names])
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(columns)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color="black" if m[i, j] < 0.6 else "white")
    ax.set_title("Species classifier on held-out photos (row: truth; share of the row)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=150, help="training photos per profile (test: half)")
    ap.add_argument("--features", default="efficientnet_lite0", choices=("efficientnet_lite0", "thumbnail"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="bench/out/species_confusion.png")
    ap.add_argument(
        "--catalogue-folds",
        type=int,
        default=3,
        help="also train with the real flukes of the other folds, as a site's catalogue would (0: skip)",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train, test = build_sets(root, args.per_class, args.seed)
        print("training photos:", {k: len(v) for k, v in train.items()})
        t0 = time.perf_counter()
        train_species_classifier(train, root / "model", features=args.features, seed=args.seed)
        print(f"trained in {time.perf_counter() - t0:.0f} s ({args.features})\n")
        rows, ms = confusion(SpeciesClassifier.load(root / "model"), test)
        if args.catalogue_folds:
            name = f"humpback_fluke (real, {args.catalogue_folds}-fold catalogue-trained)"
            rows[name] = catalogue_trained(train, root, args.catalogue_folds, args.features, args.seed)
    columns = sorted(train) + [UNKNOWN]
    report(rows, columns, ms)
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(rows, columns, Path(args.plot))


if __name__ == "__main__":
    main()
