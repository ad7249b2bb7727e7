"""Training recipes side by side: the same synthetic set, split and number of epochs for each.

For every recipe it prints the held-out known-whale MAP@5 twice: with the true query boxes, and with
boxes jittered the way a localizer errs (centre moved up to 10% of the box, size x0.85-1.15; the
gallery keeps its true boxes). A pixel kNN (cosine on the standardized crops) on the same split is
the floor any trained model must clear. Where a recipe's row sits against seed 000's full
augmentation from step one is what chose ``ml.train``'s defaults.

    python bench/recipe_sweep.py                                  # 40 whales x 8 photos, 96 px, 22 epochs
    python bench/recipe_sweep.py --recipes seed000_aug,light --epochs 10

Real photos (issue 10 item 5: does photometric augmentation help?): ``--data`` names a folder with
``labels.csv`` or ``train.csv`` (Image,Id) and ``images/``, read at run time and never copied into the
project (e.g. ``../shared/real-data/right-whales``: 224x224 aligned head crops, no boxes, so the whole photo is
the crop and the jittered column is left empty). The same split and epochs for both rows:

    python bench/recipe_sweep.py --data ../shared/real-data/right-whales --recipes pretrained,pretrained_photometric \
        --arch efficientnet_lite0 --size 224 --epochs 4 [--max-individuals 80]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ml.data import load_samples  # noqa: E402
from ml.identifier import Identifier  # noqa: E402
from ml.images import load_image  # noqa: E402
from ml.metrics import map_at_k  # noqa: E402
from ml.synth import generate_dataset  # noqa: E402
from ml.train import TrainConfig, train  # noqa: E402
from ml.types import NEW_WHALE, Box  # noqa: E402

SEED000_AUG = dict(rotation=20.0, zoom=0.2, shift=0.2, aug_warmup_epochs=0.0)
LIGHT_AUG = dict(rotation=5.0, zoom=0.05, shift=0.05, aug_warmup_epochs=0.0)
RECIPES = {  # every recipe names all the knobs it compares, so changing ml.train's defaults changes no row
    "seed000_aug": dict(arcface_s=30.0, arcface_m=0.5, **SEED000_AUG),
    "seed000_aug_softmax": dict(head="softmax", **SEED000_AUG),
    "seed000_aug_grid": dict(arcface_s=30.0, arcface_m=0.5, pooling="grid", **SEED000_AUG),
    "medium_aug": dict(arcface_s=30.0, arcface_m=0.5, rotation=10.0, zoom=0.1, shift=0.1, aug_warmup_epochs=0.0),
    "light_aug": dict(arcface_s=30.0, arcface_m=0.5, **LIGHT_AUG),
    "light_aug_grid": dict(arcface_s=30.0, arcface_m=0.5, pooling="grid", **LIGHT_AUG),
    "s16_m03": dict(arcface_s=16.0, arcface_m=0.3, **SEED000_AUG),
    "s16_m03_warmup10": dict(
        arcface_s=16.0, arcface_m=0.3, rotation=20.0, zoom=0.2, shift=0.2, aug_warmup_epochs=10.0, aug_start=0.25
    ),
    "s16_m03_light": dict(arcface_s=16.0, arcface_m=0.3, **LIGHT_AUG),
    # ml.presets.PRETRAINED's knobs (frozen encoder; pass --arch efficientnet_lite0 --size 224) without and with
    # ml.preprocess.PhotometricTransform (contrast, gamma, blur, JPEG, noise, occlusion)
    "pretrained": dict(trainable_blocks=0, photometric=False),
    "pretrained_photometric": dict(trainable_blocks=0, photometric=True),
}


def jitter(box: Box, rng: np.random.Generator, width: int, height: int) -> Box:
    bw, bh = box.x1 - box.x0, box.y1 - box.y0
    s = rng.uniform(0.85, 1.15)
    cx = (box.x0 + box.x1) / 2 + rng.uniform(-0.1, 0.1) * bw
    cy = (box.y0 + box.y1) / 2 + rng.uniform(-0.1, 0.1) * bh
    return Box(
        max(0.0, cx - s * bw / 2), max(0.0, cy - s * bh / 2), min(width, cx + s * bw / 2), min(height, cy + s * bh / 2)
    )


def top5(gallery: np.ndarray, labels: list[str], query: np.ndarray) -> list[str]:
    best: dict[str, float] = {}
    for label, score in zip(labels, gallery @ query):
        best[label] = max(best.get(label, -2.0), float(score))
    return [label for label, _ in sorted(best.items(), key=lambda kv: -kv[1])[:5]]


def real_subset(folder: Path, out: Path, max_individuals: int) -> Path:
    """``folder``'s labels as a ``train.csv`` under ``out`` (the first ``max_individuals`` individuals by name when
    > 0, else all): only the list is written; the photos stay where they are."""
    import csv as csv_module

    src = folder / "labels.csv" if (folder / "labels.csv").is_file() else folder / "train.csv"
    with open(src, newline="") as fh:
        rows = [(r["Image"], r["Id"]) for r in csv_module.DictReader(fh)]
    keep = sorted({label for _, label in rows})
    keep = set(keep[:max_individuals] if max_individuals > 0 else keep)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.csv", "w", newline="") as fh:
        writer = csv_module.writer(fh)
        writer.writerow(["Image", "Id"])
        writer.writerows(row for row in rows if row[1] in keep)
    return out / "train.csv"


def known_map5(run_dir: Path, csv: Path, images: Path, boxes: Path | None, jittered: bool) -> tuple[float, float]:
    """(model, pixel kNN) known-whale MAP@5 on the run's held-out queries."""
    split = json.loads((run_dir / "split.json").read_text())
    samples = {s.image: s for s in load_samples(csv, images, boxes)}
    ident = Identifier.load(run_dir, device="cpu")
    rng = np.random.default_rng(0)
    gallery = [samples[i] for i in split["train"]]
    queries = [q for q in split["val"] if q["truth"] != NEW_WHALE]
    q_samples = [samples[q["image"]] for q in queries]
    q_boxes = [jitter(s.box, rng, *load_image(s.path).size) if jittered else s.box for s in q_samples]

    def crops(items, item_boxes):
        return [ident.prepare(load_image(s.path, gray=True), box=b).crop for s, b in zip(items, item_boxes)]

    g_crops, q_crops = crops(gallery, [s.box for s in gallery]), crops(q_samples, q_boxes)
    g_labels = [s.label for s in gallery]
    truth = [q["truth"] for q in queries]
    g_emb, q_emb = ident.embed(g_crops), ident.embed(q_crops)

    def pixels(cs):
        flat = np.stack([c.ravel() for c in cs]).astype(np.float32)
        return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-8)

    g_px, q_px = pixels(g_crops), pixels(q_crops)
    model = map_at_k(truth, [top5(g_emb, g_labels, v) for v in q_emb])
    knn = map_at_k(truth, [top5(g_px, g_labels, v) for v in q_px])
    return model, knn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--individuals", type=int, default=40)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=22)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--seed", type=int, default=5, help="synthetic data seed")
    ap.add_argument("--data", default=None, help="a real set instead: folder with labels.csv/train.csv and images/")
    ap.add_argument("--max-individuals", type=int, default=0, help="--data: only the first N individuals (0: all)")
    args = ap.parse_args(argv)
    names = [n for n in args.recipes.split(",") if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    tmp = Path(tempfile.mkdtemp(prefix="recipe-sweep-"))
    if args.data:
        csv, images, boxes = real_subset(Path(args.data), tmp / "data", args.max_individuals), None, None
        images = Path(args.data) / "images"
        what = f"{args.data} ({sum(1 for _ in open(csv)) - 1} photos, no boxes: the whole photo is the crop)"
    else:
        data = tmp / "data"
        generate_dataset(str(data), args.individuals, args.photos, seed=args.seed)
        csv, images, boxes = data / "train.csv", data / "images", data / "boxes.csv"
        what = f"{args.individuals} synthetic whales x {args.photos} photos"
    print(
        f"{what}, {args.arch} {args.size} px, {args.epochs} epochs, "
        f"same split for every recipe (ml.train seed 0); data in {tmp}"
    )
    print(f"{'recipe':22s} {'time':>6s}  {'true boxes':>10s} {'jittered':>9s}   {'pixel kNN true / jittered':>26s}")
    for name in names:
        config = TrainConfig(
            csv=str(csv),
            images_dir=str(images),
            boxes_csv=str(boxes) if boxes else None,
            out_dir=str(tmp / name),
            arch=args.arch,
            image_size=args.size,
            epochs=args.epochs,
            num_workers=0,
            train_localizer=False,
            cache_dir=str(tmp / "cache"),
            progress_bar=False,
            **RECIPES[name],
        )
        t = time.perf_counter()
        train(config)
        elapsed = time.perf_counter() - t
        true_model, true_knn = known_map5(tmp / name, csv, images, boxes, jittered=False)
        if boxes is None:  # no boxes to jitter (real aligned crops)
            jittered = f"{'—':>9s}   {true_knn:12.3f} / —"
        else:
            jit_model, jit_knn = known_map5(tmp / name, csv, images, boxes, jittered=True)
            jittered = f"{jit_model:9.3f}   {true_knn:12.3f} / {jit_knn:.3f}"
        print(f"{name:22s} {elapsed:5.0f}s  {true_model:10.3f} {jittered}", flush=True)


if __name__ == "__main__":
    main()
