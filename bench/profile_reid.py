"""Each species profile against the humpback-fluke settings, open set, on the same real photos (issue 16).

Before profiles the site put every photo through the humpback fluke's settings: seed 000's margins and 2.09
aspect, a model trained with seed 000's augmentation and no mirrored identities. Each real set here is run twice
through the same steps, once with its own profile (``ml.profiles``: crop, mirror policy, augmentation ranges)
and once with the humpback fluke's, on the same split:

* right whales (``right_whale_head``) and harbour seals (``seal_face``): split by individual, as
  ``bench/real_reid.py`` does. *Train* individuals are the only ones a model learns from; *calib* individuals
  (never trained on) fit the isotonic calibration, the fusion and the new-individual threshold; *eval*
  individuals (never trained on, never fitted on) give every figure. 10 % of the calib and eval individuals
  are queries only, truth ``new_whale``. Seals are split by source photo as well.
* the 8 real dorsal fins (``dolphin_fin``): originals in the gallery, re-photographed copies as queries,
  cross-fitted in two folds by individual; 3 animals are too few to train on, so only the frozen rows run.

Rows per set and settings: RootSIFT + RANSAC alone; frozen EfficientNet-Lite0, alone and fused with RootSIFT;
EfficientNet-Lite0 fine-tuned (last blocks + ArcFace, ``bench/real_reid.py``'s tail tuning) on the set's train
individuals with the settings' augmentation ranges (``--views`` augmented copies per photo) and mirror policy
(``NEW_ID``: mirrored copies train as extra individuals), alone and fused. Both settings fine-tune for the same
``--epochs`` (each train photo seen equally often), not for the same time: a settings that mirrors has twice
the crops, and a time budget would give it half the epochs. No localizer runs: the photos are
head crops and face chips already, and the fins are roughly framed, so the whole photo is the box.

    python bench/profile_reid.py [--sets right_whale_head,seal_face,dolphin_fin] [--out /tmp/profile_reid]

The table is printed and written to ``--out``/profile_reid.md; crops, prefix features, models and inlier
matrices are cached there.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_reid as R  # noqa: E402

from ml.preprocess import TrainTransform, preprocess  # noqa: E402
from ml.profiles import HUMPBACK_FLUKE, PROFILES, Mirror, SpeciesProfile  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
ARCH = "efficientnet_lite0"


@dataclass
class RawSet:
    """One real set's grayscale photos (decoded once) with its split, shared by both settings."""

    profile: str
    title: str
    photos: list[Image.Image]
    labels: list[str]
    groups: list[str]
    split: R.Split


def _split_used(labels, groups, args) -> tuple[list[int], R.Split]:
    """The open-set split, and the photo indices any part of it uses (only those are decoded)."""
    probe = R.ImageSet("probe", np.zeros((len(labels), 1, 1), np.float32), labels, groups)
    sp = R.split_open_set(probe, args.seed, args.train_fraction, args.calib_fraction, max_gallery=4, max_train_photos=6)
    parts = (sp.calib, sp.eval)
    used = sorted(set(sp.train).union(*(set(p.gallery) | set(p.queries) for p in parts)))
    new = {old: k for k, old in enumerate(used)}
    remap = lambda p: R.Part([new[i] for i in p.gallery], [new[i] for i in p.queries], p.truth)  # noqa: E731
    return used, R.Split([new[i] for i in sp.train], remap(sp.calib), remap(sp.eval))


def load_labelled(profile: str, title: str, folder: Path, group_of, args) -> RawSet:
    rows = R._read_labels(folder)
    labels, groups = [i for _, i in rows], [group_of(f) for f, _ in rows]
    used, split = _split_used(labels, groups, args)
    photos = [Image.open(folder / "images" / rows[i][0]).convert("L") for i in tqdm(used, desc=title, leave=False)]
    return RawSet(profile, title, photos, [labels[i] for i in used], [groups[i] for i in used], split)


def load_fins(args, views: int = 3) -> RawSet:
    """Real fins as gallery, ``views`` re-photographed copies each as queries; two folds by individual."""
    folder = SHARED / "real-flukes"
    with open(folder / "labels.csv", newline="") as fh:
        rows = [(r["image"], r["individual_id"]) for r in csv.DictReader(fh) if "fin" in r["kind"]]
    rng = np.random.default_rng(args.seed)
    photos, labels, groups, queries = [], [], [], []
    for path, ind in rows:
        photos.append(ImageOps.exif_transpose(Image.open(folder / path)).convert("L"))
        labels.append(ind)
        groups.append(path)
    gallery = list(range(len(photos)))
    for k in gallery:
        for v in range(views):
            queries.append(len(photos))
            photos.append(R.rephotograph(photos[k], rng).convert("L"))
            labels.append(labels[k])
            groups.append(f"{groups[k]}#{v}")
    fold_of = {ind: k % 2 for k, ind in enumerate(sorted(set(labels)))}
    parts = [R.Part(gallery, [q for q in queries if fold_of[labels[q]] == f], []) for f in (0, 1)]
    for p in parts:
        p.truth = [labels[q] for q in p.queries]
    split = R.Split([], parts[0], parts[1], folds=[(parts[0], parts[1]), (parts[1], parts[0])])
    return RawSet("dolphin_fin", "dorsal fins, re-photographed", photos, labels, groups, split)


def load_sets(args) -> list[RawSet]:
    wanted = args.sets.split(",")
    out = []
    if "right_whale_head" in wanted:
        out.append(load_labelled("right_whale_head", "right whales", SHARED / "real-data" / "right-whales",
                                 lambda f: f, args))  # fmt: skip
    if "seal_face" in wanted:
        out.append(load_labelled("seal_face", "harbour seals", SHARED / "real-data" / "harbour-seals",
                                 R.seal_source_photo, args))  # fmt: skip
    if "dolphin_fin" in wanted:
        out.append(load_fins(args))
    return out


def crops_of(raw: RawSet, settings: SpeciesProfile, cache: R.Cache) -> R.ImageSet:
    """The set's photos cropped with ``settings``' margins and aspect (whole photo as the box)."""
    name = f"{raw.title} / {settings.key} settings"
    key = R._cache_key("profile-crops", raw.profile, settings.key, settings.crop, raw.groups)
    crops, _ = cache.get(key, lambda: (np.stack([preprocess(p, None, crop=settings.crop) for p in raw.photos]), 0.0))
    return R.ImageSet(name, crops.astype(np.float32), raw.labels, raw.groups)


def training_inputs(ds: R.ImageSet, train: list[int], settings: SpeciesProfile, views: int, seed: int):
    """(crops, labels) a model learns from: each train photo, ``views`` copies augmented with the settings'
    ranges, and, when a mirror is a new identity, every one of those mirrored as ``<id>_flip``."""
    a = settings.augmentation
    aug = TrainTransform(rotation=a.rotation, zoom=a.zoom, shift=a.shift, seed=seed)
    base = torch.from_numpy(ds.crops[train])[:, None]
    copies = [base] + [aug.apply_batch(base) for _ in range(views)]
    x = torch.cat(copies)
    labels = [ds.labels[i] for i in train] * len(copies)
    if settings.mirror is Mirror.NEW_ID:
        x = torch.cat([x, x.flip(-1)])
        labels = labels + [f"{lab}_flip" for lab in labels]
    return x[:, 0].numpy(), labels


def embedders_for(ds: R.ImageSet, raw: RawSet, settings: SpeciesProfile, enc, cache: R.Cache, args):
    """The frozen row and (with train individuals) the fine-tuned row for one set under one settings."""
    blocks = args.lite_suffix_blocks
    prefixes, prefix_dt = R._prefix_outputs(enc, ARCH, {ds.name: ds}, cache, blocks)
    frozen, t_frozen = R._suffix_all(
        prefixes, lambda h: enc.suffix(h[:, 0].float(), blocks), "frozen", ARCH, blocks, cache
    )
    rows = [R.Embedder(f"{ARCH} frozen", {ds.name: R._normalize(frozen[ds.name])}, prefix_dt + t_frozen, "")]
    if not raw.split.train:
        return rows
    x, labels = training_inputs(ds, raw.split.train, settings, args.views, args.seed)
    train_set = R.ImageSet(f"{ds.name} train", x, labels, labels)
    train_h, _ = R._prefix_outputs(enc, ARCH, {train_set.name: train_set}, cache, blocks)
    torch.manual_seed(args.seed)
    tuning = R._TailTuning(ARCH, enc, blocks)
    key = R._cache_key("profile-finetune", ds.name, blocks, args.finetune_budget_s, args.epochs, args.seed, labels)
    model, info = R._load_or_finetune(
        tuning, key, cache, train_h[train_set.name], labels, args.finetune_budget_s, args.epochs
    )
    model.eval()
    tuned, t_tuned = R._suffix_all(
        prefixes, lambda h: F.normalize(tuning.features(model, h[:, 0].float()), dim=1), f"tuned-{key}", ARCH,
        blocks, cache,
    )  # fmt: skip
    note = (
        f"{info['epochs']} epochs, {info['steps']} steps / {info['seconds']:.0f} s on {info['classes']} classes "
        f"({len(labels)} crops)"
    )
    rows.append(R.Embedder(f"{ARCH} fine-tuned", tuned, prefix_dt + t_tuned, note))
    return rows


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="right_whale_head,seal_face,dolphin_fin")
    ap.add_argument("--out", default="/tmp/profile_reid")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--calib-fraction", type=float, default=0.15)
    ap.add_argument("--views", type=int, default=2, help="augmented copies of each train photo")
    ap.add_argument(
        "--epochs", type=int, default=3, help="fine-tuning epochs, the same for both settings (like for like)"
    )
    ap.add_argument(
        "--finetune-budget-s", type=float, default=float("inf"),
        help="optional time cap; off by default, since a cap gives the settings with more crops fewer epochs",
    )  # fmt: skip
    ap.add_argument("--lite-suffix-blocks", type=int, default=5)
    ap.add_argument("--shortlist", type=int, default=R.L.DEFAULT_SHORTLIST)
    ap.add_argument("--fusion", choices=("logistic", "noisy_or"), default="logistic")
    ap.add_argument("--threads", type=int, default=2)
    return ap


def render(table: list[tuple], notes: list[str], sizes: str, args, seconds: float) -> str:
    lines = [
        f"# Species profiles vs the humpback-fluke settings (bench/profile_reid.py, seed {args.seed}, "
        f"{seconds / 60:.1f} min)",
        "",
        "```",
        sizes,
        "```",
        "",
        "| set | settings | model | matcher | MAP@5 | top-1 | top-5 | new P | new R | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for title, settings, model, matcher, r in table:
        lines.append(
            f"| {title} | {settings} | {model} | {matcher} | {r.map5:.3f} | {r.top1:.3f} | {r.top5:.3f} | "
            f"{r.new_precision:.2f} | {r.new_recall:.2f} | {r.ece:.3f} |"
        )
    lines += ["", "Profile minus humpback settings, same model and matcher, paired over the same queries:", ""]
    lines += ratios(table)
    lines += ["", "Fine-tuning:"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def ratios(table: list[tuple]) -> list[str]:
    by = {(t, s, m, k): r for t, s, m, k, r in table}
    out = []
    for (title, settings, model, matcher), r in by.items():
        hump = by.get((title, HUMPBACK_FLUKE.key, model, matcher))
        if settings != HUMPBACK_FLUKE.key and hump is not None:
            ratio = f"{r.map5 / max(hump.map5, 1e-9):.2f}x"
            out.append(R.difference_line(f"{title}, {model}, {matcher} ({ratio})", r, hump))
    return out


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.plot_models = ""
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = R.Cache(out)
    t0 = time.perf_counter()
    from ml.backbones import create_encoder

    enc = create_encoder(ARCH).eval()
    raws = load_sets(args)
    sizes = R.describe_splits({r.title: R.ImageSet(r.title, None, r.labels, r.groups) for r in raws},
                              {r.title: r.split for r in raws})  # fmt: skip
    print(sizes)
    table, notes = [], []
    for raw in raws:
        for settings in (PROFILES[raw.profile], HUMPBACK_FLUKE):
            ds = crops_of(raw, settings, cache)
            embedders = embedders_for(ds, raw, settings, enc, cache, args)
            notes += [f"{ds.name}: {e.note}" for e in embedders if e.note]
            rows = R.score_set(args, ds.name, ds, raw.split, cache, embedders, {}, settings.local_matching)
            for _set, model, matcher, res, _ms in rows:
                table.append((raw.title, settings.key, model, matcher, res))
                print(f"{raw.title:<28}{settings.key:<18}{model:<28}{matcher:<26}MAP@5 {res.map5:.3f}", flush=True)
    text = render(table, notes, sizes, args, time.perf_counter() - t0)
    print(text)
    (out / "profile_reid.md").write_text(text)
    print(f"wrote {out / 'profile_reid.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
