"""Decoding large JPEGs at libjpeg's DCT scale: time saved against how much the crop and embedding move.

Camera-sized photos make the decode and the passes over the photo dominate the pipeline
(bench/pipeline_vs_forward.py --image: 1.93x for a 12 MP photo). The crop reduces such a photo
by a large factor anyway, so the decoder could do part of it (``Image.draft`` at 1/2, 1/4, 1/8).
This measures that option before anything ships: for each photo, the full-resolution path (the
pipeline's ``Identifier.open`` + ``prepare``) against a decode at scale 1/k followed by the same
crop of the same box (divided by k), both timed right after a ResNet forward. Reported per k: the
photos where the crop still has at least ``image_size`` rows (the rest would need the full
decode), median decode+crop ms, the largest crop difference (in standard deviations of the crop)
and the cosine between the two embeddings under a trained model.

    python -m ml synth --out /tmp/ds --individuals 40 --photos 6 --seed 0
    python -m ml train --csv /tmp/ds/train.csv --images /tmp/ds/images --out /tmp/ds-model --epochs 8 \\
        --arch resnet18 --image-size 96
    python bench/decode_scale.py --model /tmp/ds-model            # ../shared/real-flukes/flukes by default
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.identifier import Identifier  # noqa: E402
from ml.models import create_model  # noqa: E402
from ml.preprocess import crop_box, preprocess  # noqa: E402
from ml.types import Box  # noqa: E402

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "real-flukes" / "flukes"


def decode_at(data: bytes, k: int) -> tuple[Image.Image, float]:
    """Luma at DCT scale 1/k (EXIF-oriented); returns the image and original width / decoded width."""
    im = Image.open(io.BytesIO(data))
    width = im.width
    im.draft("L", (math.ceil(im.width / k), math.ceil(im.height / k)))
    im.load()
    scale = width / im.width
    im = ImageOps.exif_transpose(im) or im
    return (im if im.mode == "L" else im.convert("L")), scale


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a trained model folder (python -m ml train)")
    ap.add_argument("--images", default=str(REAL_DIR))
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    ident = Identifier.load(args.model, device="cpu")
    size = ident.image_size
    flush = create_model("resnet50", embedding_dim=512, num_classes=10).eval()
    x = torch.randn(1, 1, 224, 224)

    def cold(fn):
        times = []
        for _ in range(args.repeats):
            with torch.inference_mode():
                flush.embed(x)
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return out, float(np.median(times) * 1000)

    paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    rows = {k: [] for k in [1, *args.scales]}
    for path in tqdm(paths, desc="photos"):
        data = path.read_bytes()
        full = ident.open(data)
        loc = ident.localize(full)
        box = loc.box
        (crop_full, t_full) = cold(lambda: ident.prepare(ident.open(data), box=box, upside_down=False).crop)
        emb_full = ident.embed([crop_full])[0]
        rows[1].append((path.name, full.size, t_full, 0.0, 1.0))
        for k in args.scales:

            def small_path():
                img, s = decode_at(data, k)
                b = Box(box.x0 / s, box.y0 / s, box.x1 / s, box.y1 / s)
                return preprocess(img, b, size=size), img, b

            (crop_k, img_k, box_k), t_k = cold(small_path)
            if crop_box(box_k, *img_k.size).height < size:
                continue  # the crop would be upsampled: this photo needs the full decode
            diff = float(np.abs(crop_k - crop_full).max())
            cos = float(emb_full @ ident.embed([crop_k])[0])
            rows[k].append((path.name, img_k.size, t_k, diff, cos))
    n = len(paths)
    print(
        f"{n} photos from {args.images}; model {args.model} ({size} px crops); decode + crop timed after a "
        f"ResNet50 forward, median of {args.repeats}"
    )
    print(
        "| decode | photos it can serve | median decode+crop ms | vs full, same photos | max crop diff (std) | "
        "embedding cosine, min / median |"
    )
    print("|---|---|---|---|---|---|")
    full_ms = {name: t for name, _, t, _, _ in rows[1]}
    for k, r in rows.items():
        if not r:
            print(f"| 1/{k} | 0 of {n} | | | | |")
            continue
        ms = np.median([t for _, _, t, _, _ in r])
        base = np.median([full_ms[name] for name, *_ in r])
        cos = [c for *_, c in r]
        print(
            f"| 1/{k} | {len(r)} of {n} | {ms:.1f} | {ms / base:.2f}x | {max(d for *_, d, _ in r):.3f} | "
            f"{min(cos):.4f} / {np.median(cos):.4f} |"
        )
    name, shape, t, _, _ = max(rows[1], key=lambda r: r[1][0] * r[1][1])
    by_k = ", ".join(
        f"1/{k} {t_k:.1f} ms (cos {c:.4f})" for k in args.scales for nm, _, t_k, _, c in rows[k] if nm == name
    )
    print(f"largest photo {name} ({shape[0]}x{shape[1]}): full {t:.1f} ms; {by_k}")


if __name__ == "__main__":
    main()
