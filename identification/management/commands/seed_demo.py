"""``python manage.py seed_demo``: a working demo from nothing.

Species (with their ``ml.profiles`` keys), synthetic flukes (``ml.synth``) stored as confirmed gallery photos,
a small trained model registered as the active version with its gallery embedded, demo users with their
roles, a species classifier trained on synthetic flukes and fins (``ml.synth_fins``) for the upload form's
per-photo suggestion, and held-out photos in ``var/demo/uploads/`` to try an upload with (flukes and fins).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.roles import ensure_role_groups, grant_role
from identification.models import Individual, ModelVersion, Species, TrainingExample, TrainingRun
from identification.pipeline.reembed import reembed_gallery
from identification.review.decisions import next_catalogue_id
from identification.training.dataset import export_dataset
from identification.training.runs import finish_run, mark_examples_used, register_version, run_dir, run_lifecycle
from ml import presets
from ml.data import read_boxes_csv, read_labels_csv
from ml.images import compute_hashes, load_image
from ml.synth_fins import SYNTHESIZERS
from submissions.models import Photo, Sighting
from submissions.species_guess import classifier_dir
from whalesite.celery import ensure_broker_folders

DEMO_PASSWORD = "whales-demo"
DEMO_USERS = [
    ("admin@example.org", "admin"),
    ("moderator@example.org", "moderator"),
    ("watcher@example.org", "watcher"),
]
SPECIES = [  # (common name, scientific name, code = catalogue prefix, ml.profiles key: "" = not identified)
    ("Humpback whale", "Megaptera novaeangliae", "HW", "humpback_fluke"),
    ("Common bottlenose dolphin", "Tursiops truncatus", "TT", "dolphin_fin"),
    ("Southern right whale", "Eubalaena australis", "SRW", ""),
    ("Sperm whale", "Physeter macrocephalus", "SPW", ""),
]
WORMS_LSIDS = {  # only those checked
    "Megaptera novaeangliae": "urn:lsid:marinespecies.org:taxname:137092",
    "Tursiops truncatus": "urn:lsid:marinespecies.org:taxname:137111",
}
PLACES = [
    ("Hervey Bay", -25.0, 152.9),
    ("Monterey Bay", 36.8, -121.9),
    ("Husavik", 66.05, -17.35),
    ("Tonga", -18.65, -173.98),
]
NEW_INDIVIDUALS_HELD_OUT = 2


def create_demo_users(stdout=None) -> dict:
    ensure_role_groups()
    User = get_user_model()
    users = {}
    for email, role in DEMO_USERS:
        user, created = User.objects.get_or_create(username=email, defaults={"email": email})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        grant_role(user, role)
        users[role] = user
        if stdout is not None:
            stdout.write(f"  {role:<10} {email} / {DEMO_PASSWORD}")
    return users


def build_gallery(
    out_dir: Path,
    *,
    individuals: int,
    photos: int,
    seed: int,
    user=None,
    species=None,
    uploads_dir: Path | None = None,
    image_size: int | None = None,
    uploads_prefix: str = "demo",
    example_status: str = TrainingExample.Status.USED,
):
    """Generate synthetic photos of ``species`` (flukes, or fins for a ``dolphin_fin`` species) and store them
    as confirmed gallery photos of its catalogue (ids with its code: HW-0001, TT-0001).

    Each photo is a training example (``example_status``: used, as the demo's first model trains on them
    at once; queued for a catalogue whose model is trained later). Returns (individual objects, list of
    held-out (path, catalogue id or "new")).
    """
    species = species or Species.objects.get(code="HW")
    SYNTHESIZERS[species.profile or "humpback_fluke"](
        str(out_dir), individuals=individuals + NEW_INDIVIDUALS_HELD_OUT, photos=photos + 1, seed=seed, progress=False
    )
    labels = read_labels_csv(out_dir / "train.csv")
    boxes = read_boxes_csv(out_dir / "boxes.csv") if (out_dir / "boxes.csv").exists() else {}
    by_id: dict[str, list[str]] = defaultdict(list)
    for image, label, _ in labels:
        by_id[label].append(image)
    ids = sorted(by_id)
    known, new = ids[: len(ids) - NEW_INDIVIDUALS_HELD_OUT], ids[len(ids) - NEW_INDIVIDUALS_HELD_OUT :]
    held_out: list[tuple[Path, str]] = []
    created = []
    now = timezone.now()
    for n, label in enumerate(known):
        images = sorted(by_id[label])
        individual = Individual.objects.create(
            catalogue_id=next_catalogue_id(species), species=species, nickname="", created_by=user
        )
        created.append(individual)
        gallery, rest = (images[:-1], images[-1:]) if len(images) > 1 else (images, [])
        for i, image in enumerate(gallery):
            place, lat, lon = PLACES[(n + i) % len(PLACES)]
            sighting = Sighting.objects.create(
                species=species,
                observed_at=now - timedelta(days=30 * (i + 1) + n),
                latitude=lat,
                longitude=lon,
                place_name=place,
                observer_name="Demo data",
                submitted_by=user,
            )
            photo = _gallery_photo(sighting, out_dir / "images" / image, individual, boxes.get(image), now)
            TrainingExample.objects.create(photo=photo, individual=individual, status=example_status)
        for image in rest:
            held_out.append((out_dir / "images" / image, individual.catalogue_id))
    for label in new:
        for image in sorted(by_id[label])[:2]:
            held_out.append((out_dir / "images" / image, "new"))
    if uploads_dir is not None:
        uploads_dir.mkdir(parents=True, exist_ok=True)
        for k, (path, who) in enumerate(held_out):
            shutil.copyfile(path, uploads_dir / f"{uploads_prefix}-{k + 1:02d}-{who}{path.suffix}")
    return created, held_out


def _gallery_photo(sighting, path: Path, individual, box, now) -> Photo:
    """One confirmed gallery photo of ``individual`` (its sighting's species), stored from ``path``."""
    data = path.read_bytes()
    hashes = compute_hashes(data)
    width, height = load_image(data, min_side=1).size
    photo = Photo(
        sighting=sighting,
        species=sighting.species,
        original_filename=path.name,
        sha256=hashes.sha256,
        phash=hashes.phash,
        status=Photo.Status.CONFIRMED,
        individual=individual,
        decided_at=now,
    )
    photo.image.save(path.name, ContentFile(data), save=False)
    photo.width, photo.height = width, height
    if box is not None:
        photo.set_box(box, Photo.BoxSource.GIVEN, confidence=1.0, flagged=False)
    photo.save()
    return photo


def train_and_activate(
    *,
    epochs: int,
    arch: str,
    image_size: int,
    progress=None,
    max_steps=None,
    user=None,
    localizer_epochs: int | None = None,
    species=None,
):
    """Train on ``species``' gallery (the humpback's when None) with ml.train and its profile, register the
    version, embed its gallery and activate it (each species has its own active model)."""
    species = species or Species.objects.get(code=Species.HUMPBACK_CODE)
    run = TrainingRun.objects.create(
        started_by=user,
        species=species,
        options={"epochs": epochs, "arch": arch, "image_size": image_size, "fine_tune": False, "seed_demo": True},
    )
    with run_lifecycle(run, what="demo training run", reraise=True):
        config, result, snapshot = _train_demo(
            run,
            epochs=epochs,
            arch=arch,
            image_size=image_size,
            progress=progress,
            max_steps=max_steps,
            localizer_epochs=localizer_epochs,
            species=species,
        )
    with transaction.atomic():
        version = register_version(
            result, run=run, config=config, snapshot=snapshot, name=f"demo-{run.pk}", species=species
        )
        mark_examples_used(snapshot["photo_ids"], run)
        finish_run(run.pk, version, result.metrics.to_dict())
    ModelVersion.objects.filter(pk=version.pk).update(promoted_by=user)
    reembed_gallery(version.pk)  # in this process: embeds the gallery, then activates it
    version.refresh_from_db()
    return version


def _train_demo(run, *, epochs, arch, image_size, progress, max_steps, localizer_epochs, species):
    """Export ``species``' gallery and train on it with ml.train. Returns (config, result, snapshot)."""
    from ml.train import TrainConfig, train  # loads torch

    data_dir = run_dir(run.pk) / "data"
    snapshot = export_dataset(data_dir, species)
    out_dir = Path(settings.ML_ROOT) / "models" / f"demo-{run.pk}"
    config = TrainConfig.for_profile(
        species.profile,
        csv=str(data_dir / "train.csv"),
        images_dir=str(data_dir / "images"),
        boxes_csv=str(data_dir / "boxes.csv"),
        out_dir=str(out_dir),
        arch=arch,
        image_size=image_size,
        epochs=epochs,
        num_workers=0,
        batch_size=min(32, settings.ML_DEFAULT_BATCH_SIZE),
        device=settings.ML_DEVICE,
        max_steps=max_steps,
        init_weights=settings.ML_INIT_WEIGHTS or None,
        localizer_epochs=localizer_epochs,
    )
    return config, train(config, progress=progress), snapshot


def train_species_demo(flukes: list[Path], fins: list[Path], stdout, features: str = "efficientnet_lite0") -> None:
    """The upload form's species classifier (``ml.species``), trained on synthetic flukes and fins only, into
    the folder the form reads (``submissions.species_guess.classifier_dir``)."""
    try:
        from ml.species import train_species_classifier  # loads torch
    except ImportError:
        stdout.write("No species classifier (ml.species is not installed): uploads take the sighting's species.")
        return
    out = classifier_dir()
    t0 = time.monotonic()
    report = train_species_classifier({"humpback_fluke": flukes, "dolphin_fin": fins}, out, features=features)
    stdout.write(f"Species classifier in {out} ({time.monotonic() - t0:.1f}s): {report}")


def seed_species() -> dict[str, Species]:
    """The demo's species by code; an existing species without a profile gets the demo's."""
    species = {}
    for common, scientific, code, profile in SPECIES:
        species[code], _ = Species.objects.get_or_create(
            code=code,
            defaults={
                "common_name": common,
                "scientific_name": scientific,
                "scientific_name_id": WORMS_LSIDS.get(scientific, ""),
                "profile": profile,
            },
        )
        if profile and not species[code].profile:
            Species.objects.filter(pk=species[code].pk).update(profile=profile)
            species[code].profile = profile
    return species


class Command(BaseCommand):
    help = "Seed a demo: species, synthetic whales, a trained active model, demo users and photos to upload."

    def add_arguments(self, parser):
        parser.add_argument("--individuals", type=int, default=40)
        # the library's default recipe (ml.presets.DEFAULT): a frozen pretrained EfficientNet-Lite0 at 224 px for a
        # few epochs, calibrated on held-out whales, the winner on real photos (bench/real_reid.py)
        parser.add_argument("--photos", type=int, default=8, help="gallery photos per individual")
        parser.add_argument("--dolphins", type=int, default=10, help="bottlenose dolphins in the fin catalogue")
        parser.add_argument("--image-size", type=int, default=presets.DEFAULT.image_size)
        parser.add_argument("--epochs", type=int, default=presets.DEFAULT.epochs)
        parser.add_argument("--arch", default=presets.DEFAULT.arch, choices=presets.ARCHS)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--localizer-epochs",
            type=int,
            default=8,
            help="fluke localizer epochs (capped for a first `make run`; ml's own default is >= 400 steps)",
        )
        parser.add_argument(
            "--fast", action="store_true", help="tiny settings (tests): 6 whales, 3 photos, 64px, 1 epoch"
        )
        parser.add_argument("--force", action="store_true", help="seed again even if demo data exists")
        parser.add_argument("--uploads-dir", default=None, help="where to write held-out photos (var/demo/uploads)")

    def handle(self, *args, **o):
        ensure_broker_folders()  # promotion queues photos that waited for a model
        if o["fast"]:
            o.update(individuals=6, dolphins=3, photos=3, image_size=64, epochs=1, localizer_epochs=2, arch="resnet18")
        if o["individuals"] < 2 or o["dolphins"] < 2 or o["photos"] < 1:
            raise CommandError("--individuals and --dolphins must be at least 2 and --photos at least 1")
        species = seed_species()
        self.stdout.write("Demo users:")
        users = create_demo_users(self.stdout)
        if Individual.objects.filter(species=species["HW"]).exists() and ModelVersion.objects.active().exists():
            if not o["force"]:
                self.stdout.write(self.style.WARNING("Demo data already present (use --force to add another seed)."))
                return
        uploads = Path(o["uploads_dir"]) if o["uploads_dir"] else Path(settings.VAR_DIR) / "demo" / "uploads"
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="whalesite-synth-") as tmp:
            flukes = self._catalogue(Path(tmp) / "flukes", species["HW"], o, users, uploads, "demo")
            self._train(o, users, t0, species["HW"])  # the humpbacks first: the demo can be tried sooner
            fins = self._catalogue(Path(tmp) / "fins", species["TT"], o, users, uploads, "demo-fin")
            self._train(o, users, t0, species["TT"])
            train_species_demo(flukes, fins, self.stdout, "thumbnail" if o["fast"] else "efficientnet_lite0")

    def _catalogue(self, folder: Path, species: Species, o: dict, users: dict, uploads: Path, prefix: str):
        """``species``' demo catalogue (synthetic photos, ``build_gallery``); returns its gallery photos' files
        (the species classifier's training photos: the held-out demo uploads stay unseen by it too)."""
        t0 = time.monotonic()
        whales = o["individuals"] if species.code == "HW" else o["dolphins"]
        with transaction.atomic():
            individuals, held_out = build_gallery(
                folder,
                individuals=whales,
                photos=o["photos"],
                seed=o["seed"] + (species.code != "HW"),
                user=users["watcher"],
                species=species,
                uploads_dir=uploads,
                uploads_prefix=prefix,
                example_status=TrainingExample.Status.QUEUED,  # until its species' demo run trains on them
            )
        self.stdout.write(
            f"Created {len(individuals)} {species.common_name.lower()} individuals ({species.code}-) with "
            f"{o['photos']} photos each ({time.monotonic() - t0:.1f}s); {len(held_out)} demo photos in {uploads}"
        )
        unseen = {path for path, _ in held_out}
        return sorted(p for p in (folder / "images").glob("*.jpg") if p not in unseen)

    def _train(self, o: dict, users: dict, t0: float, species: Species) -> None:
        last = [0.0]

        def progress(p):
            now = time.monotonic()
            if p.phase != "train" or now - last[0] > 2:
                last[0] = now
                self.stdout.write(f"  {p.describe()}")  # each phase its own counter

        self.stdout.write(
            f"Training the {species.common_name.lower()} model: {o['arch']} at {o['image_size']}px "
            f"for {o['epochs']} epoch(s)..."
        )
        version = train_and_activate(
            epochs=o["epochs"],
            arch=o["arch"],
            image_size=o["image_size"],
            progress=progress,
            user=users["admin"],
            localizer_epochs=o["localizer_epochs"],
            species=species,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Active {species.code} model {version.name}: MAP@5 {version.metrics.get('map5')}, gallery embedded "
                f"({time.monotonic() - t0:.0f}s in all)."
            )
        )
