"""Localizer designs on real photos: the same embedding model, each localizer design trained on the same
synthetic boxes, then real-fluke MAP@5 with the localizer's crops (bench/map_synthetic.py's real benchmark:
``../shared/real-flukes/flukes`` re-photographed by augmentation) side by side with the whole photo.

bench/localizer_design.py judges designs by IoU on held-out synthetic photos; real photos have no boxes
here, so this judges them by what the crops do for identification.

    python -m ml synth --out /tmp/ds --individuals 40 --photos 6 --seed 0
    python -m ml train --csv /tmp/ds/train.csv --images /tmp/ds/images --out /tmp/ds-model --epochs 8 \\
        --arch resnet18 --image-size 96 --boxes /tmp/ds/boxes.csv
    python bench/localizer_real.py --model /tmp/ds-model --data /tmp/ds --seeds 0 1
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from map_synthetic import real_benchmark  # noqa: E402

from ml.identifier import Identifier  # noqa: E402
from ml.images import load_image  # noqa: E402
from ml.localizer import WIDTHS, WIDTHS_V1, train_localizer  # noqa: E402
from ml.types import Box  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a trained model folder (its embedding model is used)")
    ap.add_argument("--data", required=True, help="a python -m ml synth folder (images/ and boxes.csv)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--views", type=int, default=4, help="re-photographed queries per real fluke")
    args = ap.parse_args(argv)
    ident = Identifier.load(args.model, device="cpu")
    data = Path(args.data)
    with open(data / "boxes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = [load_image(data / "images" / r["Image"], gray=True) for r in rows]
    boxes = [Box(float(r["x0"]), float(r["y0"]), float(r["x1"]), float(r["y1"])) for r in rows]
    for seed in args.seeds:
        for name, widths in (("default", WIDTHS), ("first", WIDTHS_V1)):
            localizer, metrics = train_localizer(images, boxes, seed=seed, widths=widths, epochs=15)
            ident.localizer = localizer
            print(
                f"seed {seed}, {name} design {'-'.join(map(str, widths))}: synthetic val IoU "
                f"{metrics['val_iou_mean']:.3f}",
                flush=True,
            )
            real_benchmark({name: ident}, args.views, 0)


if __name__ == "__main__":
    main()
