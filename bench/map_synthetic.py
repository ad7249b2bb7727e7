"""MAP@5 on a synthetic benchmark: our recipe beside seed 000's, same data, same time budget.

* data: ``ml.synth.generate_dataset`` (default 500 individuals, 1-8 photos each); ml.train's
  leak-free split holds out 10% of individuals as ``new_whale`` queries (all their photos become
  queries, so the share of new queries is printed; it is above 10% for small runs).
  The shared crop cache is warmed first, so neither time budget pays for preprocessing;
  the localizer (trained for "ours" only, after its budget) is not counted either.
* ours: ml.train's default recipe (ArcFace s=16 m=0.3, augmentation warm-up), kNN over the gallery
  (``ml.gallery``, max cosine per individual),
  ``new_whale`` threshold chosen on the validation queries as training does (``ml.metrics.select_new_threshold``).
* seed 000: softmax head, Adam lr 0.005 decayed 0.9/epoch, horizontal flips, ranked by the
  classifier's top-5 probabilities (new_whale threshold on the top probability, chosen the same
  way, so both get the same help). Its kNN score is printed too.
* real photos (``../shared/real-flukes/flukes`` when present, read in place, never copied):
  each photo is one gallery view; ``--views`` augmented "re-photographs" (crop, scale,
  rotation, brightness, blur, JPEG) per photo are the queries; both models rank by kNN.

Both models are trained by ``ml.train.train`` with ``time_budget_s = --minutes * 60``.

    python bench/map_synthetic.py                                   # full: 500 ids, 10 min per model
    python bench/map_synthetic.py --individuals 60 --minutes 2 --arch resnet18 --size 128   # quick
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml.data import read_boxes_csv, read_labels_csv  # noqa: E402
from ml.gallery import GalleryIndex  # noqa: E402
from ml.identifier import Identifier  # noqa: E402
from ml.metrics import apply_new_threshold, map_at_k, select_new_threshold  # noqa: E402
from ml.synth import generate_dataset  # noqa: E402
from ml.train import TrainConfig, train  # noqa: E402
from ml.types import NEW_WHALE  # noqa: E402

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "real-flukes" / "flukes"


def knn_rankings(ident, gallery_vecs, gallery_labels, query_vecs):
    g = GalleryIndex(gallery_vecs.shape[1])
    g.add([str(i) for i in range(len(gallery_labels))], gallery_labels, gallery_vecs)
    return [[(m.label, m.score) for m in r] for r in g.rank_batch(query_vecs, k=5)]


def with_threshold(ranked, truth):
    choice = select_new_threshold(ranked, truth)
    return choice.map5, choice.threshold, map_at_k(truth, [[lab for lab, _ in r] for r in ranked])


@torch.no_grad()
def classifier_rankings(ident, crops):
    from ml.preprocess import EvalTransform

    tf = EvalTransform(ident.image_size)
    out = []
    for i in range(0, len(crops), 64):
        x = torch.stack([tf(c) for c in crops[i : i + 64]])
        prob = torch.softmax(ident.model(x).float(), dim=1)
        p, idx = prob.topk(min(5, prob.shape[1]), dim=1)
        out += [[(ident.classes[j], float(s)) for j, s in zip(ii, pp)] for ii, pp in zip(idx.tolist(), p.tolist())]
    return out


def rephotograph(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another 'photo' of the same fluke: crop/scale/rotate/brightness/blur/JPEG."""
    w, h = img.size
    dx, dy = rng.uniform(0, 0.12, 2) * (w, h)
    ex, ey = rng.uniform(0, 0.12, 2) * (w, h)
    im = img.crop((int(dx), int(dy), int(w - ex), int(h - ey)))
    im = im.rotate(float(rng.uniform(-8, 8)), resample=Image.BILINEAR, expand=False, fillcolor=None)
    s = rng.uniform(0.5, 1.0)
    im = im.resize((max(64, int(im.width * s)), max(64, int(im.height * s))), Image.BILINEAR)
    im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.7, 1.3)))
    im = ImageEnhance.Contrast(im).enhance(float(rng.uniform(0.7, 1.3)))
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=int(rng.integers(40, 90)))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def real_benchmark(idents: dict, views: int, seed: int):
    if not REAL_DIR.is_dir():
        print(f"real flukes: {REAL_DIR} not found, skipped")
        return
    from ml.images import load_image

    paths = sorted(p for p in REAL_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = [load_image(p) for p in paths]
    labels = [p.stem for p in paths]
    rng = np.random.default_rng(seed)
    queries = [(rephotograph(im, rng), lab) for im, lab in zip(photos, labels) for _ in range(views)]
    chance = float(np.mean([1 / (i + 1) for i in range(5)]) * 5 / len(labels))
    print(
        f"real flukes: {len(photos)} individuals, {len(queries)} re-photographed queries (chance MAP@5 ~{chance:.3f})"
    )
    for name, ident in idents.items():
        # whole photo (box=None) and the pipeline's own localizer, side by side
        for mode in ("whole photo", "localizer"):

            def prep(im):
                return (
                    ident.prepare(im, box=None).crop if mode == "localizer" else ident.prepare(im, box=_whole(im)).crop
                )

            if mode == "localizer" and ident.localizer is None:
                continue
            g = ident.embed([prep(im) for im in photos])
            q = ident.embed([prep(im) for im, _ in tqdm(queries, desc=f"{name} real queries", leave=False)])
            ranked = knn_rankings(ident, g, labels, q)
            m = map_at_k([lab for _, lab in queries], [[lab for lab, _ in r] for r in ranked])
            print(f"  {name:9s} kNN, {mode:11s}: MAP@5 {m:.3f}")


def _whole(im):
    from ml.types import Box

    return Box(0.0, 0.0, float(im.width), float(im.height))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--individuals", type=int, default=500)
    ap.add_argument("--photos", type=int, nargs=2, default=(1, 8), metavar=("MIN", "MAX"))
    ap.add_argument("--minutes", type=float, default=10.0, help="training time budget per model")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=200, help="upper bound; the time budget usually stops first")
    ap.add_argument("--views", type=int, default=4, help="re-photographed queries per real photo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="reuse/keep the synthetic data set in this folder")
    return ap


RECIPES = {
    "ours": dict(),  # ml.train's defaults: ArcFace s=16 m=0.3, Adam 0.005 x0.9/epoch, augmentation warm-up
    # seed 000: softmax, Adam 0.005 x0.9/epoch, flips, its full augmentation from the first step
    "seed000": dict(head="softmax", optimizer="adam", lr=0.005, hflip=True, aug_warmup_epochs=0.0),
}


def train_recipes(args, data: Path, tmp: Path) -> tuple[dict, dict]:
    """Each recipe trained for the same time budget; the identifiers and the training results."""
    idents, results = {}, {}
    common = dict(
        csv=str(data / "train.csv"),
        images_dir=str(data / "images"),
        boxes_csv=str(data / "boxes.csv"),
        arch=args.arch,
        image_size=args.size,
        batch_size=args.batch,
        seed=args.seed,
        new_individual_fraction=0.1,
        cache_dir=str(tmp / "cache"),
    )
    # warm the shared crop/hash cache first so that neither recipe's time budget pays for it
    train(TrainConfig(out_dir=str(tmp / "warmup"), epochs=1, max_steps=1, train_localizer=False, **common))
    for name, kw in RECIPES.items():
        bar = tqdm(desc=f"train {name}", unit="step")
        cfg = TrainConfig(
            out_dir=str(tmp / name),
            epochs=args.epochs,
            time_budget_s=args.minutes * 60,
            train_localizer=(name == "ours"),
            localizer_epochs=15,
            **common,
            **kw,
        )
        results[name] = train(cfg, progress=lambda p: bar.update(1) if p.phase == "train" else None)
        bar.close()
        idents[name] = Identifier.load(tmp / name, device="cpu")
    return idents, results


def report_recipes(args, data: Path, tmp: Path, idents: dict, results: dict) -> None:
    """kNN MAP@5 on the held-out individuals of the split, with the tuned new-whale threshold."""
    split = json.loads((tmp / "ours" / "split.json").read_text())
    labels_of = {image: label for image, label, _ in read_labels_csv(data / "train.csv")}
    boxes = read_boxes_csv(data / "boxes.csv")
    gallery_imgs = split["train"]
    val = split["val"]
    truth = [v["truth"] for v in val]
    n_new = sum(t == NEW_WHALE for t in truth)
    print(
        f"\nsynthetic: {args.individuals} individuals, {len(gallery_imgs)} gallery photos, {len(val)} queries "
        f"({n_new} new = {n_new / max(1, len(val)):.0%}); {args.arch} {args.size}px, "
        f"{args.minutes:g} min per model"
    )
    for name, ident in idents.items():
        res = results[name]
        crops_g = [ident.prepare(data / "images" / i, boxes.get(i)).crop for i in gallery_imgs]
        crops_q = [ident.prepare(data / "images" / v["image"], boxes.get(v["image"])).crop for v in val]
        ranked = knn_rankings(ident, ident.embed(crops_g), [labels_of[i] for i in gallery_imgs], ident.embed(crops_q))
        m, t, m_plain = with_threshold(ranked, truth)
        line = (
            f"  {name:8s} ({res.metrics.steps} steps, {res.metrics.epochs_run} epochs): "
            f"kNN MAP@5 {m:.3f} (new_whale at {t:.2f}; without new_whale {m_plain:.3f})"
        )
        if name == "seed000":
            cr = classifier_rankings(ident, crops_q)
            mc, tc, _ = with_threshold(cr, truth)
            line += f"; softmax top-5 MAP@5 {mc:.3f} (new_whale below p={tc:.2f})"
            pred = [apply_new_threshold(r, tc) for r in cr]
            assert abs(map_at_k(truth, pred) - mc) < 1e-9
        print(line)


def main(argv=None):
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data) if args.data else tmp / "synth"
        if not (data / "train.csv").exists():
            generate_dataset(data, individuals=args.individuals, photos=tuple(args.photos), seed=args.seed)
        idents, results = train_recipes(args, data, tmp)
        report_recipes(args, data, tmp, idents, results)
        real_benchmark(idents, args.views, args.seed)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
