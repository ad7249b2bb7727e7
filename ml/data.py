"""Training data: Kaggle CSVs, near-duplicate grouping, a leak-free split, a cached Dataset.

Pipeline (seeds 000/001):
1. ``read_labels_csv`` / ``read_boxes_csv`` with clear ``DatasetError``s (file and line named).
2. ``group_near_duplicates``: union-find over pHash Hamming distance <= ``NEAR_DUPLICATE_BITS``.
   Same-label duplicates stay together as one group; groups whose labels disagree drop their
   ``new_whale`` copies first, and are dropped entirely when the rest still disagree.
3. ``split_dataset``: split by individual AND by near-duplicate group, *before* any augmentation,
   so no group (and no augmented copy) is on both sides.
4. ``CropCache`` preprocesses each image once (load -> box -> crop to ``size``) into
   ``<out_dir>/cache/*.npy`` keyed by file sha256 + size + box; ``FlukeDataset`` serves those crops
   (raw, or through an optional per-item ``transform``); ``make_loader`` batches them and, for training,
   oversamples rare ids by repetition. ``ml.train`` gives no per-item transform: it augments whole
   batches on the device (``ml.preprocess.TrainTransform.apply_batch``), which is faster than per item.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing as mp
import os
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from ml.io import atomic_path, atomic_write_json
from ml.types import NEW_WHALE, Box, ImageHashes


class DatasetError(ValueError):
    """A problem with the training data, with a message naming the file (and line)."""


# --------------------------------------------------------------------------- CSV reading


def _open_csv(path: str | Path, what: str) -> tuple[Path, list[str]]:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: {what} file not found")
    if not path.is_file():
        raise DatasetError(f"{path}: {what} is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: {what} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read {what} ({exc.strerror})") from None
    return path, text.splitlines()


def _header_index(path: Path, header: list[str], required: Sequence[str]) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    out = {}
    missing = []
    for name in required:
        if name.lower() in lowered:
            out[name] = lowered.index(name.lower())
        else:
            missing.append(name)
    if missing:
        raise DatasetError(
            f"{path}:1: missing column(s) {', '.join(missing)}; header is {','.join(header)!r}, "
            f"expected {','.join(required)}"
        )
    return out


def read_labels_csv(path: str | Path) -> list[tuple[str, str, int]]:
    """Rows ``(image, id, line)`` of a Kaggle ``Image,Id`` CSV."""
    path, lines = _open_csv(path, "labels CSV")
    rows = list(csv.reader(lines))
    if not rows or not any(c.strip() for c in rows[0]):
        raise DatasetError(f"{path}: empty file, expected a header Image,Id")
    idx = _header_index(path, rows[0], ("Image", "Id"))
    width = len(rows[0])
    out = []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != width:
            raise DatasetError(f"{path}:{lineno}: expected {width} fields ({','.join(rows[0])}), got {len(row)}")
        image, label = row[idx["Image"]].strip(), row[idx["Id"]].strip()
        if not image:
            raise DatasetError(f"{path}:{lineno}: empty Image")
        if not label:
            raise DatasetError(f"{path}:{lineno}: empty Id for {image}")
        if " " in label:
            raise DatasetError(f"{path}:{lineno}: Id {label!r} contains a space")
        if image in seen:
            raise DatasetError(f"{path}:{lineno}: image {image} listed twice (first on line {seen[image]})")
        seen[image] = lineno
        out.append((image, label, lineno))
    if not out:
        raise DatasetError(f"{path}: no rows after the header")
    return out


def read_boxes_csv(path: str | Path) -> dict[str, Box]:
    """``{image: Box}`` from an ``Image,x0,y0,x1,y1`` CSV (original pixels)."""
    path, lines = _open_csv(path, "boxes CSV")
    rows = list(csv.reader(lines))
    if not rows:
        raise DatasetError(f"{path}: empty file, expected a header Image,x0,y0,x1,y1")
    cols = ("Image", "x0", "y0", "x1", "y1")
    idx = _header_index(path, rows[0], cols)
    width = len(rows[0])
    out: dict[str, Box] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != width:
            raise DatasetError(f"{path}:{lineno}: expected {width} fields, got {len(row)}")
        image = row[idx["Image"]].strip()
        try:
            x0, y0, x1, y1 = (float(row[idx[c]]) for c in cols[1:])
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: box coordinates must be numbers, got {row!r}") from None
        if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
            raise DatasetError(f"{path}:{lineno}: box must have x1 > x0 and y1 > y0, got {x0},{y0},{x1},{y1}")
        out[image] = Box(x0, y0, x1, y1)
    return out


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    image: str  # name as in the CSV
    label: str  # the individual (or new_whale)
    path: str  # absolute path of the file
    line: int = 0
    box: Box | None = None
    group: int = -1  # near-duplicate group id
    sha256: str = ""
    phash: str = ""
    flip: bool = False  # mirrored copy (flip_as_new_id)

    @property
    def truth(self) -> str:
        return self.label


def load_samples(csv_path: str | Path, images_dir: str | Path, boxes_csv: str | Path | None = None) -> list[Sample]:
    """Rows of the labels CSV joined with image paths (must exist) and optional boxes."""
    rows = read_labels_csv(csv_path)
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: images folder not found")
    boxes = read_boxes_csv(boxes_csv) if boxes_csv else {}
    samples, missing = [], []
    for image, label, line in rows:
        p = images_dir / image
        if not p.is_file():
            missing.append((image, line))
            continue
        samples.append(Sample(image=image, label=label, path=str(p.resolve()), line=line, box=boxes.get(image)))
    if missing:
        first = ", ".join(f"{img} (line {ln})" for img, ln in missing[:3])
        raise DatasetError(
            f"{csv_path}: {len(missing)} image(s) not found in {images_dir}: {first}"
            f"{', ...' if len(missing) > 3 else ''}"
        )
    return samples


# --------------------------------------------------------------------------- hashing / duplicates


def _hash_cache_key(path: str) -> str:
    st = os.stat(path)
    return f"{path}|{st.st_size}|{int(st.st_mtime_ns)}"


def compute_sample_hashes(
    samples: list[Sample], cache_dir: str | Path | None = None, num_workers: int = 1, progress: bool = False
) -> list[tuple[Sample, str]]:
    """Fill ``sha256`` and ``phash`` on each sample (memoised in ``cache_dir/hashes.json``).

    Returns the samples whose file is not a usable photo (corrupt, too small, ...) with the reason;
    seed 000 lists and drops such photos rather than failing the whole run.
    """
    from ml.errors import ImageRejected
    from ml.images import load_image, phash

    memo: dict[str, list[str]] = {}
    memo_path = Path(cache_dir) / "hashes.json" if cache_dir else None
    if memo_path and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
    todo = []
    rejected: list[tuple[Sample, str]] = []
    for s in samples:
        key = _hash_cache_key(s.path)
        if key in memo:
            s.sha256, s.phash = memo[key]
        else:
            todo.append((s, key))

    def work(item):
        s, key = item
        try:
            data = Path(s.path).read_bytes()
            image = load_image(data)  # the same checks (min side, pixel cap) the crop will face
            h = ImageHashes(sha256=hashlib.sha256(data).hexdigest(), phash=phash(image))
        except (ImageRejected, OSError) as exc:
            return s, key, exc
        return s, key, h

    if todo:
        it = _maybe_pool_map(work, todo, num_workers)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(todo), desc="hashing", unit="img")
        for s, key, h in it:
            if isinstance(h, Exception):
                rejected.append((s, str(h)))
                continue
            s.sha256, s.phash = h.sha256, h.phash
            memo[key] = [h.sha256, h.phash]
        if memo_path:
            atomic_write_json(memo_path, memo)
    return rejected


def _maybe_pool_map(fn, items, num_workers):
    if num_workers and num_workers > 1 and len(items) > 8:
        pool = ThreadPoolExecutor(max_workers=num_workers)
        try:
            yield from pool.map(fn, items)
        finally:
            pool.shutdown()
    else:
        for x in items:
            yield fn(x)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_components(
    phashes: Sequence[str], sha256s: Sequence[str] | None = None, max_bits: int | None = None
) -> list[int]:
    """Component id per item: union-find over pHash Hamming <= max_bits (and equal sha256)."""
    if max_bits is None:
        from ml.images import NEAR_DUPLICATE_BITS

        max_bits = NEAR_DUPLICATE_BITS
    n = len(phashes)
    uf = _UnionFind(n)
    if n:
        values = np.array([int(h, 16) if h else 0 for h in phashes], dtype=np.uint64)
        for i in range(n - 1):
            d = np.bitwise_count(values[i + 1 :] ^ values[i])
            for j in np.nonzero(d <= max_bits)[0]:
                uf.union(i, i + 1 + int(j))
    if sha256s:
        first: dict[str, int] = {}
        for i, s in enumerate(sha256s):
            if s:
                if s in first:
                    uf.union(first[s], i)
                else:
                    first[s] = i
    roots = [uf.find(i) for i in range(n)]
    remap: dict[int, int] = {}
    return [remap.setdefault(r, len(remap)) for r in roots]


@dataclass
class DuplicateReport:
    groups: int = 0
    duplicate_images: int = 0  # images that share a group with another image
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)


def group_near_duplicates(samples: list[Sample], max_bits: int | None = None) -> tuple[list[Sample], DuplicateReport]:
    """Assign ``group`` and drop conflicting duplicates (``new_whale`` copies first).

    Needs ``phash``/``sha256`` filled (``compute_sample_hashes``).
    """
    comp = near_duplicate_components([s.phash for s in samples], [s.sha256 for s in samples], max_bits)
    members: dict[int, list[Sample]] = defaultdict(list)
    for s, c in zip(samples, comp):
        s.group = c
        members[c].append(s)
    report = DuplicateReport()
    keep: list[Sample] = []
    for group in members.values():
        if len(group) > 1:
            report.duplicate_images += len(group)
        labels = {s.label for s in group}
        if len(labels) > 1 and NEW_WHALE in labels:
            for s in group:
                if s.label == NEW_WHALE:
                    report.dropped.append((s.image, "duplicate of a known whale, new_whale copy dropped"))
            group = [s for s in group if s.label != NEW_WHALE]
            labels = {s.label for s in group}
        if len(labels) > 1:
            for s in group:
                report.dropped.append((s.image, f"near-duplicate with conflicting ids {sorted(labels)}"))
            continue
        keep.extend(group)
    keep.sort(key=lambda s: s.line)
    report.groups = len({s.group for s in keep})
    return keep, report


# --------------------------------------------------------------------------- splitting


@dataclass
class Split:
    train: list[Sample]
    val: list[Sample]  # queries; truth is ``val_truth[i]``
    val_truth: list[str]  # the label, or NEW_WHALE for new_whale photos and held-out individuals
    new_individuals: list[str]  # ids held out entirely as "new" (for the new-whale threshold)
    stats: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.train})


def split_dataset(
    samples: list[Sample], val_fraction: float = 0.2, new_individual_fraction: float = 0.1, seed: int = 0
) -> Split:
    """Split by individual and near-duplicate group (``group`` must be set).

    - ``new_whale`` photos -> validation, truth new_whale.
    - a fraction of the individuals with >= 2 groups are held out whole -> validation, truth new_whale.
    - other individuals with >= 2 groups: about ``val_fraction`` of their groups (at least one, and
      at least one left for training) -> validation.
    - individuals with one group (one photo, or only near-duplicates) stay in training.
    """
    rng = random.Random(seed)
    by_label: dict[str, dict[int, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    new_whales: list[Sample] = []
    for s in samples:
        if s.label == NEW_WHALE:
            new_whales.append(s)
        else:
            by_label[s.label][s.group].append(s)
    labels = sorted(by_label)
    new_ids = _held_out_individuals(rng, [lab for lab in labels if len(by_label[lab]) >= 2], new_individual_fraction)
    new_set = set(new_ids)
    train, val, truth = [], [], []
    for lab in labels:
        groups = [by_label[lab][g] for g in sorted(by_label[lab])]
        if lab in new_set:
            for g in groups:
                val.extend(g)
                truth.extend([NEW_WHALE] * len(g))
            continue
        if len(groups) < 2:
            for g in groups:
                train.extend(g)
            continue
        order = list(range(len(groups)))
        rng.shuffle(order)
        n_val = min(len(groups) - 1, max(1, int(round(len(groups) * val_fraction))))
        for rank, gi in enumerate(order):
            if rank < n_val:
                val.extend(groups[gi])
                truth.extend([lab] * len(groups[gi]))
            else:
                train.extend(groups[gi])
    for s in new_whales:
        val.append(s)
        truth.append(NEW_WHALE)
    stats = _split_stats(samples, by_label, new_whales, new_ids, train, truth)
    return Split(train=train, val=val, val_truth=truth, new_individuals=new_ids, stats=stats)


def _held_out_individuals(rng: random.Random, multi: list[str], new_individual_fraction: float) -> list[str]:
    """The individuals (of those with 2+ groups) held out whole as "new" (at least two known ones stay)."""
    n_new = int(round(len(multi) * new_individual_fraction)) if new_individual_fraction > 0 else 0
    if new_individual_fraction > 0 and n_new == 0 and len(multi) >= 4:
        n_new = 1
    n_new = min(n_new, max(0, len(multi) - 2))  # keep at least two known ids to validate
    shuffled = multi[:]
    rng.shuffle(shuffled)
    return sorted(shuffled[:n_new])


def _split_stats(
    samples: list[Sample],
    by_label: dict,
    new_whales: list[Sample],
    new_ids: list[str],
    train: list[Sample],
    truth: list[str],
) -> dict[str, int]:
    labels = sorted(by_label)
    return {
        "n_images": len(samples),
        "n_train": len(train),
        "n_val": len(truth),  # one truth per validation photo
        "n_ids": len(labels),
        "n_train_ids": len({s.label for s in train}),
        "n_val_known": sum(1 for t in truth if t != NEW_WHALE),
        "n_val_new": sum(1 for t in truth if t == NEW_WHALE),
        "n_new_individuals": len(new_ids),
        "n_new_whale_photos": len(new_whales),
        "n_single_group_ids": sum(1 for lab in labels if len(by_label[lab]) < 2),
    }


# --------------------------------------------------------------------------- crop cache


def _box_key(box: Box | None) -> str:
    if box is None:
        return "whole"
    return "b" + hashlib.sha1(f"{box.x0:.2f},{box.y0:.2f},{box.x1:.2f},{box.y1:.2f}".encode()).hexdigest()[:10]


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def preprocess_file(path: str, box: Box | None, size: int, crop=None) -> np.ndarray:
    """One training crop; ``crop``: the species profile's margins and aspect (``ml.profiles.Crop``)."""
    from ml.images import load_image
    from ml.preprocess import preprocess

    image = load_image(path)
    return np.asarray(preprocess(image, box, size=size, crop=crop), dtype=np.float32)


class CropCache:
    """Preprocessed crops (float32, size x size), one ``.npy`` per (file sha256, size, box)."""

    def __init__(self, cache_dir: str | Path, size: int, keep_in_memory_bytes: int = 1 << 30, profile=None):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = int(size)
        self.profile = profile  # an ml.profiles.SpeciesProfile: its crop geometry; None = the humpback fluke
        self.keep_in_memory_bytes = keep_in_memory_bytes
        self.hits = 0
        self.misses = 0

    def key(self, sample: Sample) -> str:
        sha = sample.sha256 or _file_sha256(sample.path)
        sample.sha256 = sha
        # another profile crops the same file differently: its key names it (the humpback's keys are unchanged)
        prefix = "" if self.profile is None or self.profile.key == "humpback_fluke" else f"{self.profile.key}_"
        return f"{prefix}{sha[:24]}_{self.size}_{_box_key(sample.box)}"

    def path_for(self, sample: Sample) -> Path:
        return self.dir / f"{self.key(sample)}.npy"

    def ensure(self, samples: Sequence[Sample], num_workers: int = 1, progress: bool = False) -> list[Path]:
        """Preprocess every sample not cached yet; return the cache path per sample."""
        paths = [self.path_for(s) for s in samples]
        todo = [(s, p) for s, p in zip(samples, paths) if not p.is_file()]
        self.hits += len(samples) - len(todo)
        self.misses += len(todo)
        seen = set()
        unique = []
        for s, p in todo:
            if p not in seen:
                seen.add(p)
                unique.append((s, p))

        def work(item):
            s, p = item
            try:
                arr = preprocess_file(s.path, s.box, self.size, self.profile.crop if self.profile else None)
            except Exception as exc:
                raise DatasetError(f"{s.path}: cannot preprocess ({exc})") from None
            with atomic_path(p, suffix=".npy") as tmp:
                np.save(tmp, arr)
            return p

        it = _maybe_pool_map(work, unique, num_workers)
        if progress and unique:
            from tqdm import tqdm

            it = tqdm(it, total=len(unique), desc="preprocessing", unit="img")
        for _ in it:
            pass
        return paths

    def load_all(self, paths: Sequence[str | Path]) -> np.ndarray | None:
        """Stack into one (N, size, size) float32 array when it fits the memory budget."""
        nbytes = len(paths) * self.size * self.size * 4
        if nbytes > self.keep_in_memory_bytes:
            return None
        out = np.empty((len(paths), self.size, self.size), dtype=np.float32)
        for i, p in enumerate(paths):
            out[i] = np.load(p)
        return out


# --------------------------------------------------------------------------- datasets / loaders

try:
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler
except ImportError:  # pragma: no cover - torch is a hard dependency of training
    torch = None  # type: ignore[assignment]
    Dataset = Sampler = object  # type: ignore[misc,assignment]


class FlukeDataset(Dataset):
    """Cached crops + labels. ``transform`` (optional) maps the float32 crop to a (1, S, S) tensor; without
    one, items are the raw crops (``ml.train`` augments whole batches itself, see the module doc)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        class_index: dict[str, int] | None,
        cache: CropCache,
        transform: Callable | None = None,
        num_workers: int = 1,
        progress: bool = False,
    ):
        self.samples = list(samples)
        self.class_index = class_index
        self.transform = transform
        self.paths = [str(p) for p in cache.ensure(self.samples, num_workers=num_workers, progress=progress)]
        self.array = cache.load_all(self.paths)
        self.labels = [
            class_index[s.label] if class_index is not None and s.label in class_index else -1 for s in self.samples
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def crop(self, i: int) -> np.ndarray:
        arr = self.array[i] if self.array is not None else np.load(self.paths[i])
        if self.samples[i].flip:
            arr = arr[:, ::-1]
        return np.ascontiguousarray(arr, dtype=np.float32)

    def __getitem__(self, i: int):
        arr = self.crop(i)
        x = self.transform(arr) if self.transform is not None else torch.from_numpy(arr)[None]
        return x, self.labels[i]


def add_flipped_ids(samples: Sequence[Sample]) -> list[Sample]:
    """Mirrored copies as separate individuals (Kaggle 2019 2nd place): ``<id>_flip``."""
    out = list(samples)
    for s in samples:
        if s.label == NEW_WHALE:
            continue
        c = Sample(**{**s.__dict__})
        c.label = f"{s.label}_flip"
        c.flip = True
        out.append(c)
    return out


def oversample_indices(labels: Sequence[int], oversample_to: int) -> list[int]:
    """Every index once, plus repeats so that each label has at least ``oversample_to`` items."""
    by: dict[int, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        by[lab].append(i)
    out = list(range(len(labels)))
    if oversample_to and oversample_to > 1:
        for _label, idx in sorted(by.items()):
            k = 0
            while len(idx) + k < oversample_to:
                out.append(idx[k % len(idx)])
                k += 1
    return out


class _IndexDataset(Dataset):
    def __init__(self, base: Dataset, indices: Sequence[int]):
        self.base = base
        self.indices = list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.base[self.indices[i]]


def default_num_workers() -> int:
    """Processes for hashing and crop preparation (before training): one per core, up to 4."""
    return min(4, os.cpu_count() or 1)


def default_loader_workers(in_memory: bool = False, device=None) -> int:
    """DataLoader worker processes for the training loop.

    0 (load in the training process) when there are at most 2 CPUs, or when training on the CPU
    with the crops already in memory: then the only per-sample work is one small affine warp,
    and worker processes would just compete with the training threads for the same cores
    (bench/train_throughput.py measured ml.train at 0.46x of a bare loop with 2 workers on
    2 cores). Otherwise ``default_num_workers()``.
    """
    cpus = os.cpu_count() or 1
    on_cpu = device is None or str(getattr(device, "type", device)) == "cpu"
    if cpus <= 2 or (on_cpu and in_memory):
        return 0
    return default_num_workers()


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % (2**32)
    np.random.seed(seed)
    random.seed(seed)


class EpochShuffle(Sampler):
    """A shuffled order that depends on (seed, epoch) only: ``set_epoch(e)`` before each epoch.

    DataLoader's own shuffling draws from its generator, which also seeds the workers once per iterator,
    and persistent workers keep their iterator across epochs: the same seed then gave another order
    with workers than without. Here the order is the same whatever the workers, and a resumed run
    replays it."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int | None = None,
    seed: int = 0,
    drop_last: bool = False,
    oversample_to: int = 0,
) -> DataLoader:
    """Batches of ``dataset``; with ``shuffle``, the order comes from an :class:`EpochShuffle` sampler
    (``loader.sampler.set_epoch(epoch)``)."""
    if num_workers is None:
        num_workers = default_num_workers()
    if oversample_to and isinstance(dataset, FlukeDataset):
        dataset = _IndexDataset(dataset, oversample_indices(dataset.labels, oversample_to))
    g = torch.Generator()
    g.manual_seed(seed)
    context = None
    if num_workers > 0 and threading.active_count() > 1:
        # forking a process that runs other threads (a web server, a test's live server) can copy a lock
        # held by one of them into the worker, which then waits on it forever: start workers cleanly
        context = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    n = len(cast(Sized, dataset))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffle(n, seed) if shuffle else None,
        drop_last=drop_last and n > batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_worker_init if num_workers > 0 else None,
        generator=g,
        multiprocessing_context=context,
    )
