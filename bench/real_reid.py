"""Real-photo re-identification benchmark (issue 10): the yardstick for backbones, local features,
calibration and fusion. Open set, as the site works.

Data, read in place at run time and never copied (``--real-data``, ``--real-flukes``):

* right whales (``real-data/right-whales``, 224x224 aligned head crops: fed as the crop, no localizer).
  Split by individual, seeded: *train* individuals (the only ones any model learns from),
  *calib* individuals (never trained on: isotonic calibration, fusion weights and the
  new-individual threshold are fitted on them) and *eval* individuals (never trained on, never
  used for fitting: every figure in the table). For each calib/eval individual half its photos
  (up to ``--max-gallery``) form the gallery and up to two others are queries; 10% of them appear
  only as queries whose truth is ``new_whale``.
* harbour seals (``real-data/harbour-seals``, ``--sets`` to add): the same, and split by source
  photo too: an individual's gallery and queries come from different source photos (chips of one
  photo are near-duplicates); no model trains on seals.
* the 19 real humpback flukes (``real-flukes/flukes``) re-photographed by augmentation (another
  crop, tilt, perspective, light and gamma, blur, JPEG): the original in the gallery, 2 copies as
  queries, ``--new-flukes`` of them held out as new (copies only). They go through the fluke
  preprocessing with the whole photo as the box (the photos are roughly cropped already).
  Calibration is cross-fitted: queries split by individual in two folds, each fold evaluated with
  the calibration fitted on the other.

Matchers: each embedding model alone (max cosine per individual), RootSIFT + RANSAC alone
(most inliers per individual over the whole gallery, extracted and verified as the set's species profile
says: ``set_matching``), and the fusion (embedding shortlist of the
top ``--shortlist`` individuals re-ranked by the logistic fusion of both calibrated P). Rows:
the from-scratch ResNet ArcFace recipe trained on the right-whale train individuals within
``--scratch-budget-s``, each pretrained backbone frozen (pooled features, no training), and
fine-tuned (last blocks + embedding + ArcFace on cached prefix features, ``--finetune-budget-s``).

    python bench/real_reid.py                                   # right whales + flukes
    python bench/real_reid.py --sets right-whales,flukes,harbour-seals --out /tmp/real_reid

The table is printed and written with a reliability plot to ``--out``; embeddings, prefix
features and inlier matrices are cached there (a rerun only recomputes what changed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter, ImageOps  # noqa: E402
from tqdm import tqdm  # noqa: E402

from ml import calibration as C  # noqa: E402
from ml import local_features as L  # noqa: E402
from ml.evaluate import paired_difference  # noqa: E402
from ml.metrics import (  # noqa: E402
    NEW_WHALE,
    average_precision_at_k,
    map_at_k,
    new_whale_precision_recall,
    top_k_accuracy,
)
from ml.preprocess import preprocess, standardize  # noqa: E402
from ml.profiles import DEFAULT_MATCHING, PROFILES, LocalMatching  # noqa: E402
from ml.types import Box  # noqa: E402

SIZE = 224


# =========================================================================== data
@dataclass
class ImageSet:
    name: str
    crops: np.ndarray  # (N, SIZE, SIZE) float32, standardized
    labels: list[str]
    groups: list[str]  # source photo: gallery and queries of one individual never share one


@dataclass
class Part:
    """Gallery photos, query photos and the queries' truth (``new_whale`` for held-out individuals)."""

    gallery: list[int]
    queries: list[int]
    truth: list[str]


@dataclass
class Split:
    train: list[int]
    calib: Part
    eval: Part
    folds: list[tuple[Part, Part]] = field(default_factory=list)  # (fit on, evaluate) when cross-fitted


def _read_labels(folder: Path) -> list[tuple[str, str]]:
    with open(folder / "labels.csv", newline="") as f:
        return [(r["Image"], r["Id"]) for r in csv.DictReader(f)]


def _gray_square(path: Path) -> np.ndarray:
    img = Image.open(path).convert("L")
    if img.size != (SIZE, SIZE):
        img = img.resize((SIZE, SIZE), Image.BILINEAR)
    return standardize(np.asarray(img, dtype=np.float32) / 255.0)


def load_square_set(name: str, folder: Path, group_of, keep: set[str] | None = None) -> ImageSet:
    rows = [(f, i) for f, i in _read_labels(folder) if keep is None or f in keep]
    crops = np.stack([_gray_square(folder / "images" / f) for f, _ in tqdm(rows, desc=f"load {name}", leave=False)])
    return ImageSet(name, crops, [i for _, i in rows], [group_of(f) for f, _ in rows])


def seal_source_photo(file_name: str) -> str:
    """``<id>__DSCN1234_ChippedAt_...`` -> ``DSCN1234``: the field photo the chip was cut from."""
    return file_name.split("__", 1)[-1].split("_ChippedAt")[0]


def _by_individual(labels, groups, idx) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for i in idx:
        out.setdefault(labels[i], {}).setdefault(groups[i], []).append(i)
    return out


def build_part(
    labels, groups, individuals: list[str], idx_of, rng, new_fraction: float, max_gallery: int, n_queries: int = 2
) -> Part:
    """Half of each individual's source photos -> gallery (capped), up to ``n_queries`` photos from
    the others -> queries; ``new_fraction`` of the individuals -> queries only, truth ``new_whale``.
    An individual whose photos all share one source photo is a gallery distractor only."""
    individuals = list(individuals)
    rng.shuffle(individuals)
    n_new = int(round(new_fraction * len(individuals)))
    part = Part([], [], [])
    for k, ind in enumerate(individuals):
        by_group = idx_of[ind]
        keys = list(by_group)
        rng.shuffle(keys)
        photos = [i for g in keys for i in by_group[g]]
        if k < n_new:
            q = photos[:n_queries]
            part.queries += q
            part.truth += [NEW_WHALE] * len(q)
            continue
        half = max(1, len(keys) // 2)
        gallery = [i for g in keys[:half] for i in by_group[g]][:max_gallery]
        rest = [i for g in keys[half:] for i in by_group[g]]
        part.gallery += gallery
        q = rest[:n_queries]
        part.queries += q
        part.truth += [ind] * len(q)
    return part


def split_open_set(
    ds: ImageSet,
    seed: int,
    train_fraction: float,
    calib_fraction: float,
    new_fraction: float = 0.1,
    max_gallery: int = 4,
    max_train_photos: int = 6,
) -> Split:
    rng = np.random.default_rng(seed)
    idx_of = _by_individual(ds.labels, ds.groups, range(len(ds.labels)))
    ids = sorted(idx_of)
    rng.shuffle(ids)
    n_train = int(round(train_fraction * len(ids)))
    n_calib = int(round(calib_fraction * len(ids)))
    train_ids, calib_ids, eval_ids = ids[:n_train], ids[n_train : n_train + n_calib], ids[n_train + n_calib :]
    train = [i for ind in train_ids for i in [j for g in idx_of[ind].values() for j in g][:max_train_photos]]
    calib = build_part(ds.labels, ds.groups, calib_ids, idx_of, rng, new_fraction, max_gallery)
    ev = build_part(ds.labels, ds.groups, eval_ids, idx_of, rng, new_fraction, max_gallery)
    return Split(train, calib, ev)


def rephotograph(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another photo of the same fluke: another crop, a tilt, a perspective, light and gamma, blur, JPEG."""
    from torchvision.transforms.v2 import functional as TF

    w, h = img.size
    box = (
        rng.uniform(0, 0.12) * w,
        rng.uniform(0, 0.12) * h,
        w - rng.uniform(0, 0.12) * w,
        h - rng.uniform(0, 0.12) * h,
    )
    im = img.crop(tuple(int(v) for v in box))
    im = im.rotate(float(rng.uniform(-10, 10)), resample=Image.BILINEAR, fillcolor=int(np.asarray(im).mean()))
    cw, ch = im.size
    d = rng.uniform(0, 0.08, size=(4, 2)) * (cw, ch)
    start = [[0, 0], [cw, 0], [cw, ch], [0, ch]]
    end = [[d[0, 0], d[0, 1]], [cw - d[1, 0], d[1, 1]], [cw - d[2, 0], ch - d[2, 1]], [d[3, 0], ch - d[3, 1]]]
    im = TF.perspective(im, start, [[int(a), int(b)] for a, b in end], fill=int(np.asarray(im).mean()))
    s = rng.uniform(0.5, 1.0)
    im = im.resize((max(64, int(cw * s)), max(64, int(ch * s))), Image.BILINEAR)
    im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.7, 1.3)))
    im = ImageEnhance.Contrast(im).enhance(float(rng.uniform(0.7, 1.3)))
    gamma = float(rng.uniform(0.7, 1.4))
    im = im.point(lambda v: 255.0 * (v / 255.0) ** gamma)
    if rng.random() < 0.6:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5)) * max(1.0, im.width / 800)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(35, 85)))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def _whole_photo_crop(img: Image.Image) -> np.ndarray:
    return preprocess(img, Box(0.0, 0.0, float(img.width), float(img.height)), size=SIZE)


def load_flukes(folder: Path, seed: int, n_new: int, views: int = 2) -> tuple[ImageSet, Split]:
    """Originals (gallery) and re-photographed copies (queries); two cross-fitting folds by individual."""
    rng = np.random.default_rng(seed)
    with open(folder / "labels.csv", newline="") as f:
        rows = [(r["image"], r["individual_id"]) for r in csv.DictReader(f) if r["kind"] == "humpback_fluke"]
    crops, labels, groups = [], [], []
    ids = [i for _, i in rows]
    order = list(range(len(rows)))
    rng.shuffle(order)
    new_ids = {ids[k] for k in order[:n_new]}
    gallery, queries = [], []
    for path, ind in tqdm(rows, desc="load flukes", leave=False):
        img = ImageOps.exif_transpose(Image.open(folder / path)).convert("L")
        if ind not in new_ids:
            gallery.append(len(crops))
            crops.append(_whole_photo_crop(img))
            labels.append(ind)
            groups.append(path)
        for v in range(views):
            queries.append(len(crops))
            crops.append(_whole_photo_crop(rephotograph(img, rng)))
            labels.append(ind)
            groups.append(f"{path}#{v}")
    ds = ImageSet("flukes (re-photographed)", np.stack(crops), labels, groups)
    fold_of = {ind: k % 2 for k, ind in enumerate(sorted(set(ids), key=lambda s: hashlib.md5(s.encode()).hexdigest()))}
    parts = []
    for fold in (0, 1):
        q = [i for i in queries if fold_of[labels[i]] == fold]
        parts.append(Part(gallery, q, [NEW_WHALE if labels[i] in new_ids else labels[i] for i in q]))
    split = Split([], parts[0], parts[1], folds=[(parts[0], parts[1]), (parts[1], parts[0])])
    return ds, split


# =========================================================================== embedding models
def _cache_key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


@torch.inference_mode()
def run_in_batches(fn, crops: np.ndarray, desc: str, batch: int = 32) -> tuple[np.ndarray, float]:
    """fn over (B, 1, S, S) batches -> (stacked numpy, seconds per image)."""
    out, t0 = [], time.perf_counter()
    for s in tqdm(list(_batches(len(crops), batch)), desc=desc, leave=False):
        out.append(fn(torch.from_numpy(crops[s])[:, None]).float().numpy())
    dt = (time.perf_counter() - t0) / max(1, len(crops))
    return np.concatenate(out), dt


def _normalize(v: np.ndarray) -> np.ndarray:
    return (v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


class Cache:
    def __init__(self, folder: Path):
        self.folder = folder / "cache"
        self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, compute):
        path = self.folder / f"{key}.npz"
        if path.is_file():
            z = np.load(path)
            return z["a"], float(z["t"])
        a, t = compute()
        np.savez(path, a=a, t=t)
        return a, t


def arcface_train(
    params_model,
    forward_features,
    inputs: np.ndarray,
    labels: list[str],
    budget_s: float,
    epochs: int,
    lr: float,
    desc: str,
    batch: int = 32,
    augment=None,
    groups=None,
):
    """ArcFace (margin warm-up over the first epoch) on ``inputs`` until ``epochs`` or ``budget_s``."""
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(v) for v in labels])
    model = params_model(len(classes))
    opt = torch.optim.AdamW(
        groups(model) if groups else [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4
    )
    t0, steps, done = time.perf_counter(), 0, 0
    n = len(inputs)
    steps_per_epoch = math.ceil(n / batch)
    total = epochs * steps_per_epoch
    model.train()
    bar = tqdm(total=total, desc=desc, leave=False)
    rng = np.random.default_rng(0)
    margin = model.head.m
    for epoch in range(epochs):
        order = rng.permutation(n)
        for s in _batches(n, batch):
            idx = order[s]
            x = torch.from_numpy(inputs[idx]).float()
            if augment is not None:
                x = augment(x)
            model.head.set_margin(margin * min(1.0, (steps + 1) / steps_per_epoch))
            lr_now = lr * 0.5 * (1 + math.cos(math.pi * steps / total))
            for g in opt.param_groups:
                g["lr"] = lr_now * g.get("scale", 1.0)
            loss = F.cross_entropy(model.head(forward_features(model, x), y[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.2f}")
            if time.perf_counter() - t0 > budget_s:
                break
        done = epoch + 1
        if time.perf_counter() - t0 > budget_s:
            break
    bar.close()
    model.eval()
    return model, {
        "epochs": done,
        "steps": steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "classes": len(classes),
    }


@dataclass
class Embedder:
    """One table row's embedding: name, per-set embeddings and seconds per image."""

    name: str
    vectors: dict[str, np.ndarray]
    sec_per_image: float
    note: str = ""


def scratch_resnet(sets, splits, cache: Cache, budget_s: float, size: int, seed: int) -> Embedder:
    """Today's recipe from scratch: ResNet18 ArcFace (s=16, m=0.3) on 1-channel crops with seed
    000's geometric augmentation, on the right-whale train individuals, trained for ``budget_s``."""
    from ml.models import create_model
    from ml.preprocess import TrainTransform

    rw = sets["right-whales"]
    train = splits["right-whales"].train
    down = lambda x: F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) if size != SIZE else x  # noqa: E731
    aug = TrainTransform(size=size, seed=seed)
    key = _cache_key("scratch", budget_s, size, seed, train)
    path = cache.folder / f"scratch-{key}.pt"
    torch.manual_seed(seed)
    build = lambda n: create_model("resnet18", 256, n, "arcface", arcface_s=16.0, arcface_m=0.3)  # noqa: E731
    if path.is_file():
        blob = torch.load(path, weights_only=True)
        model = build(blob["n"])
        model.load_state_dict(blob["state"])
        info = blob["info"]
        model.eval()
    else:
        model, info = arcface_train(
            build,
            lambda m, x: m.features(x),
            rw.crops[train][:, None],
            [rw.labels[i] for i in train],
            budget_s,
            epochs=30,
            lr=2e-3,
            desc="train resnet18 scratch",
            augment=lambda x: aug.apply_batch(down(x)),
        )
        torch.save({"n": info["classes"], "state": model.state_dict(), "info": info}, path)
    vectors, dt = {}, 0.0
    for name, ds in sets.items():
        v, t = cache.get(
            _cache_key("scratch-emb", key, name, len(ds.crops)),
            lambda: run_in_batches(lambda x: model.embed(down(x)), ds.crops, f"embed scratch {name}"),
        )
        vectors[name], dt = v, max(dt, t)
    return Embedder(
        "resnet18 from scratch",
        vectors,
        dt,
        f"{info['epochs']} epochs / {info['seconds']:.0f} s at {size} px on {info['classes']} whales",
    )


def _prefix_outputs(enc, arch: str, sets, cache: Cache, suffix_blocks: int) -> tuple[dict, float]:
    """Each set's frozen prefix outputs (cached): fine-tuning then only runs the last blocks."""
    prefixes, prefix_dt = {}, 0.0
    for name, ds in sets.items():
        a, t = cache.get(
            _cache_key("prefix", arch, suffix_blocks, name, len(ds.crops), float(ds.crops[:4].sum())),
            lambda: run_in_batches(
                lambda x: enc.prefix(x, suffix_blocks).half(), ds.crops, f"{arch} prefix {name}", batch=16
            ),
        )
        prefixes[name], prefix_dt = a, max(prefix_dt, t)
    return prefixes, prefix_dt


def _suffix_all(prefixes: dict, fn, tag: str, arch: str, suffix_blocks: int, cache: Cache) -> tuple[dict, float]:
    out, dt = {}, 0.0
    for name, h in prefixes.items():
        v, t = cache.get(
            _cache_key(tag, arch, suffix_blocks, name, len(h), float(h[:2].astype(np.float32).sum())),
            lambda: run_in_batches(fn, h, f"{arch} {tag} {name}"),
        )
        out[name], dt = v, max(dt, t)
    return out, dt


class _TailTuning:
    """A PretrainedFlukeNet whose last ``suffix_blocks`` blocks (and head) train; the rest stays frozen."""

    def __init__(self, arch: str, enc, suffix_blocks: int):
        self.arch, self.enc, self.suffix_blocks = arch, enc, suffix_blocks

    def build(self, n: int):
        from ml.backbones import PretrainedFlukeNet

        m = PretrainedFlukeNet(
            self.arch, embedding_dim=256, num_classes=n, arcface_s=30.0, arcface_m=0.3, pretrained=False
        )
        m.backbone.load_state_dict(self.enc.state_dict())
        net = m.backbone.net
        lite = self.arch == "efficientnet_lite0"
        blocks = net._blocks if lite else net.blocks
        for p in m.backbone.parameters():
            p.requires_grad_(False)
        tail = list(blocks[len(blocks) - self.suffix_blocks :])
        tail += [net._conv_head, net._bn1] if lite else [net.norm]
        for mod in tail:
            for p in mod.parameters():
                p.requires_grad_(True)
        m._tail = tail
        return m

    @staticmethod
    def groups(m):
        tail = [p for mod in m._tail for p in mod.parameters()]
        ids = {id(p) for p in tail} | {id(p) for p in m.backbone.parameters()}
        rest = [p for p in m.parameters() if id(p) not in ids]
        return [{"params": tail, "scale": 0.1}, {"params": rest, "scale": 1.0}]

    def features(self, m, h):
        return m.bn(m.embedding(m.backbone.suffix(h, self.suffix_blocks)))


def _load_or_finetune(tuning: _TailTuning, key: str, cache: Cache, train_h, labels, budget_s, epochs):
    path = cache.folder / f"finetune-{key}.pt"
    if path.is_file():
        blob = torch.load(path, weights_only=True)
        model = tuning.build(blob["n"])
        model.load_state_dict(blob["state"])
        return model, blob["info"]
    model, info = arcface_train(
        tuning.build,
        tuning.features,
        train_h,
        labels,
        budget_s,
        epochs=epochs,
        lr=1e-3,
        desc=f"fine-tune {tuning.arch}",
        groups=tuning.groups,
    )
    torch.save({"n": info["classes"], "state": model.state_dict(), "info": info}, path)
    return model, info


def backbone_rows(
    arch: str, sets, splits, cache: Cache, suffix_blocks: int, budget_s: float, epochs: int, seed: int
) -> list[Embedder]:
    """Frozen (pooled pretrained features) and fine-tuned (last ``suffix_blocks`` blocks + embedding +
    ArcFace, on cached prefix outputs of the right-whale train crops) rows of one backbone."""
    from ml.backbones import create_encoder

    enc = create_encoder(arch).eval()
    prefixes, prefix_dt = _prefix_outputs(enc, arch, sets, cache, suffix_blocks)
    frozen, t_frozen = _suffix_all(
        prefixes, lambda h: enc.suffix(h[:, 0].float(), suffix_blocks), "frozen", arch, suffix_blocks, cache
    )
    rows = [
        Embedder(
            f"{arch} frozen",
            {k: _normalize(v) for k, v in frozen.items()},
            prefix_dt + t_frozen,
            "pooled pretrained features, no training",
        )
    ]
    rw = splits["right-whales"]
    labels = [sets["right-whales"].labels[i] for i in rw.train]
    torch.manual_seed(seed)
    tuning = _TailTuning(arch, enc, suffix_blocks)
    key = _cache_key("finetune", arch, suffix_blocks, budget_s, epochs, seed, rw.train)
    model, info = _load_or_finetune(tuning, key, cache, prefixes["right-whales"][rw.train], labels, budget_s, epochs)
    model.eval()
    tuned, t_tuned = _suffix_all(
        prefixes,
        lambda h: F.normalize(tuning.features(model, h[:, 0].float()), dim=1),
        f"tuned-{key}",
        arch,
        suffix_blocks,
        cache,
    )
    rows.append(
        Embedder(
            f"{arch} fine-tuned",
            tuned,
            prefix_dt + t_tuned,
            f"last {suffix_blocks} blocks + ArcFace, {info['epochs']} epochs / {info['seconds']:.0f} s",
        )
    )
    return rows


def lite0_gem_row(sets, cache: Cache, suffix_blocks: int, cut: int) -> Embedder:
    """Frozen Lite0 read at the input of its last ``cut`` blocks, GeM-pooled (p = 3): the reading
    ``bench/frozen_layer_search.py`` picked on train individuals, measured here on eval ones."""
    from ml.backbones import create_encoder
    from ml.models import GeM

    arch = "efficientnet_lite0"
    enc = create_encoder(arch).eval()
    prefixes, prefix_dt = _prefix_outputs(enc, arch, sets, cache, suffix_blocks)
    first = len(enc.net._blocks) - suffix_blocks

    pool = GeM(p=3.0)

    def read(h):
        h = h[:, 0].float()
        for i in range(first, len(enc.net._blocks) - cut):
            h = enc._block(i, h)
        return pool(h)

    vectors, dt = _suffix_all(prefixes, read, f"gem-cut{cut}", arch, suffix_blocks, cache)
    note = f"no training: the input of the last {cut} blocks, GeM-pooled (p = 3)"
    return Embedder(f"{arch} block GeM frozen", {k: _normalize(v) for k, v in vectors.items()}, prefix_dt + dt, note)


# =========================================================================== local features
class LocalScores:
    """RootSIFT features per image and a lazily filled inlier matrix per image pair (cached), verified the
    way ``matching`` (a profile's ``ml.profiles.LocalMatching``) says."""

    def __init__(self, ds: ImageSet, cache: Cache, matching: LocalMatching = DEFAULT_MATCHING):
        self.ds = ds
        self.cache = cache
        self.matching = matching
        self.feats: dict[int, L.LocalFeatures] = {}
        self.sift_s: list[float] = []
        self.match_s: list[float] = []
        tag = () if matching == DEFAULT_MATCHING else (repr(matching),)  # the default keeps older caches
        self.path = cache.folder / f"inliers-{_cache_key(ds.name, len(ds.crops), float(ds.crops[:4].sum()), *tag)}.json"
        self.inliers: dict[str, int] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.extract_time = None

    def features(self, i: int) -> L.LocalFeatures:
        if i not in self.feats:
            t = time.perf_counter()
            self.feats[i] = L.extract(self.ds.crops[i], **self.matching.extract_options())
            self.sift_s.append(time.perf_counter() - t)
        return self.feats[i]

    def pair(self, q: int, g: int) -> int:
        k = f"{q},{g}"
        if k not in self.inliers:
            fq, fg = self.features(q), self.features(g)
            t = time.perf_counter()
            self.inliers[k] = L.match(fq, fg, **self.matching.match_options()).inliers
            self.match_s.append(time.perf_counter() - t)
        return self.inliers[k]

    def matrix(self, part: Part, desc: str) -> np.ndarray:
        m = np.zeros((len(part.queries), len(part.gallery)), np.float32)
        for a, q in enumerate(tqdm(part.queries, desc=f"RootSIFT {desc}", leave=False)):
            for b, g in enumerate(part.gallery):
                m[a, b] = self.pair(q, g)
        self.path.write_text(json.dumps(self.inliers))
        return m

    def seconds(self) -> tuple[float, float]:
        """(SIFT extraction, one match) in seconds; measured now or, from a warm cache, on a sample."""
        if not self.match_s:
            for q, g in list((int(a), int(b)) for a, b in (k.split(",") for k in list(self.inliers)[:200])):
                fq, fg = self.features(q), self.features(g)
                t = time.perf_counter()
                L.match(fq, fg, **self.matching.match_options())
                self.match_s.append(time.perf_counter() - t)
        return float(np.mean(self.sift_s or [0.0])), float(np.mean(self.match_s or [0.0]))


# =========================================================================== scoring
def per_individual(matrix: np.ndarray, gallery_labels: list[str]) -> tuple[list[str], np.ndarray]:
    """(individuals, (Q, I) best score over each individual's gallery photos)."""
    inds = sorted(set(gallery_labels))
    col = {v: k for k, v in enumerate(inds)}
    out = np.full((matrix.shape[0], len(inds)), -np.inf, np.float32)
    for b, lab in enumerate(gallery_labels):
        out[:, col[lab]] = np.maximum(out[:, col[lab]], matrix[:, b])
    return inds, out


@dataclass
class PartScores:
    individuals: list[str]
    cos: np.ndarray | None  # (Q, I)
    inl: np.ndarray | None  # (Q, I)
    truth: list[str]


def score_part(ds: ImageSet, part: Part, vectors: np.ndarray | None, local: np.ndarray | None) -> PartScores:
    glabels = [ds.labels[i] for i in part.gallery]
    cos = inl = None
    inds = sorted(set(glabels))
    if vectors is not None:
        inds, cos = per_individual(vectors[part.queries] @ vectors[part.gallery].T, glabels)
    if local is not None:
        inds, inl = per_individual(local, glabels)
    return PartScores(inds, cos, inl, list(part.truth))


def pairs_of(ps: PartScores, matcher: str, values: np.ndarray | None = None) -> C.Pairs:
    """Positive and hardest-negative pairs, hardest by ``matcher``'s own score (or ``values``)."""
    per_query = []
    rank = values if values is not None else getattr(ps, matcher)
    for q in range(len(ps.truth)):
        d = {"rank": dict(zip(ps.individuals, rank[q].tolist()))}
        for m in ("cos", "inl"):
            if getattr(ps, m) is not None:
                d[m] = dict(zip(ps.individuals, getattr(ps, m)[q].tolist()))
        per_query.append(d)
    return C.hardest_pairs(per_query, ps.truth, rank_by="rank")


def shortlist_mask(cos: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-cos, axis=1)[:, :k]
    mask = np.zeros_like(cos, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


@dataclass
class Fitted:
    """Calibration of one matcher setting, fitted on calib individuals."""

    cal: C.MatchCalibration
    matcher: str  # "cos" | "inl" | "fused"


def fused_probability(cal: C.MatchCalibration, ps: PartScores, k: int) -> np.ndarray:
    """Fused P for every (query, individual); outside the embedding's top-k shortlist the
    individual was not verified: its inlier score counts as 0."""
    inl = np.where(shortlist_mask(ps.cos, k), ps.inl, 0.0)
    shape = ps.cos.shape
    return cal.fused({"cos": ps.cos.ravel(), "inl": inl.ravel()}).reshape(shape)


def probability(fit: Fitted, ps: PartScores, k: int) -> np.ndarray:
    if fit.matcher == "fused":
        return fused_probability(fit.cal, ps, k)
    raw = getattr(ps, fit.matcher)
    return fit.cal.calibrators[fit.matcher](raw.ravel()).reshape(raw.shape)


def rankings(p: np.ndarray, individuals: list[str], tie: np.ndarray | None = None, top: int = 20):
    """Per query, (individual, P) best first (``tie``: a secondary key, e.g. the cosine)."""
    out = []
    for q in range(p.shape[0]):
        keys = (-p[q],) if tie is None else (-tie[q], -p[q])
        order = np.lexsort(keys)[:top]
        out.append([(individuals[i], float(p[q, i])) for i in order])
    return out


def fit_matcher(ps: PartScores, matcher: str, k: int, fusion: str = "logistic") -> Fitted:
    if matcher in ("cos", "inl"):
        pairs = pairs_of(ps, matcher)
        cal = C.MatchCalibration(
            {matcher: C.IsotonicCalibrator.fit(pairs.scores[matcher], pairs.same)}, C.Fusion("noisy_or")
        )
    else:
        cos_pairs, inl_pairs = pairs_of(ps, "cos"), pairs_of(ps, "inl")
        cals = {
            "cos": C.IsotonicCalibrator.fit(cos_pairs.scores["cos"], cos_pairs.same),
            "inl": C.IsotonicCalibrator.fit(inl_pairs.scores["inl"], inl_pairs.same),
        }
        cal = C.MatchCalibration(cals, C.Fusion("noisy_or"))
        # fusion weights on both kinds of hardest negatives (what the embedding and what the inliers rank first)
        inl_short = np.where(shortlist_mask(ps.cos, k), ps.inl, 0.0)
        both = [pairs_of(PartScores(ps.individuals, ps.cos, inl_short, ps.truth), m) for m in ("cos", "inl")]
        probs = {m: np.concatenate([cals[m](b.scores[m]) for b in both]) for m in ("cos", "inl")}
        same = np.concatenate([b.same for b in both])
        cal.fusion = C.Fusion.fit_logistic(probs, same) if fusion == "logistic" else C.Fusion("noisy_or")
    fit = Fitted(cal, matcher)
    p = probability(fit, ps, k)
    th, _ = C.tune_new_threshold(rankings(p, ps.individuals), ps.truth)
    cal.new_threshold = th
    return fit


@dataclass
class Result:
    map5: float
    top1: float
    top5: float
    new_precision: float
    new_recall: float
    queries: int
    new_queries: int
    ece: float
    calib_points: tuple[np.ndarray, np.ndarray]
    per_query_ap: np.ndarray  # AP@5 of each query, in the split's order: what a paired comparison resamples


def evaluate(fits_and_parts: list[tuple[Fitted, PartScores]], k: int) -> Result:
    truth, preds, probs, same = [], [], [], []
    for fit, ps in fits_and_parts:
        p = probability(fit, ps, k)
        for ranked, t in zip(rankings(p, ps.individuals), ps.truth):
            preds.append([lab for lab, _ in C.insert_new(ranked, fit.cal.new_threshold, 5)])
            truth.append(t)
        # calibration quality on the same kind of pairs the calibration was fitted on
        probs.append(_pair_probabilities(p, ps))
        same.append(pairs_of(ps, "rank", values=p).same)
    np_, nr = new_whale_precision_recall(truth, preds)
    pr, sm = np.concatenate(probs), np.concatenate(same)
    return Result(
        map_at_k(truth, preds),
        top_k_accuracy(truth, preds, 1),
        top_k_accuracy(truth, preds, 5),
        np_,
        nr,
        len(truth),
        sum(t == NEW_WHALE for t in truth),
        C.expected_calibration_error(pr, sm),
        (pr, sm),
        np.array([average_precision_at_k(t, p) for t, p in zip(truth, preds)]),
    )


def difference_line(label: str, a: Result, b: Result) -> str:
    diff, lo, hi = paired_difference(a.per_query_ap, b.per_query_ap, resamples=2000)
    verdict = "wins" if lo > 0 else "loses" if hi < 0 else "within noise"
    return f"- {label}: {a.map5:.3f} - {b.map5:.3f} = {diff:+.3f} (95% CI {lo:+.3f} .. {hi:+.3f}, {verdict})"


def _pair_probabilities(p: np.ndarray, ps: PartScores) -> np.ndarray:
    """P of the positive and hardest-negative pairs, in :func:`ml.calibration.hardest_pairs`' order."""
    out = []
    for q, t in enumerate(ps.truth):
        row = p[q]
        if t in ps.individuals:
            out.append(row[ps.individuals.index(t)])
        wrong = [(row[i], i) for i, lab in enumerate(ps.individuals) if lab != t]
        if wrong:
            out.append(max(wrong)[0])
    return np.asarray(out, dtype=np.float64)


# =========================================================================== the run
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-data", default=str(ROOT.parent / "shared" / "real-data"))
    ap.add_argument("--real-flukes", default=str(ROOT.parent / "shared" / "real-flukes"))
    ap.add_argument("--out", default="/tmp/real_reid")
    ap.add_argument("--sets", default="right-whales,flukes")
    ap.add_argument("--rows", default="scratch,efficientnet_lite0,dinov2_s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--calib-fraction", type=float, default=0.15)
    ap.add_argument("--max-gallery", type=int, default=4)
    ap.add_argument("--max-train-photos", type=int, default=6)
    ap.add_argument("--new-flukes", type=int, default=3)
    ap.add_argument("--shortlist", type=int, default=L.DEFAULT_SHORTLIST)
    ap.add_argument("--fusion", choices=("logistic", "noisy_or"), default="logistic")
    ap.add_argument("--scratch-budget-s", type=float, default=300)
    ap.add_argument("--scratch-size", type=int, default=128)
    ap.add_argument("--finetune-budget-s", type=float, default=240)
    ap.add_argument("--finetune-epochs", type=int, default=8)
    ap.add_argument("--lite-suffix-blocks", type=int, default=5)
    ap.add_argument("--dino-suffix-blocks", type=int, default=1)
    ap.add_argument("--gem-cut", type=int, default=2, help="lite0_gem: read the input of the last N blocks")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--plot-models",
        default="efficientnet_lite0 frozen,resnet18 from scratch",
        help="rows drawn in the reliability plot (comma-separated names)",
    )
    ap.add_argument("--max-individuals", type=int, default=0, help="right whales: only the first N (smoke runs)")
    return ap


def load_right_whales(args) -> tuple[ImageSet, Split]:
    """The right-whale set, split by individual first; only the photos a part uses are decoded."""
    rw_dir = Path(args.real_data) / "right-whales"
    full = [(f, i) for f, i in _read_labels(rw_dir)]
    if args.max_individuals:  # a quick smoke run
        keep_ids = set(sorted({i for _, i in full})[: args.max_individuals])
        full = [(f, i) for f, i in full if i in keep_ids]
    probe = ImageSet(
        "right-whales", np.zeros((len(full), 1, 1), np.float32), [i for _, i in full], [f for f, _ in full]
    )
    sp = split_open_set(
        probe,
        args.seed,
        args.train_fraction,
        args.calib_fraction,
        max_gallery=args.max_gallery,
        max_train_photos=args.max_train_photos,
    )
    used = sorted(
        set(sp.train) | set(sp.calib.gallery) | set(sp.calib.queries) | set(sp.eval.gallery) | set(sp.eval.queries)
    )
    remap = {old: new for new, old in enumerate(used)}
    ds = load_square_set("right-whales", rw_dir, lambda f: f, keep={full[i][0] for i in used})
    assert ds.labels == [full[i][1] for i in used]
    re = lambda part: Part([remap[i] for i in part.gallery], [remap[i] for i in part.queries], part.truth)  # noqa: E731
    return ds, Split([remap[i] for i in sp.train], re(sp.calib), re(sp.eval))


def load_sets(args) -> tuple[dict[str, ImageSet], dict[str, Split]]:
    wanted = args.sets.split(",")
    sets: dict[str, ImageSet] = {}
    splits: dict[str, Split] = {}
    sets["right-whales"], splits["right-whales"] = load_right_whales(args)
    if "harbour-seals" in wanted:
        seals = load_square_set("harbour-seals", Path(args.real_data) / "harbour-seals", seal_source_photo)
        sets["harbour-seals"] = seals
        splits["harbour-seals"] = split_open_set(seals, args.seed, 0.0, 0.35, max_gallery=args.max_gallery)
    if "flukes" in wanted:
        sets["flukes"], splits["flukes"] = load_flukes(Path(args.real_flukes), args.seed, args.new_flukes)
    return sets, splits


def build_embedders(args, sets, splits, cache) -> list[Embedder]:
    embedders: list[Embedder] = []
    rows = args.rows.split(",")
    if "scratch" in rows:
        embedders.append(scratch_resnet(sets, splits, cache, args.scratch_budget_s, args.scratch_size, args.seed))
    if "lite0_gem" in rows:
        embedders.append(lite0_gem_row(sets, cache, args.lite_suffix_blocks, args.gem_cut))
    suffix_blocks = {"efficientnet_lite0": args.lite_suffix_blocks, "dinov2_s": args.dino_suffix_blocks}
    for arch, blocks in suffix_blocks.items():
        if arch in rows:
            embedders += backbone_rows(
                arch, sets, splits, cache, blocks, args.finetune_budget_s, args.finetune_epochs, args.seed
            )
    return embedders


def score_set(args, name, ds, split, cache, embedders, curves, matching=DEFAULT_MATCHING) -> list[tuple]:
    """Table rows for one image set: local features alone, then each embedder alone and fused with them
    (``matching``: how the local features verify a pair, a profile's ``ml.profiles.LocalMatching``)."""
    local = LocalScores(ds, cache, matching)
    folds = split.folds or [(split.calib, split.eval)]
    mats = [
        (local.matrix(fit_part, f"{name} fit"), local.matrix(ev_part, f"{name} eval")) for fit_part, ev_part in folds
    ]
    sift_s, match_s = local.seconds()
    n_gallery = len(folds[0][1].gallery)
    local_parts = [
        (score_part(ds, fp, None, fm), score_part(ds, ep, None, em)) for (fp, ep), (fm, em) in zip(folds, mats)
    ]
    res = evaluate([(fit_matcher(a, "inl", args.shortlist), b) for a, b in local_parts], args.shortlist)
    rows = [(name, "RootSIFT + RANSAC alone", "all gallery", res, 1000 * (sift_s + n_gallery * match_s))]
    if name == "right-whales":
        curves["RootSIFT"] = res.calib_points
    photos_per_ind = n_gallery / max(1, len(set(ds.labels[i] for i in folds[0][1].gallery)))
    k_photos = min(n_gallery, args.shortlist * photos_per_ind)
    for emb in embedders:
        v = emb.vectors[name]
        parts = [(score_part(ds, fp, v, fm), score_part(ds, ep, v, em)) for (fp, ep), (fm, em) in zip(folds, mats)]
        res = evaluate([(fit_matcher(a, "cos", args.shortlist), b) for a, b in parts], args.shortlist)
        ms_emb = 1000 * emb.sec_per_image
        rows.append((name, emb.name, "embedding", res, ms_emb))
        res_f = evaluate([(fit_matcher(a, "fused", args.shortlist, args.fusion), b) for a, b in parts], args.shortlist)
        fused_ms = ms_emb + 1000 * (sift_s + k_photos * match_s)
        rows.append((name, emb.name, f"fused + RootSIFT top-{args.shortlist}", res_f, fused_ms))
        if name == "right-whales" and emb.name in args.plot_models.split(","):
            curves[f"{emb.name} cosine"] = res.calib_points
            curves[f"{emb.name} fused"] = res_f.calib_points
    return rows


SET_PROFILES = {"right-whales": "right_whale_head", "harbour-seals": "seal_face"}  # the rest: humpback flukes


def set_matching(name: str) -> LocalMatching:
    """How the site's RootSIFT verifies this set's photos: its species profile's ``LocalMatching``."""
    return PROFILES[SET_PROFILES[name]].local_matching if name in SET_PROFILES else DEFAULT_MATCHING


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(out)
    t_start = time.perf_counter()
    sets, splits = load_sets(args)
    sizes = describe_splits(sets, splits)
    print(sizes)
    embedders = build_embedders(args, sets, splits, cache)
    table, curves = [], {}
    for name, ds in sets.items():
        table += score_set(args, name, ds, splits[name], cache, embedders, curves, set_matching(name))
    text = render(table, embedders, sizes, args, time.perf_counter() - t_start)
    print(text)
    (out / "real_reid.md").write_text(text)
    C.reliability_plot(
        curves, out / "reliability_right_whales.png", title="Right whales, eval individuals: P(same) vs observed"
    )
    print(f"wrote {out / 'real_reid.md'} and {out / 'reliability_right_whales.png'}")
    return 0


def describe_splits(sets, splits) -> str:
    lines = ["split sizes (individuals never trained on: calib fits calibration/threshold, eval is reported):"]
    for name, sp in splits.items():
        ds = sets[name]

        def ids(idx):
            return len({ds.labels[i] for i in idx})

        parts = (
            sp.folds
            and [("fold A", sp.folds[0][0]), ("fold B", sp.folds[0][1])]
            or [("calib", sp.calib), ("eval", sp.eval)]
        )
        desc = [f"train {len(sp.train)} photos / {ids(sp.train)} ids"] if sp.train else []
        for label, p in parts:
            n_new = sum(t == NEW_WHALE for t in p.truth)
            desc.append(
                f"{label}: gallery {len(p.gallery)} photos / {ids(p.gallery)} ids, "
                f"queries {len(p.queries)} ({n_new} new_whale)"
            )
        lines.append(f"  {name}: " + "; ".join(desc))
    return "\n".join(lines)


DEFAULT_ROW = "efficientnet_lite0 frozen"  # the model the CLI, the site and seed_demo use (ml.presets)


def default_differences(table) -> list[str]:
    """One line per other row of each set: the default's fused ranking minus that row, paired."""
    out = []
    for name in dict.fromkeys(row[0] for row in table):
        rows = [(model, matcher, r) for n, model, matcher, r, _ in table if n == name]
        default = next((r for model, matcher, r in rows if model == DEFAULT_ROW and matcher.startswith("fused")), None)
        if default is None:
            continue
        out += [difference_line(f"{name}, vs {m} ({k})", default, r) for m, k, r in rows if r is not default]
    return out


def render(table, embedders, sizes, args, seconds) -> str:
    head = (
        "| set | model | matcher | MAP@5 | top-1 | top-5 | new P | new R | ECE | ms/query |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"# Real re-identification benchmark (bench/real_reid.py, seed {args.seed}, {seconds / 60:.1f} min)",
        "",
        "```",
        sizes,
        "```",
        "",
        head,
    ]
    for name, model, matcher, r, ms in table:
        lines.append(
            f"| {name} | {model} | {matcher} | {r.map5:.3f} | {r.top1:.3f} | {r.top5:.3f} | "
            f"{r.new_precision:.2f} | {r.new_recall:.2f} | {r.ece:.3f} | {ms:.0f} |"
        )
    lines += ["", f"The default ({DEFAULT_ROW} + RootSIFT) against each other row, paired over the same queries:", ""]
    lines += default_differences(table)
    lines += ["", "Rows:"] + [f"- {e.name}: {e.note}" for e in embedders]
    lines += [
        "",
        "ms/query: embedding forward per image on this CPU (+ SIFT extraction and the measured mean time "
        "of one RootSIFT match times the gallery photos verified). new P/R: precision and recall of "
        "'new individual' ranked first, threshold on the calibrated P tuned on calib individuals. "
        "ECE: on eval positive and hardest-negative pairs.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
