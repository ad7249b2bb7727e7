"""``python -m ml {synth,train,predict,evaluate,localize}``.

Errors a user can fix (bad paths, malformed CSVs, unreadable model folders) print one line
``error: ...`` on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml.presets import ARCHS, DEFAULT, HEADS, LR_BY_OPTIMIZER, OPTIMIZERS, POOLINGS, PRECISIONS, RECIPES, default_lr
from ml.profiles import PROFILES
from ml.types import PHASE_COUNTERS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp"}


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [CliError, FileNotFoundError, NotADirectoryError, PermissionError]
    from ml.data import DatasetError

    errors.append(DatasetError)
    try:
        from ml.evaluate import EvaluationError

        errors.append(EvaluationError)
    except ImportError:  # pragma: no cover
        pass
    from ml.identifier import ModelFolderError

    errors.append(ModelFolderError)
    try:
        from ml.errors import ImageRejected

        errors.append(ImageRejected)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _existing_dir(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{what} {p} does not exist")
    if not p.is_dir():
        raise CliError(f"{what} {p} is not a folder")
    return p


def _existing_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{what} {p} does not exist")
    if not p.is_file():
        raise CliError(f"{what} {p} is not a file")
    return p


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _tqdm(iterable=None, **kw):
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kw)


# --------------------------------------------------------------------------- synth


_SYNTH_PROFILES = ("humpback_fluke", "dolphin_fin")  # the species profiles ml can synthesize


def cmd_synth(args) -> int:
    from ml.synth_fins import SYNTHESIZERS

    if args.individuals < 1 or args.photos < 1:
        raise CliError("--individuals and --photos must be at least 1")
    generate = SYNTHESIZERS[args.profile]
    summary = generate(args.out, individuals=args.individuals, photos=args.photos, seed=args.seed)
    out = Path(args.out)
    print(f"wrote {out / 'images'}, {out / 'train.csv'} and {out / 'boxes.csv'}")
    if summary is not None:
        print(summary)
    return 0


# --------------------------------------------------------------------------- train


def _check_train_inputs(args) -> None:
    _existing_file(args.csv, "labels CSV")
    _existing_dir(args.images, "images folder")
    if args.boxes:
        _existing_file(args.boxes, "boxes CSV")
    if args.init_from:
        _existing_dir(args.init_from, "--init-from model folder")
    if args.init_weights:
        _existing_file(args.init_weights, "--init-weights file")


_RECIPE_KNOBS = (
    ("arch", "arch"),
    ("image_size", "image_size"),
    ("epochs", "epochs"),
    ("batch_size", "batch_size"),
    ("embedding_dim", "embedding_dim"),
    ("head", "head"),
    ("optimizer", "optimizer"),
    ("trainable_blocks", "trainable_blocks"),
    ("photometric", "photometric"),
)


def _apply_recipe(args) -> None:
    """``--recipe NAME`` (``ml.presets.RECIPES``: pretrained, seed000, quick) sets the knobs left at the
    default recipe's values; knobs given another value on the command line win."""
    recipe = RECIPES[getattr(args, "recipe", None) or DEFAULT.name]
    for attr, field_name in _RECIPE_KNOBS:
        if getattr(args, attr) == getattr(DEFAULT, field_name):
            setattr(args, attr, getattr(recipe, field_name))


def _blocks(value: str) -> int | None:
    """``--trainable-blocks``: ``all`` (fine-tune everything) or a count (0 = frozen encoder)."""
    if value.lower() == "all":
        return None
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("--trainable-blocks: 'all' or a count >= 0")
    return n


def _train_config(args):
    """The ``TrainConfig`` of ``python -m ml train``; options left out keep ``TrainConfig``'s defaults."""
    from ml.train import TrainConfig

    _apply_recipe(args)
    lr = args.lr if args.lr is not None else default_lr(args.optimizer)
    return TrainConfig.for_profile(
        args.profile,
        csv=args.csv,
        images_dir=args.images,
        out_dir=args.out,
        boxes_csv=args.boxes,
        arch=args.arch,
        image_size=args.image_size,
        embedding_dim=args.embedding_dim,
        head=args.head,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=lr,
        optimizer=args.optimizer,
        seed=args.seed,
        max_steps=args.max_steps,
        init_from=args.init_from,
        init_weights=args.init_weights,
        resume=args.resume,
        hflip=args.hflip,
        flip_as_new_id=args.flip_as_new_id,
        oversample_to=args.oversample_to,
        num_workers=args.num_workers,
        device=args.device,
        precision=args.precision,
        time_budget_s=args.time_budget,
        val_fraction=args.val_fraction,
        train_localizer=False if args.no_localizer else None,
        localizer_epochs=args.localizer_epochs,
        progress_bar=True,
        trainable_blocks=args.trainable_blocks,
        photometric=args.photometric,
        **{
            key: value
            for key, value in (
                ("pooling", args.pooling),
                ("rotation", args.rotation),
                ("zoom", args.zoom),
                ("shift", args.shift),
                ("aug_warmup_epochs", args.aug_warmup),
            )
            if value is not None
        },
    )


class _EpochBars:
    """``train``'s progress on the terminal: one tqdm bar per epoch of each phase, labelled with the
    phase's own counter ("model epoch 3/12", "localizer epoch 2/30"), and a line per validation."""

    def __init__(self) -> None:
        self.bar: Any = None  # tqdm
        self.epoch: tuple[str, int] | None = None

    def __call__(self, p) -> None:
        if p.phase in ("train", "localizer") and p.steps_per_epoch:
            if self.epoch != (p.phase, p.epoch):
                self.close()
                label = PHASE_COUNTERS[p.phase]
                self.bar = _tqdm(total=p.steps_per_epoch, desc=f"{label} {p.epoch}/{p.epochs}", unit="step")
                self.epoch = (p.phase, p.epoch)
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{p.loss:.3f}")
        elif p.message or p.val_map5 is not None:
            self.close()
            print(p.describe(), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


SUMMARY_KEYS = (
    "n_train",
    "n_val",
    "n_classes",
    "n_new_individuals",
    "duplicates_dropped",
    "best_epoch",
    "new_threshold",
    "top1",
    "top5",
    "new_precision",
    "new_recall",
    "map5_known_only",
    "chance_map5",
)


def cmd_train(args) -> int:
    from ml.train import TrainingCancelled, train

    _check_train_inputs(args)
    config = _train_config(args)
    bars = _EpochBars()
    try:
        result = train(config, progress=bars)
    except TrainingCancelled:
        print("error: training cancelled", file=sys.stderr)
        return 130
    finally:
        bars.close()
    m = result.metrics.to_dict()
    for key in SUMMARY_KEYS:
        if key in m:
            print(f"{key} {m[key]}")
    print(f"model {result.model_dir}")
    if m.get("map5") is not None:
        print(f"MAP@5 {m['map5']:.4f}")
    return 0


# --------------------------------------------------------------------------- predict


def _prepare_all(identifier, paths: Sequence[Path], desc: str, boxes: dict | None = None):
    from ml.errors import ImageRejected

    crops, ok, bad = [], [], []
    for p in _tqdm(paths, desc=desc, unit="img"):
        try:
            crops.append(identifier.prepare(p, (boxes or {}).get(p.name)).crop)
            ok.append(p)
        except (ImageRejected, OSError) as exc:
            bad.append((p, str(exc)))
    return crops, ok, bad


def _embed_all(identifier, crops, desc: str):
    import numpy as np

    out = []
    step = 64
    for i in _tqdm(range(0, len(crops), step), desc=desc, unit="batch"):
        out.append(identifier.embed(crops[i : i + step]))
    if not out:
        return np.zeros((0, identifier.embedding_dim), dtype=np.float32)
    return np.concatenate(out)


def cmd_predict(args) -> int:
    from ml.data import load_samples, read_boxes_csv
    from ml.evaluate import write_submission
    from ml.gallery import GalleryIndex
    from ml.identifier import Identifier
    from ml.types import NEW_WHALE

    _existing_dir(args.model, "model folder")
    _existing_file(args.gallery_csv, "gallery CSV")
    _existing_dir(args.gallery_images, "gallery images folder")
    query_dir = _existing_dir(args.images, "query images folder")
    identifier = Identifier.load(args.model, device=args.device or None)
    samples = [
        s for s in load_samples(args.gallery_csv, args.gallery_images, args.gallery_boxes) if s.label != NEW_WHALE
    ]
    queries = list_images(query_dir)
    if not queries:
        raise CliError(f"no images found in {query_dir}")
    if not samples:
        raise CliError(f"{args.gallery_csv}: no known individuals in the gallery")
    gboxes = {Path(s.path).name: s.box for s in samples if s.box is not None}
    g_crops, g_ok, g_bad = _prepare_all(identifier, [Path(s.path) for s in samples], "gallery", gboxes)
    qboxes = read_boxes_csv(args.boxes) if args.boxes else None
    q_crops, q_ok, q_bad = _prepare_all(identifier, queries, "queries", qboxes)
    for p, why in g_bad + q_bad:
        print(f"warning: skipped {p}: {why}", file=sys.stderr)
    label_of = {str(Path(s.path).resolve()): s.label for s in samples}
    g_vec = _embed_all(identifier, g_crops, "embedding gallery")
    q_vec = _embed_all(identifier, q_crops, "embedding queries")
    index = GalleryIndex(g_vec.shape[1])
    g_ids = [str(p.resolve()) for p in g_ok]
    index.add(g_ids, [label_of[i] for i in g_ids], g_vec)
    threshold = identifier.new_threshold if args.new_threshold is None else args.new_threshold
    excludes = [{str(p.resolve())} for p in q_ok]  # a query never matches its own file
    ranked = index.rank_batch(q_vec, k=5, new_threshold=threshold, exclude_items=excludes) if len(q_ok) else []
    predictions: dict[str, Sequence[str]] = {p.name: [m.label for m in ms] for p, ms in zip(q_ok, ranked)}
    for p, _ in q_bad:
        predictions[p.name] = [NEW_WHALE]
    write_submission(predictions, args.out)
    print(
        f"wrote {args.out}: {len(predictions)} predictions (gallery {len(g_ok)} photos, "
        f"{len(set(label_of.values()))} individuals, new_whale threshold {threshold:.3f}, model {identifier.version})"
    )
    return 0


# --------------------------------------------------------------------------- evaluate


def cmd_evaluate(args) -> int:
    from ml.evaluate import evaluate_submission

    _existing_file(args.truth, "truth CSV")
    _existing_file(args.submission, "submission CSV")
    result = evaluate_submission(args.submission, args.truth)
    for key in ("n", "top1", "top5", "new_precision", "new_recall", "extra_predictions"):
        if key in result:
            v = result[key]
            print(f"{key} {v:.4f}" if isinstance(v, float) else f"{key} {v}")
    print(f"MAP@5 {result['map5']:.4f}")
    return 0


# --------------------------------------------------------------------------- localize


def cmd_localize(args) -> int:
    from ml.data import write_csv
    from ml.errors import ImageRejected
    from ml.identifier import Identifier

    _existing_dir(args.model, "model folder")
    folder = _existing_dir(args.images, "images folder")
    identifier = Identifier.load(args.model, device=args.device or None)
    if identifier.localizer is None:
        print(f"warning: {args.model} has no localizer.pt; writing the default (flagged) boxes", file=sys.stderr)
    paths = list_images(folder)
    if not paths:
        raise CliError(f"no images found in {folder}")
    rows, flagged = [], 0
    for p in _tqdm(paths, desc="localizing", unit="img"):
        try:
            loc = identifier.localize(p)
        except (ImageRejected, OSError) as exc:
            print(f"warning: skipped {p}: {exc}", file=sys.stderr)
            continue
        flagged += loc.flagged
        b = loc.box
        rows.append([p.name, f"{b.x0:.1f}", f"{b.y0:.1f}", f"{b.x1:.1f}", f"{b.y1:.1f}"])
    write_csv(args.out, ["Image", "x0", "y0", "x1", "y1"], rows)
    print(f"wrote {args.out}: {len(rows)} boxes ({flagged} flagged for review)")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description="Humpback fluke identification tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_synth, _add_train, _add_predict, _add_evaluate, _add_localize, _add_species):
        add(sub)
    return parser


def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="generate a synthetic data set (humpback flukes or dolphin fins)")
    p.add_argument("--out", required=True)
    p.add_argument("--profile", choices=_SYNTH_PROFILES, default="humpback_fluke", help="species profile")
    p.add_argument("--individuals", type=int, default=20)
    p.add_argument("--photos", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an identifier and write a model folder")
    p.add_argument("--csv", required=True, help="Kaggle train.csv (Image,Id)")
    p.add_argument("--images", required=True, help="folder of the photos")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--boxes", help="Image,x0,y0,x1,y1 CSV; also trains the localizer")
    p.add_argument("--epochs", type=int, default=DEFAULT.epochs)
    p.add_argument(
        "--recipe",
        default=DEFAULT.name,
        choices=sorted(RECIPES),
        help=f"starting values of the knobs below (default {DEFAULT.name}; seed000: the ResNet50 study)",
    )
    p.add_argument("--arch", default=DEFAULT.arch, choices=ARCHS)
    p.add_argument(
        "--trainable-blocks",
        type=_blocks,
        default=DEFAULT.trainable_blocks,
        help="pretrained archs: 'all' or how many last encoder blocks fine-tune (0 = frozen encoder)",
    )
    p.add_argument("--image-size", type=int, default=DEFAULT.image_size)
    p.add_argument("--embedding-dim", type=int, default=DEFAULT.embedding_dim)
    p.add_argument("--batch-size", type=int, default=DEFAULT.batch_size)
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="default " + " or ".join(f"{lr} ({name})" for name, lr in LR_BY_OPTIMIZER.items()),
    )
    p.add_argument("--optimizer", default=DEFAULT.optimizer, choices=OPTIMIZERS)
    p.add_argument("--head", default=DEFAULT.head, choices=HEADS)
    p.add_argument("--pooling", default=None, choices=POOLINGS, help=f"default {DEFAULT.pooling}")
    p.add_argument("--rotation", type=float, default=None, help="augmentation, degrees (default 20, seed 000)")
    p.add_argument("--zoom", type=float, default=None, help="augmentation, fraction (default 0.2)")
    p.add_argument("--shift", type=float, default=None, help="augmentation, fraction (default 0.2)")
    p.add_argument(
        "--aug-warmup", type=float, default=None, help="epochs over which augmentation ramps up to full strength"
    )
    p.add_argument(
        "--photometric",
        action="store_true",
        default=DEFAULT.photometric,
        help="photometric augmentation too: contrast, gamma, blur, JPEG, noise, occlusion (recipe 'photometric')",
    )
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--init-from", default=None, help="previous model folder to fine-tune")
    p.add_argument("--init-weights", default=None, help="local state-dict file to start from")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="humpback_fluke",
        help="species profile (ml/profiles.py): crop, allowed mirrors, augmentation ranges, localizer",
    )
    p.add_argument("--hflip", action="store_true")
    p.add_argument("--flip-as-new-id", action="store_true")
    p.add_argument("--oversample-to", type=int, default=4)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--device", default="")
    p.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help="auto: bf16 autocast on CUDA, fp32 on the CPU"
    )
    p.add_argument("--time-budget", type=float, default=None, help="seconds")
    p.add_argument("--no-localizer", action="store_true")
    p.add_argument("--localizer-epochs", type=int, default=None)
    p.set_defaults(func=cmd_train)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="write a Kaggle submission for a folder of photos")
    p.add_argument("--model", required=True)
    p.add_argument("--gallery-csv", required=True)
    p.add_argument("--gallery-images", required=True)
    p.add_argument("--gallery-boxes", default=None)
    p.add_argument("--images", required=True, help="folder of query photos")
    p.add_argument("--boxes", default=None, help="boxes for the query photos (else the localizer)")
    p.add_argument("--out", required=True, help="submission CSV to write")
    p.add_argument("--new-threshold", type=float, default=None)
    p.add_argument("--device", default="")
    p.set_defaults(func=cmd_predict)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score a submission; the last line is MAP@5")
    p.add_argument("--truth", required=True)
    p.add_argument("--submission", required=True)
    p.set_defaults(func=cmd_evaluate)


def _add_localize(sub) -> None:
    p = sub.add_parser("localize", help="predict fluke boxes for a folder of photos")
    p.add_argument("--model", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="")
    p.set_defaults(func=cmd_localize)


# --------------------------------------------------------------------------- species classifier (ml.species)


def _species_data(values: Sequence[str]) -> dict[str, list[Path]]:
    """``--data PROFILE=DIR`` values -> {profile: photos of DIR/images (or DIR itself when it has no images/)}."""
    data: dict[str, list[Path]] = {}
    for value in values:
        key, sep, folder = value.partition("=")
        if not sep or not key or not folder:
            raise CliError(f"--data {value!r}: expected PROFILE=DIR")
        root = _existing_dir(folder, f"--data {key}: folder")
        images = root / "images" if (root / "images").is_dir() else root
        data.setdefault(key, []).extend(list_images(images))
    return data


def cmd_species_train(args) -> int:
    from ml.species import train_species_classifier

    try:
        report = train_species_classifier(_species_data(args.data), args.out, features=args.features, seed=args.seed)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    counts = ", ".join(f"{k} {n}" for k, n in report.photos.items())
    print(f"species classifier: {counts} photos; training accuracy {report.train_accuracy:.3f}; wrote {args.out}")
    return 0


def cmd_species_predict(args) -> int:
    from ml.errors import ImageRejected
    from ml.species import SpeciesClassifier

    classifier = SpeciesClassifier.load(_existing_dir(args.model, "model folder"))
    failed = 0
    for photo in args.photos:
        try:
            guess = classifier.predict(_existing_file(photo, "photo"))
        except (CliError, ImageRejected) as exc:  # one bad file never blocks the rest
            print(f"{photo}\terror: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{photo}\t{guess.profile or 'unknown'}\t{guess.probability:.3f}")
    return 2 if failed else 0


def _add_species(sub) -> None:
    from ml.species import FEATURES

    p = sub.add_parser("species-train", help="train the species classifier (which profile a photo shows)")
    p.add_argument("--data", action="append", required=True, metavar="PROFILE=DIR", help="repeat per profile")
    p.add_argument("--out", required=True, help="folder to write (classifier.pt + classifier.json)")
    p.add_argument("--features", choices=FEATURES, default=FEATURES[0])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_species_train)
    p = sub.add_parser("species-predict", help="print each photo's species profile (or unknown) and probability")
    p.add_argument("--model", required=True)
    p.add_argument("photos", nargs="+")
    p.set_defaults(func=cmd_species_predict)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    errors = _user_errors()
    try:
        return int(args.func(args) or 0)
    except errors as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
