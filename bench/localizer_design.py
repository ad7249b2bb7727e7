"""Localizer designs: box quality against inference cost, side by side in one run.

The localizer is a visible share of the per-photo pipeline (bench/pipeline_vs_forward.py). A design
is a canvas size S (the photo letterboxed onto S x S), the channel widths of its five conv blocks
and its hidden layer. This trains ``ml.localizer.train_localizer`` on the same synthetic photos
(``ml.synth``; true boxes) once per design, with the same seed and steps, and reports on the same
held-out photos of other whales: IoU upright and rotated 180 degrees, the fraction of boxes with
IoU >= 0.7, upside-down accuracy, and the time of one photo through ``Localizer.predict``
(letterbox + forward) measured right after a ResNet50 forward, as in the pipeline (cold caches).

    python bench/localizer_design.py        # 128:16-32-64-96-128:128 (v1) vs lighter designs
    python bench/localizer_design.py --designs 128:16-32-64-96-128:128 96:16-32-64-96-128:128
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.localizer import iou, train_localizer  # noqa: E402
from ml.models import create_model  # noqa: E402
from ml.synth import render_photo  # noqa: E402


def photos(individuals: int, per: int, seed: int):
    images, boxes = [], []
    for ind in tqdm(range(individuals), desc="rendering", leave=False):
        for k in range(per):
            img, box = render_photo(ind + seed * 100_000, k, size=(768, 512))
            images.append(img.convert("L"))
            boxes.append(box)
    return images, boxes


def predict_ms(localizer, image, repeats: int, flush) -> float:
    x = torch.randn(1, 1, 224, 224)
    times = []
    for _ in range(repeats):
        with torch.inference_mode():
            flush.embed(x)  # evict the caches as the pipeline's previous photo does
        t = time.perf_counter()
        localizer.predict([image])
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--designs",
        nargs="+",
        default=["128:16-32-64-96-128:128", "128:8-16-32-64-96:128", "128:16-24-32-48-64:64", "96:16-32-64-96-128:128"],
        help="SIZE:W1-W2-W3-W4-W5:HIDDEN, the first is the baseline",
    )
    ap.add_argument("--individuals", type=int, default=100)
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--test", type=int, default=200, help="held-out photos (other individuals)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=25)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    train_images, train_boxes = photos(args.individuals, args.photos, args.seed)
    test_images, test_boxes = photos(max(1, args.test // args.photos), args.photos, args.seed + 1)
    rotated = [im.rotate(180) for im in test_images]
    rot_boxes = [
        type(b)(im.size[0] - b.x1, im.size[1] - b.y1, im.size[0] - b.x0, im.size[1] - b.y0)
        for im, b in zip(test_images, test_boxes)
    ]
    print(
        f"{len(train_images)} training photos, {len(test_images)} held-out photos of other whales, "
        f"torch threads {torch.get_num_threads()}"
    )
    flush = create_model("resnet50", embedding_dim=512, num_classes=10).eval()
    rows = []
    for design in args.designs:
        size, widths, hidden = design.split(":")
        size, widths, hidden = int(size), [int(w) for w in widths.split("-")], int(hidden)
        t = time.perf_counter()
        localizer, metrics = train_localizer(
            train_images, train_boxes, image_size=size, seed=args.seed, val_fraction=0.0, widths=widths, hidden=hidden
        )
        params = sum(p.numel() for p in localizer.net.parameters())
        seconds = time.perf_counter() - t
        up = localizer.predict_raw(test_images)
        down = localizer.predict_raw(rotated)
        ious = np.array([iou(p.box, b) for p, b in zip(up, test_boxes)])
        ious_rot = np.array([iou(p.box, b) for p, b in zip(down, rot_boxes)])
        upside = np.mean([not p.upside_down for p in up] + [p.upside_down for p in down])
        rows.append(
            (
                f"{design} ({params / 1000:.0f}k)",
                ious.mean(),
                ious_rot.mean(),
                (ious >= 0.7).mean(),
                upside,
                predict_ms(localizer, test_images[0], args.repeats, flush),
                metrics["steps"],
                seconds,
            )
        )
    print(
        "| design (params) | IoU upright | IoU rotated | IoU >= 0.7 | upside-down acc. | predict ms (cold) "
        "| steps | train s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.2f} | {r[6]} | {r[7]:.0f} |")
    base = rows[0]
    for r in rows[1:]:
        print(f"{r[0]} vs {base[0]}: IoU {r[1] - base[1]:+.3f}, predict {r[5] / base[5]:.2f}x the time")


if __name__ == "__main__":
    main()
