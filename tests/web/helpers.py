"""Shared builders for the web tests (model rows made directly with the ORM and factories)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from identification.models import Individual, ModelVersion, Suggestion, TrainingRun
from submissions.models import Photo
from tests.factories import (
    PASSWORD,
    IndividualFactory,
    ModelVersionFactory,
    PhotoFactory,
    SightingFactory,
    SpeciesFactory,
    UserFactory,
    jpeg_bytes,
)

ROLES = ("anonymous", "watcher", "moderator", "admin")


def make_user(role: str, email: str | None = None):
    if role == "anonymous":
        return None
    return UserFactory(email=email or f"{role}@example.org", role=role)


def login(client, user) -> None:
    if user is not None:
        assert client.login(username=user.email, password=PASSWORD)


def gallery_photo(individual: Individual, **kwargs) -> Photo:
    status = kwargs.pop("status", Photo.Status.CONFIRMED)
    photo = PhotoFactory(individual=individual, status=status, sighting__species=individual.species, **kwargs)
    photo.crop.save("crop.png", ContentFile(jpeg_bytes(size=(209, 100), seed=photo.pk)), save=True)
    return photo


def review_setup(n_candidates: int = 5, new_rank: int = 3):
    """A photo awaiting review with ``n_candidates`` individuals suggested and "new" at ``new_rank``."""
    species = SpeciesFactory()
    version = ModelVersionFactory(metrics={"map5": 0.81, "top1": 0.7, "top5": 0.9})
    individuals = [IndividualFactory(species=species, nickname=f"Nick {i}") for i in range(n_candidates)]
    for ind in individuals:
        gallery_photo(ind)
    photo = PhotoFactory(
        status=Photo.Status.AWAITING_REVIEW,
        model_version=version,
        sighting__species=species,
        sighting__place_name="Husavik",
    )
    photo.crop.save("q.png", ContentFile(jpeg_bytes(size=(209, 100), seed=7)), save=True)
    rank = 1
    for i, ind in enumerate(individuals):
        if rank == new_rank:
            Suggestion.objects.create(photo=photo, model_version=version, rank=rank, individual=None, score=0.5)
            rank += 1
        Suggestion.objects.create(photo=photo, model_version=version, rank=rank, individual=ind, score=0.9 - i * 0.1)
        rank += 1
    if rank == new_rank:  # "new individual" last
        Suggestion.objects.create(photo=photo, model_version=version, rank=rank, individual=None, score=0.3)
    return photo, individuals, version


def running_run(user=None) -> TrainingRun:
    return TrainingRun.objects.create(
        status=TrainingRun.Status.RUNNING,
        options={"epochs": 10, "arch": "resnet18"},
        started_by=user,
        started_at=timezone.now(),
        log="epoch 1 started\nstep 5 loss 1.9\n",
        progress={
            "epoch": 3,
            "epochs": 10,
            "step": 5,
            "steps_per_epoch": 10,
            "loss": 1.234,
            "val_map5": 0.42,
            "eta_seconds": 95.0,
            "phase": "train",
        },
    )


def model_with_plots(**kwargs) -> ModelVersion:
    version = ModelVersionFactory(artifact_dir="models/web-test", **kwargs)
    folder = Path(settings.ML_ROOT) / "models" / "web-test"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("loss", "map5", "confusion"):
        (folder / f"{name}.png").write_bytes(jpeg_bytes(size=(120, 100), fmt="PNG"))
    return version


__all__ = [
    "ROLES",
    "make_user",
    "login",
    "gallery_photo",
    "review_setup",
    "running_run",
    "model_with_plots",
    "SightingFactory",
    "SpeciesFactory",
    "IndividualFactory",
    "PhotoFactory",
    "UserFactory",
    "PASSWORD",
]


def checked_import():
    """A bulk import checked and waiting to start (one valid row), made by the real import code."""
    from submissions.imports.run import create_import
    from tests.imports.helpers import photos, photos_zip, row, sheet_csv

    SpeciesFactory()
    return create_import(
        user=make_user("moderator", "importer@example.org"),
        sheet=sheet_csv([row("p0000.jpg")]),
        archive=photos_zip(photos(1)),
    )
