"""Train a fluke identifier and write a model folder.

Model folder (``config.out_dir``):
- ``model.pt``: ``{"config", "state_dict", "classes", "new_threshold", "version", "arch", "image_size",
  "embedding_dim", "head"}`` (best-validation weights),
- ``config.json``, ``metrics.json`` (held-out metrics of the best model), ``history.json`` (per epoch),
  ``*.png`` plots (``ml.evaluate.write_report``), ``split.json`` (which photos were used where),
- ``localizer.pt`` when boxes were given (``ml.localizer.train_localizer``) and the localizer beat the default
  box on its validation photos (``metrics.json`` ``localizer``: ``val_iou_mean``, ``iou_default_mean``, ``shipped``),
- ``checkpoint.pt`` (last epoch: model, optimizer, scheduler, rng states) for ``resume=True``,
- ``cache/`` preprocessed crops (reused by later runs pointing at the same folder or ``cache_dir``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LinearLR, LRScheduler

from ml.data import (
    CropCache,
    DatasetError,
    DuplicateReport,
    FlukeDataset,
    Sample,
    Split,
    add_flipped_ids,
    compute_sample_hashes,
    default_loader_workers,
    default_num_workers,
    group_near_duplicates,
    load_samples,
    make_loader,
    split_dataset,
)
from ml.device import autocast, pick_device, uses_bf16
from ml.io import atomic_path, atomic_torch_save, atomic_write_json
from ml.model_folder import LOCALIZER_FILE, MODEL_FILE, SavedModel, read_model, write_model_folder
from ml.models import create_model, embed_crops, pooled_crops
from ml.presets import DEFAULT
from ml.profiles import Mirror, get_profile
from ml.types import DEFAULT_NEW_THRESHOLD, NEW_WHALE, TrainMetrics, TrainProgress, TrainResult

log = logging.getLogger(__name__)


class TrainingCancelled(RuntimeError):
    """Raised by ``train`` when ``should_stop()`` returned True."""


@dataclass
class TrainConfig:
    csv: str
    images_dir: str
    out_dir: str
    boxes_csv: str | None = None
    arch: str = DEFAULT.arch  # ml.presets.ARCHS
    # pretrained archs: None fine-tunes the whole encoder, 0 freezes it (embedding + head learn), n the last n
    # blocks; the from-scratch ResNets ignore it (they train whole)
    trainable_blocks: int | None = DEFAULT.trainable_blocks
    image_size: int = DEFAULT.image_size
    embedding_dim: int = DEFAULT.embedding_dim
    head: str = DEFAULT.head  # "arcface" | "softmax" (seed 000)
    # s=16, m=0.3 rather than the face-recognition 30 / 0.5: from scratch under seed 000's augmentation
    # the larger pair barely learns (bench/recipe_sweep.py: held-out known MAP@5 0.30 vs 0.66, 22 epochs)
    arcface_s: float = 16.0
    arcface_m: float = 0.3
    margin_warmup_epochs: float = 3.0  # ArcFace margin ramps 0 -> arcface_m over these epochs (per step)
    softmax_weight: float = 0.0  # + this x cross-entropy on the margin-free scaled cosines (ArcFace+softmax combo)
    # "avg" | "gem" (generalised mean, learnable p) | "grid" (2x2 cells, concatenated)
    pooling: str = DEFAULT.pooling
    lr_warmup_epochs: float = 1.0  # linear lr warm-up over the first steps (0 = off)
    bn_recalibrate: bool = True  # recompute BatchNorm running stats on the training crops before validating
    new_threshold_min_new: int = 5  # fewer new-whale (or known) validation queries -> DEFAULT_NEW_THRESHOLD
    new_threshold_min_known: int = 5
    epochs: int = DEFAULT.epochs
    batch_size: int = DEFAULT.batch_size
    lr: float = DEFAULT.lr  # seed 000 Adam; use ml.presets.default_lr("sgd") with optimizer="sgd" (seed 001)
    # "adam": lr * lr_decay**epoch; "sgd": momentum .9, wd 1e-4, x0.1 at 80% and 95%
    optimizer: str = DEFAULT.optimizer
    lr_decay: float = 0.9  # Adam's per-epoch lr factor (seed 000: 0.9)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # the species profile (ml.profiles): crop geometry, which mirrors are allowed, localizer; recorded in the folder
    profile: str = "humpback_fluke"
    hflip: bool = False
    flip_as_new_id: bool = False
    rotation: float = 20.0
    zoom: float = 0.2
    shift: float = 0.2
    # augmentation warm-up: the ranges above start at aug_start x and reach full strength after this many
    # epochs (0 = full from the start). With it the model learns early and still ends on seed 000's full
    # augmentation, which made it the most robust to box error in bench/recipe_sweep.py.
    aug_warmup_epochs: float = 10.0
    aug_start: float = 0.25
    # photometric augmentation beside the geometric one (ml.preprocess.PhotometricTransform: contrast, gamma,
    # blur, JPEG, noise, occlusion); off by default until bench/recipe_sweep.py --data shows it helps on real photos
    photometric: bool = False
    oversample_to: int = 4
    seed: int = 0
    val_fraction: float = 0.2
    new_individual_fraction: float = 0.1
    num_workers: int | None = None  # prep: min(4, cpus); loader: ml.data.default_loader_workers
    init_from: str | None = None  # a previous model folder to fine-tune from
    init_weights: str | None = None  # a local state-dict file (operator's weights), loaded non-strictly
    resume: bool = False
    max_steps: int | None = None
    device: str = ""
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on the CPU; "bf16" / "fp32" force it
    train_localizer: bool | None = None  # default: when boxes_csv is given
    localizer_epochs: int | None = None
    time_budget_s: float | None = None
    cache_dir: str | None = None  # default <out_dir>/cache
    eval_batch_size: int = 64
    progress_bar: bool = False  # tqdm bars for preprocessing (the CLI turns it on)
    # fit calibration.json (P same individual, fused-P new threshold) on the held-out individuals (ml.train_calibration)
    calibrate: bool = True
    calibration_shortlist: int = 50
    # fit ood.npz (ml.ood: flag queries unlike the training photos) on the training and held-out validation embeddings
    ood_detector: bool = True
    ood_quantile: float = 0.99

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_profile(cls, profile: str, **kwargs) -> TrainConfig:
        """A config for a species profile: its augmentation ranges unless given (the humpback's are today's)."""
        aug = get_profile(profile).augmentation
        ranges = {"rotation": aug.rotation, "zoom": aug.zoom, "shift": aug.shift}
        return cls(profile=profile, **{**ranges, **kwargs})

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_optimizer(model, config: TrainConfig) -> tuple[torch.optim.Optimizer, LRScheduler]:
    """The optimizer and its per-epoch lr schedule (stepped after each epoch). ``adam``: lr x lr_decay**epoch
    (seed 000); ``sgd``: momentum, weight decay, lr x0.1 at 80% and 95% of the epochs (seed 001). Both
    schedules are chainable (they scale the lr they find), so the per-step warm-up can ride on them."""
    opt: torch.optim.Optimizer
    sched: LRScheduler
    if config.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
    elif config.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        milestones = sorted({max(1, int(round(config.epochs * 0.8))), max(1, int(round(config.epochs * 0.95)))})
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose adam or sgd")
    return opt, sched


def make_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int) -> LinearLR | None:
    """Linear lr warm-up stepped after every optimizer step: step k (0-based) runs at (k + 1) / warmup_steps
    of the epoch's scheduled lr, the full lr from step ``warmup_steps - 1`` on (None: no warm-up)."""
    if warmup_steps <= 0:
        return None
    return LinearLR(optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps - 1)


def _init_from_model_dir(model, model_dir: str, classes: list[str]) -> dict:
    """Fine-tune: copy backbone + embedding (+ head when the class list is the same)."""
    if not (Path(model_dir) / MODEL_FILE).is_file():
        raise DatasetError(f"{model_dir}: no {MODEL_FILE} to initialise from")
    saved = read_model(model_dir, trusted=True)
    same_classes = saved.classes == list(classes)
    own = model.state_dict()
    keep = {
        k: v
        for k, v in saved.state_dict.items()
        if k in own and own[k].shape == v.shape and (same_classes or not k.startswith("head."))
    }
    result = model.load_state_dict(keep, strict=False)
    return {"loaded": len(keep), "missing": list(result.missing_keys), "head_reinitialised": not same_classes}


def chance_map5(n_ids: int, k: int = 5) -> float:
    """Expected MAP@k of a random ranking of ``n_ids`` candidates (the true one among them)."""
    if n_ids <= 0:
        return 0.0
    return sum(1.0 / (r * n_ids) for r in range(1, min(k, n_ids) + 1))


@dataclass
class _Validation:
    map5: float | None
    map5_known: float | None
    threshold: float | None
    ranked: list = field(default_factory=list)
    truth: list = field(default_factory=list)
    threshold_info: dict = field(default_factory=dict)


def aug_strength(epoch: int, warmup_epochs: float, start: float) -> float:
    """Augmentation strength for ``epoch`` (0-based): linear from ``start`` to 1 over ``warmup_epochs``."""
    if warmup_epochs <= 0:
        return 1.0
    return float(min(1.0, start + (1.0 - start) * epoch / warmup_epochs))


def _shutdown(loader) -> None:
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()


@torch.no_grad()
def recalibrate_bn(
    model, dataset: FlukeDataset, device, transform, batch_size: int = 64, max_batches: int = 8, precision: str = "auto"
) -> None:
    """Recompute every BatchNorm's running mean/var as the exact average over (up to ``max_batches``
    batches of) the un-augmented training crops. After a few dozen steps the momentum-0.1 running stats
    still lag far behind the weights, so eval-mode embeddings would be computed with stale stats."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns or len(dataset) < 2:
        return
    was_training = model.training
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    try:
        n = min(len(dataset), batch_size * max_batches)
        order = np.random.default_rng(0).permutation(len(dataset))[:n]
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                break
            x = torch.stack([transform(dataset.crop(int(j))) for j in idx]).to(device)
            with autocast(device, precision):
                model.features(x)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)


def _validate(
    model,
    gallery_ds: FlukeDataset,
    query_ds: FlukeDataset,
    truth: list[str],
    device,
    eval_transform,
    batch_size: int,
    default_threshold: float | None = None,
    min_new: int = 5,
    min_known: int = 5,
    precision: str = "auto",
) -> _Validation:
    from ml.gallery import GalleryIndex
    from ml.metrics import map_at_k, select_new_threshold

    if default_threshold is None:
        default_threshold = DEFAULT_NEW_THRESHOLD
    if len(query_ds) == 0 or len(gallery_ds) == 0:
        return _Validation(None, None, None)
    g = embed_crops(
        model, [gallery_ds.crop(i) for i in range(len(gallery_ds))], device, batch_size, eval_transform, precision
    )
    q = embed_crops(
        model, [query_ds.crop(i) for i in range(len(query_ds))], device, batch_size, eval_transform, precision
    )
    index = GalleryIndex(g.shape[1])
    index.add([f"g{i}" for i in range(len(g))], [s.label for s in gallery_ds.samples], g)
    matches = index.rank_batch(q, k=5)
    ranked = [[(m.label, m.score) for m in ms] for ms in matches]
    known = [i for i, t in enumerate(truth) if t != NEW_WHALE]
    map5_known = map_at_k([truth[i] for i in known], [[lab for lab, _ in ranked[i]] for i in known]) if known else None
    choice = select_new_threshold(ranked, truth, min_new=min_new, min_known=min_known, default=default_threshold)
    return _Validation(choice.map5, map5_known, choice.threshold, ranked, truth, choice.as_dict())


def _final_metrics(val: _Validation, split, dup_report, extra: dict) -> TrainMetrics:
    from ml.evaluate import evaluate_rankings
    from ml.metrics import apply_new_threshold

    metrics: dict = dict(extra)
    metrics.update({k: v for k, v in split.stats.items()})
    metrics["new_individuals"] = split.new_individuals
    unusable = sum(1 for _, why in dup_report.dropped if why.startswith("unusable"))
    metrics["duplicates_dropped"] = len(dup_report.dropped) - unusable
    metrics["unusable_dropped"] = unusable
    metrics["duplicate_images"] = dup_report.duplicate_images
    metrics["near_duplicate_groups"] = dup_report.groups
    metrics["chance_map5"] = chance_map5(metrics.get("n_train_ids", 0))
    if val.map5 is None:
        return TrainMetrics.from_dict(metrics)
    threshold = val.threshold if val.threshold is not None else DEFAULT_NEW_THRESHOLD  # set whenever map5 is
    preds = [apply_new_threshold(r, threshold) for r in val.ranked]
    metrics.update(evaluate_rankings(val.truth, preds))
    metrics["map5_known_only"] = val.map5_known
    metrics["new_threshold"] = val.threshold
    metrics["new_threshold_choice"] = val.threshold_info
    return TrainMetrics.from_dict(metrics)


def _version(state_dict: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state_dict)[:50]:
        h.update(k.encode())
        h.update(state_dict[k].detach().cpu().float().numpy().tobytes()[:4096])
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + h.hexdigest()[:8]


CHECKPOINT_FILE = "checkpoint.pt"


class _Reporter:
    """The caller's progress callback and cancel check, plus the run's clocks."""

    def __init__(
        self, progress: Callable[[TrainProgress], None] | None, should_stop: Callable[[], bool] | None, epochs: int
    ):
        self.progress, self.should_stop, self.epochs = progress, should_stop, epochs
        self.t_start = self.t_loop = time.monotonic()

    def __call__(self, **kw: Any) -> None:
        if self.progress is not None:
            self.progress(TrainProgress(epochs=self.epochs, **kw))

    def raw(self, p: TrainProgress) -> None:
        """A report that carries its own counter (the localizer's epochs), after a cancel check."""
        self.check_stop()
        if self.progress is not None:
            self.progress(p)

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled("training cancelled")

    def seconds(self) -> float:
        return round(time.monotonic() - self.t_start, 2)


@dataclass
class TrainingData:
    """The usable photos, their leak-free split, and the cached crop datasets built from it."""

    samples: list[Sample]
    dup_report: DuplicateReport
    split: Split
    classes: list[str]
    train_ds: FlukeDataset  # raw crops: train_tf augments whole batches on the device (train_one_epoch)
    gallery_ds: FlukeDataset
    query_ds: FlukeDataset
    train_tf: Any  # ml.preprocess.TrainTransform
    eval_tf: Any  # ml.preprocess.EvalTransform


def _usable_samples(
    config: TrainConfig, cache_dir: Path, num_workers: int, check_stop: Callable[[], None]
) -> tuple[list[Sample], DuplicateReport]:
    """The CSV's photos less the unreadable ones and the near-duplicates (both recorded in the report)."""
    samples = load_samples(config.csv, config.images_dir, config.boxes_csv)
    rejected = compute_sample_hashes(samples, cache_dir, num_workers=max(1, num_workers), progress=config.progress_bar)
    if rejected:
        bad = {id(s) for s, _ in rejected}
        samples = [s for s in samples if id(s) not in bad]
        for s, why in rejected[:5]:
            log.warning("dropped %s (line %d): %s", s.image, s.line, why)
    check_stop()
    samples, dup_report = group_near_duplicates(samples)
    dup_report.dropped.extend((s.image, f"unusable photo: {why}") for s, why in rejected)
    return samples, dup_report


def checked_profile(config: TrainConfig):
    """The config's species profile, refusing mirrors it says are never the same animal (seed 002: no
    horizontal flip for dorsal fins; a mirrored copy trains as another identity only where that is allowed)."""
    profile = get_profile(config.profile)
    if config.hflip and profile.mirror is not Mirror.SAME:
        raise ValueError(f"{profile.label}: a mirrored photo is not the same animal, so hflip is not allowed")
    if config.flip_as_new_id and profile.mirror is Mirror.NEVER:
        raise ValueError(f"{profile.label}: mirrored copies may not train as new identities (flip_as_new_id)")
    return profile


def prepare_data(config: TrainConfig, out: Path, check_stop: Callable[[], None]) -> TrainingData:
    """Load, de-duplicate and split the photos, preprocess their crops once, and write ``split.json``."""
    from ml.preprocess import EvalTransform, PhotometricTransform, TrainTransform

    cache_dir = Path(config.cache_dir) if config.cache_dir else out / "cache"
    num_workers = default_num_workers() if config.num_workers is None else int(config.num_workers)
    samples, dup_report = _usable_samples(config, cache_dir, num_workers, check_stop)
    split = split_dataset(samples, config.val_fraction, config.new_individual_fraction, config.seed)
    if not split.train:
        raise DatasetError(f"{config.csv}: no training photos left after the split")
    profile = checked_profile(config)
    train_samples = add_flipped_ids(split.train) if config.flip_as_new_id else list(split.train)
    classes = sorted({s.label for s in train_samples})
    class_index = {c: i for i, c in enumerate(classes)}
    cache = CropCache(cache_dir, config.image_size, profile=profile)
    train_tf = TrainTransform(
        config.image_size,
        hflip=config.hflip,
        rotation=config.rotation,
        zoom=config.zoom,
        shift=config.shift,
        seed=config.seed,
        photometric=PhotometricTransform(seed=config.seed) if config.photometric else None,
    )
    eval_tf = EvalTransform(config.image_size)

    def crops(photos: list[Sample], index: dict[str, int] | None) -> FlukeDataset:
        return FlukeDataset(photos, index, cache, num_workers=max(1, num_workers), progress=config.progress_bar)

    data = TrainingData(
        samples,
        dup_report,
        split,
        classes,
        crops(train_samples, class_index),
        crops(split.train, class_index),
        crops(split.val, None),
        train_tf,
        eval_tf,
    )
    check_stop()
    _write_split(out, split, dup_report)
    return data


def _write_split(out: Path, split: Split, dup_report: DuplicateReport) -> None:
    atomic_write_json(
        out / "split.json",
        {
            "train": [s.image for s in split.train],
            "val": [{"image": s.image, "label": s.label, "truth": t} for s, t in zip(split.val, split.val_truth)],
            "new_individuals": split.new_individuals,
            "dropped": [{"image": i, "reason": r} for i, r in dup_report.dropped],
            "stats": split.stats,
        },
        indent=1,
    )


@dataclass
class _Run:
    """What one training run works with, built once by ``train`` and passed to its steps."""

    config: TrainConfig
    out: Path
    device: torch.device
    data: TrainingData
    model: Any  # ml.models.FlukeNet
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler  # per epoch
    warmup: LinearLR | None  # per step
    loader: Any  # torch DataLoader
    steps_per_epoch: int
    total_steps: int
    report: _Reporter
    init_report: dict[str, Any]
    calibration_info: dict[str, Any] = field(default_factory=dict)
    ood_skipped: str = ""  # why no ood.npz was fitted (metrics.json's ood)

    def validate(self) -> _Validation:
        return validate(self.model, self.data, self.config, self.device)


def build_model(config: TrainConfig, classes: list[str], device: torch.device) -> tuple[Any, dict[str, Any]]:
    """A fresh FlukeNet for ``classes`` on ``device`` (initialised from ``init_weights`` / ``init_from`` when
    given) and what those initialisations loaded."""
    model = create_model(
        config.arch,
        config.embedding_dim,
        len(classes),
        config.head,
        init_weights=config.init_weights,
        arcface_s=config.arcface_s,
        arcface_m=config.arcface_m,
        pooling=config.pooling,
        trainable_blocks=config.trainable_blocks,
    )
    init_report: dict[str, Any] = {"init_weights": model.init_report} if config.init_weights else {}
    if config.init_from:
        init_report["init_from"] = _init_from_model_dir(model, config.init_from, classes)
    return model.to(device), init_report


def _check_stop_in_forward(model: torch.nn.Module, report: _Reporter) -> None:
    """Check for a cancel before every top-level block of the model runs, in training and validation
    alike: checked once per step, a cancel waited for the step and the epoch's whole validation (34 s
    with ResNet-50 at 224 px on a CPU). The caller's check is throttled (the site reads the database at
    most once a second), so a check per block costs nothing next to the block."""
    blocks = [m for m in model.modules() if len(list(m.children())) == 0]
    for block in blocks[:: max(1, len(blocks) // 32)]:  # about 32 checks per forward pass
        block.register_forward_pre_hook(lambda module, args: report.check_stop())


def _build_run(config: TrainConfig, out: Path, device: torch.device, data: TrainingData, report: _Reporter) -> _Run:
    model, init_report = build_model(config, data.classes, device)
    optimizer, scheduler = make_optimizer(model, config)
    loader_workers = (
        default_loader_workers(data.train_ds.array is not None, device)
        if config.num_workers is None
        else int(config.num_workers)
    )
    loader = make_loader(
        data.train_ds,
        config.batch_size,
        shuffle=True,
        num_workers=loader_workers,
        seed=config.seed,
        drop_last=True,
        oversample_to=config.oversample_to,
    )
    _check_stop_in_forward(model, report)
    steps_per_epoch = max(1, len(loader))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = make_warmup(optimizer, int(round(config.lr_warmup_epochs * steps_per_epoch)))
    return _Run(
        config,
        out,
        device,
        data,
        model,
        optimizer,
        scheduler,
        warmup,
        loader,
        steps_per_epoch,
        total_steps,
        report,
        init_report,
    )


@dataclass
class _LoopState:
    """Where the epoch loop is; saved in ``checkpoint.pt`` with the weights and restored by ``maybe_resume``."""

    epoch: int = 0  # epochs done
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(
        default_factory=lambda: {"map5": -1.0, "epoch": -1, "state_dict": None, "threshold": DEFAULT_NEW_THRESHOLD}
    )
    stop_reason: str | None = None
    steps_this_run: int = 0


def maybe_resume(run: _Run) -> _LoopState:
    """With ``resume`` and a checkpoint, the loop state (and model, optimizer, schedulers, rng) it saved."""
    state = _LoopState()
    path = run.out / CHECKPOINT_FILE
    if run.config.resume and path.is_file():
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt.get("classes") != run.data.classes:
            raise DatasetError(f"{path}: checkpoint was trained on other individuals; cannot resume")
        run.model.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        state = _LoopState(
            epoch=int(ckpt["epoch"]),
            global_step=int(ckpt.get("global_step", 0)),
            history=list(ckpt.get("history", [])),
            best=ckpt.get("best", state.best),
        )
        if run.warmup is not None:
            _restore_warmup(run.warmup, ckpt.get("warmup"), state.global_step)
        _set_rng_state(ckpt["rng"])
        log.info("resuming from %s at epoch %d", path, state.epoch)
    if run.config.max_steps is not None and state.global_step >= run.config.max_steps:
        state.stop_reason = "max_steps"
    return state


def _restore_warmup(warmup: LinearLR, saved: dict | None, global_step: int) -> None:
    """Put the warm-up where the checkpoint left it. A checkpoint written before the warm-up became a
    scheduler saved the un-warmed lr; it gets the factor of its next step, as the old loop applied it."""
    if saved is not None:
        warmup.load_state_dict(saved)
        return
    warmup.last_epoch = global_step
    if global_step <= warmup.total_iters:
        for group in warmup.optimizer.param_groups:
            group["lr"] = group["lr"] * (global_step + 1) / (warmup.total_iters + 1)


def _checkpoint(run: _Run, state: _LoopState) -> None:
    atomic_torch_save(
        {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "warmup": run.warmup.state_dict() if run.warmup else None,
            "epoch": state.epoch,
            "global_step": state.global_step,
            "rng": _rng_state(),
            "history": state.history,
            "best": state.best,
            "classes": run.data.classes,
            "config": run.config.to_dict(),
        },
        run.out / CHECKPOINT_FILE,
    )


def step_loss(run: _Run, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ArcFace (or softmax) cross-entropy, plus ``softmax_weight`` x the margin-free one (ArcFace+softmax)."""
    model, config = run.model, run.config
    with autocast(run.device, config.precision):
        feats = model.features(x)
        logits = model.head(feats, y)
    loss = F.cross_entropy(logits.float(), y)
    if config.head == "arcface" and config.softmax_weight > 0:
        loss = loss + config.softmax_weight * F.cross_entropy(model.head(feats).float(), y)
    return loss


def _train_step(run: _Run, state: _LoopState, x: torch.Tensor, y: torch.Tensor) -> float:
    """One optimizer step (ArcFace margin and lr warm-up set for this step); the step's loss."""
    config = run.config
    x = run.data.train_tf.apply_batch(x.to(run.device, non_blocking=True))
    y = torch.as_tensor(y).to(run.device, non_blocking=True)
    warm_m_steps = int(round(config.margin_warmup_epochs * run.steps_per_epoch))
    if config.head == "arcface" and warm_m_steps > 0:
        run.model.head.set_margin(config.arcface_m * min(1.0, state.global_step / warm_m_steps))
    loss = step_loss(run, x, y)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    if run.warmup is not None:
        run.warmup.step()
    return float(loss.detach())


def _step_limit(run: _Run, state: _LoopState) -> str | None:
    if run.config.max_steps is not None and state.global_step >= run.config.max_steps:
        return "max_steps"
    if run.config.time_budget_s is not None and time.monotonic() - run.report.t_start > run.config.time_budget_s:
        return "time_budget"
    return None


def _eta(run: _Run, state: _LoopState) -> float:
    """Seconds left at this run's pace so far."""
    per_step = (time.monotonic() - run.report.t_loop) / max(1, state.steps_this_run)
    return per_step * max(0, run.total_steps - state.global_step)


def train_one_epoch(run: _Run, state: _LoopState, epoch: int) -> float | None:
    """One pass over the loader at this epoch's augmentation strength; the mean loss (None: no step ran).
    Stops early, setting ``state.stop_reason``, at ``max_steps`` or past ``time_budget_s``."""
    config, tf = run.config, run.data.train_tf
    run.model.train()
    tf.strength = aug_strength(epoch, config.aug_warmup_epochs, config.aug_start)
    run.loader.sampler.set_epoch(epoch)
    tf.reseed([config.seed, epoch])
    running, n_loss = 0.0, 0
    for step, (x, y) in enumerate(run.loader):
        run.report.check_stop()
        if x.shape[0] < 2:  # BatchNorm needs two samples
            continue
        lv = _train_step(run, state, x, y)
        if not math.isfinite(lv):
            raise FloatingPointError(f"loss became {lv} at epoch {epoch + 1} step {step + 1}; lower the lr")
        running, n_loss = running + lv, n_loss + 1
        state.global_step += 1
        state.steps_this_run += 1
        run.report(
            epoch=epoch + 1,
            step=step + 1,
            steps_per_epoch=run.steps_per_epoch,
            loss=lv,
            eta_seconds=_eta(run, state),
            phase="train",
        )
        state.stop_reason = _step_limit(run, state)
        if state.stop_reason:
            break
    return running / n_loss if n_loss else None


def validate(model, data: TrainingData, config: TrainConfig, device: torch.device) -> _Validation:
    """Held-out MAP@5 with the validation queries against the training photos as the gallery (BatchNorm
    statistics recomputed on the training crops first, when ``bn_recalibrate``)."""
    if config.bn_recalibrate:
        recalibrate_bn(model, data.gallery_ds, device, data.eval_tf, config.eval_batch_size, precision=config.precision)
    return _validate(
        model,
        data.gallery_ds,
        data.query_ds,
        data.split.val_truth,
        device,
        data.eval_tf,
        config.eval_batch_size,
        min_new=config.new_threshold_min_new,
        min_known=config.new_threshold_min_known,
        precision=config.precision,
    )


def _validate_untrained(run: _Run, state: _LoopState) -> None:
    """Epoch 0: the untrained network, measured the same way (the baseline training must beat)."""
    run.report(
        epoch=0,
        step=0,
        steps_per_epoch=run.steps_per_epoch,
        loss=0.0,
        phase="validate",
        message="validating the untrained model",
    )
    v0 = run.validate()
    state.history.append(
        {
            "epoch": 0,
            "loss": None,
            "val_map5": v0.map5,
            "val_map5_known": v0.map5_known,
            "new_threshold": v0.threshold,
            "lr": 0.0,
            "steps": 0,
            "time_s": run.report.seconds(),
        }
    )


def _keep_if_best(run: _Run, state: _LoopState, val: _Validation, loss: float | None) -> None:
    # best = identification quality (known queries, threshold-free): with few validation photos the
    # all-inclusive MAP@5 can be won by a collapsed model that calls everything new_whale
    score = (
        val.map5_known if val.map5_known is not None else val.map5 if val.map5 is not None else -loss if loss else 0.0
    )
    if state.best["state_dict"] is None or score > state.best["map5"]:
        state.best = {
            "map5": score,
            "epoch": state.epoch,
            "state_dict": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()},
            "threshold": val.threshold if val.threshold is not None else DEFAULT_NEW_THRESHOLD,
        }


def _end_epoch(run: _Run, state: _LoopState, epoch: int, loss: float | None) -> None:
    """Step the epoch's lr schedule, validate, record the epoch, keep the best weights, checkpoint."""
    run.scheduler.step()
    run.report.check_stop()
    run.report(
        epoch=epoch + 1,
        step=run.steps_per_epoch,
        steps_per_epoch=run.steps_per_epoch,
        loss=loss or 0.0,
        phase="validate",
        message="validating",
    )
    val = run.validate()
    state.epoch = epoch + 1
    state.history.append(
        {
            "epoch": epoch + 1,
            "loss": loss,
            "val_map5": val.map5,
            "val_map5_known": val.map5_known,
            "new_threshold": val.threshold,
            "lr": _scheduled_lr(run),
            "margin": float(run.model.head.m) if run.config.head == "arcface" else None,
            "steps": state.global_step,
            "time_s": run.report.seconds(),
        }
    )
    _keep_if_best(run, state, val, loss)
    _checkpoint(run, state)
    run.report(
        epoch=epoch + 1,
        step=run.steps_per_epoch,
        steps_per_epoch=run.steps_per_epoch,
        loss=loss or 0.0,
        val_map5=val.map5,
        eta_seconds=_eta(run, state),
        phase="validate",
        message=f"epoch {epoch + 1}: val MAP@5 {val.map5}",
    )


def _scheduled_lr(run: _Run) -> float:
    """The epoch's lr without the warm-up factor still in effect (what ``history`` has always recorded)."""
    lr = float(run.optimizer.param_groups[0]["lr"])
    if run.warmup is not None and run.warmup.last_epoch <= run.warmup.total_iters:
        w = run.warmup
        lr /= w.start_factor + (w.end_factor - w.start_factor) * w.last_epoch / max(1, w.total_iters)
    return lr


def run_epochs(run: _Run, state: _LoopState) -> None:
    """Validate the untrained network (fresh runs), then train and validate epoch by epoch."""
    run.report.t_loop = time.monotonic()
    if state.epoch == 0 and not state.history:
        _validate_untrained(run, state)
    try:
        for epoch in range(state.epoch, run.config.epochs):
            if state.stop_reason:
                break
            loss = train_one_epoch(run, state, epoch)
            _end_epoch(run, state, epoch, loss)
    finally:
        _shutdown(run.loader)


def finalize(run: _Run, state: _LoopState) -> TrainResult:
    """The best epoch's weights, measured once more on the held-out queries, plus the localizer, written
    as the model folder."""
    config, data = run.config, run.data
    if state.best["state_dict"] is not None:
        run.model.load_state_dict(state.best["state_dict"])
    if config.head == "arcface":
        run.model.head.set_margin(config.arcface_m)
    final_val = _validate(
        run.model,
        data.gallery_ds,
        data.query_ds,
        data.split.val_truth,
        run.device,
        data.eval_tf,
        config.eval_batch_size,
        min_new=config.new_threshold_min_new,
        min_known=config.new_threshold_min_known,
        precision=config.precision,
    )
    new_threshold = float(final_val.threshold) if final_val.threshold is not None else DEFAULT_NEW_THRESHOLD
    calibration = _calibrate(run, state.epoch)
    if calibration is not None:  # the folder's new-individual decision is then on the fused P
        new_threshold = calibration.new_threshold
    state_dict = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    version = _version(state_dict)
    metrics = _final_metrics(final_val, data.split, data.dup_report, _run_facts(run, state, version))
    metrics.calibration = run.calibration_info  # metrics.json: how P(same) was fitted, or why not
    ood = _fit_ood(run)
    metrics.ood = ood.info if ood is not None else {"skipped": run.ood_skipped}
    do_loc = config.train_localizer if config.train_localizer is not None else bool(config.boxes_csv)
    if do_loc and config.boxes_csv:
        start = TrainProgress(epoch=0, epochs=0, step=0, steps_per_epoch=0, loss=0.0, phase="localizer")
        run.report.raw(dataclasses.replace(start, message="training the fluke localizer"))
        metrics.localizer = _train_localizer(data.samples, run.out, config, run.report.raw)
    saved = SavedModel(
        state_dict=state_dict,
        classes=data.classes,
        arch=config.arch,
        image_size=config.image_size,
        embedding_dim=config.embedding_dim,
        head=config.head,
        pooling=config.pooling,
        new_threshold=new_threshold,
        version=version,
        # how its gallery's RootSIFT features are extracted and verified (ml.profiles.folder_profile)
        config=config.to_dict() | {"local_matching": get_profile(config.profile).local_matching.to_dict()},
    )
    write_model_folder(run.out, saved, metrics, state.history, calibration, ood)
    _write_report(metrics.to_dict(), state.history, run.out, final_val, new_threshold)
    last_loss = state.history[-1]["loss"] if state.history and state.history[-1]["loss"] is not None else 0.0
    run.report(
        epoch=state.epoch,  # epochs trained (the history also holds the untrained epoch 0)
        step=run.steps_per_epoch,
        steps_per_epoch=run.steps_per_epoch,
        loss=last_loss,
        val_map5=metrics.map5,
        eta_seconds=0.0,
        phase="done",
        message="done",
    )
    return TrainResult(model_dir=str(run.out), metrics=metrics, history=state.history, new_threshold=new_threshold)


def _calibrate(run: _Run, epochs_done: int):
    """The open-set match calibration of the final weights (``ml.train_calibration``), or None (recorded
    in ``run.calibration_info`` either way, for metrics.json's ``calibration``)."""
    from ml.train_calibration import fit_open_set_calibration

    config, data = run.config, run.data
    if not config.calibrate:
        run.calibration_info = {"skipped": "calibrate=False"}
        return None
    run.report.check_stop()
    run.report(
        epoch=epochs_done,
        step=0,
        steps_per_epoch=run.steps_per_epoch,
        loss=0.0,
        phase="validate",
        message="calibrating match probabilities on held-out individuals",
    )

    def embed(crops):
        return embed_crops(run.model, list(crops), run.device, config.eval_batch_size, data.eval_tf, config.precision)

    gal, qry = data.gallery_ds, data.query_ds
    calibration, info = fit_open_set_calibration(
        embed,
        [gal.crop(i) for i in range(len(gal))],
        [s.label for s in gal.samples],
        [qry.crop(i) for i in range(len(qry))],
        [s.label for s in qry.samples],
        data.split.val_truth,
        data.split.new_individuals,
        shortlist=config.calibration_shortlist,
        local_features="local_features" in get_profile(config.profile).matchers,
        matching=get_profile(config.profile).local_matching,
    )
    run.calibration_info = info
    if calibration is None:
        log.warning("no match calibration: %s", info.get("skipped"))
    return calibration


def _fit_ood(run: _Run):
    """The distribution-shift detector of the final weights (``ml.ood``): k-NN reference = the training crops'
    embeddings, threshold = a high quantile of the held-out validation photos' scores; None when switched off or
    too few photos (``run.ood_skipped`` says why)."""
    from ml.ood import OODDetector

    config, data = run.config, run.data
    if not config.ood_detector:
        run.ood_skipped = "ood_detector=False"
        return None

    def embed(ds, fn=embed_crops):
        crops = [ds.crop(i) for i in range(len(ds))]
        return fn(run.model, crops, run.device, config.eval_batch_size, data.eval_tf, config.precision)

    gal, qry = data.gallery_ds, data.query_ds
    detector = OODDetector.fit(
        embed(gal),
        embed(qry),
        quantile=config.ood_quantile,
        train_pooled=embed(gal, pooled_crops),  # the backbone's features too: flagged when either is far
        val_pooled=embed(qry, pooled_crops),
    )
    if detector is None:
        run.ood_skipped = f"{len(data.query_ds)} validation photos: too few to set the OOD threshold"
        log.warning("no OOD detector: %s", run.ood_skipped)
    return detector


def _run_facts(run: _Run, state: _LoopState, version: str) -> dict[str, Any]:
    config = run.config
    return {
        "version": version,
        "arch": config.arch,
        "head": config.head,
        "image_size": config.image_size,
        "embedding_dim": config.embedding_dim,
        "n_classes": len(run.data.classes),
        "best_epoch": state.best["epoch"],
        "epochs_run": len(state.history),
        "steps": state.global_step,
        "stop_reason": state.stop_reason or "epochs",
        "device": str(run.device),
        "precision": "bf16" if uses_bf16(run.device, config.precision) else "fp32",
        "train_time_s": run.report.seconds(),
        "oversample_to": config.oversample_to,
        "seed": config.seed,
        **run.init_report,
    }


def train(
    config: TrainConfig,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train, validate each epoch, keep the best, and write the model folder (see module doc).

    The steps are those of torchvision's classification reference: ``prepare_data``, ``build_model``,
    ``maybe_resume``, then ``train_one_epoch`` and ``validate`` per epoch, then ``finalize``.
    """
    report = _Reporter(progress, should_stop, config.epochs)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    uses_bf16(device, config.precision)  # refuses an unknown precision before any work
    seed_everything(config.seed)
    data = prepare_data(config, out, report.check_stop)
    run = _build_run(config, out, device, data, report)
    state = maybe_resume(run)
    run_epochs(run, state)
    return finalize(run, state)


def _write_report(
    metrics: dict, history: list[dict], out: Path, val=None, threshold: float = DEFAULT_NEW_THRESHOLD
) -> None:
    """Plots next to ``metrics.json`` (already written by ``write_model_folder``)."""
    try:
        from ml.evaluate import write_report
        from ml.metrics import apply_new_threshold, confusion_matrix

        confusion = None
        if val is not None and val.ranked:  # held-out queries: true id vs top-1 (new_whale included)
            top1 = [apply_new_threshold(r, threshold)[0] for r in val.ranked]
            confusion = confusion_matrix(val.truth, top1)
        write_report(metrics, history, out, confusion=confusion)
    except Exception as exc:  # plots are a nicety: never lose a trained model over them
        log.warning("could not write the report plots: %s", exc)


def _train_localizer(samples, out: Path, config: TrainConfig, progress=None) -> dict:
    from ml.localizer import train_localizer

    with_boxes = [s for s in samples if s.box is not None]
    if len(with_boxes) < 4:
        return {"skipped": f"only {len(with_boxes)} photos with boxes"}
    kwargs: dict[str, Any] = {"seed": config.seed, "device": str(pick_device(config.device)), "progress": progress}
    if config.localizer_epochs is not None:
        kwargs["epochs"] = config.localizer_epochs
    if config.max_steps is not None:
        kwargs["max_steps"] = config.max_steps
    localizer, loc_metrics = train_localizer([s.path for s in with_boxes], [s.box for s in with_boxes], **kwargs)
    path = out / LOCALIZER_FILE
    if not loc_metrics.get("shipped"):
        # not better than the default box on its validation photos: ship none, the Identifier then
        # uses the flagged default box (both IoUs stay in metrics.json)
        if path.exists():
            path.unlink()
        return dict(loc_metrics)
    with atomic_path(path) as tmp:
        localizer.save(tmp)
    return dict(loc_metrics) if isinstance(loc_metrics, dict) else {"result": str(loc_metrics)}
