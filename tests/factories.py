"""factory_boy factories and test images shared by the site tests."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from identification.models import Individual, ModelVersion, Species
from submissions.models import Photo, Sighting

PASSWORD = "whales-test"


# --------------------------------------------------------------------------- images


def jpeg_bytes(size=(320, 200), seed=0, fmt="JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 255, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    im = Image.fromarray(a, "RGB").resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def upload(name: str, data: bytes, content_type="image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def bomb_png() -> bytes:
    """A small file whose header claims ~72 megapixels (over ml's pixel cap)."""
    buf = io.BytesIO()
    Image.new("1", (9000, 8000)).save(buf, "PNG")
    return buf.getvalue()


def fluke_dataset(out_dir: Path, individuals: int, photos: int, seed: int = 0) -> Path:
    """A labelled data set (images/, train.csv, boxes.csv) from ``ml.synth``."""
    from ml.synth import generate_dataset

    generate_dataset(str(out_dir), individuals=individuals, photos=photos, seed=seed, progress=False)
    return out_dir


def read_dataset(out_dir: Path) -> tuple[dict[str, list[str]], dict]:
    from ml.data import read_boxes_csv, read_labels_csv

    by_id: dict[str, list[str]] = {}
    for image, label, _ in read_labels_csv(out_dir / "train.csv"):
        by_id.setdefault(label, []).append(image)
    boxes = read_boxes_csv(out_dir / "boxes.csv") if (out_dir / "boxes.csv").exists() else {}
    return {k: sorted(v) for k, v in sorted(by_id.items())}, boxes


# --------------------------------------------------------------------------- factories


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    username = factory.SelfAttribute("email")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(obj, create, extracted, **kwargs):
        if extracted:
            from accounts.roles import grant_role

            grant_role(obj, extracted)


class SpeciesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Species
        django_get_or_create = ("code",)

    common_name = "Humpback whale"
    scientific_name = "Megaptera novaeangliae"
    scientific_name_id = "urn:lsid:marinespecies.org:taxname:137092"
    code = "HW"
    profile = "humpback_fluke"


class IndividualFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Individual

    species = factory.SubFactory(SpeciesFactory)
    catalogue_id = factory.Sequence(lambda n: f"HW-{n + 1:04d}")


class SightingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sighting

    species = factory.SubFactory(SpeciesFactory)
    observed_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=3))
    submitted_by = factory.SubFactory(UserFactory)


class PhotoFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Photo

    sighting = factory.SubFactory(SightingFactory)
    species = factory.LazyAttribute(lambda o: o.sighting.species)  # as an upload: the sighting's unless told
    image = factory.LazyAttributeSequence(lambda o, n: ContentFile(jpeg_bytes(seed=1000 + n), name="photo.jpg"))
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    original_filename = "photo.jpg"


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    name = factory.Sequence(lambda n: f"test-model-{n}")
    artifact_dir = "models/test"
    species = factory.SubFactory(SpeciesFactory)  # each species has its own models (the humpback's by default)


def write_csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def sighting_form(species, /, **overrides) -> dict:
    """The upload form's fields for one sighting (the tests' one definition), with ``overrides`` (which may
    replace ``species`` too: ``species`` is positional-only)."""
    data = {
        "species": species.pk,
        "observed_date": "2024-07-01",
        "observed_time": "14:30",
        "latitude": "66.05",
        "longitude": "-17.35",
        "place_name": "Skjálfandi",
        "observer_name": "",
        "notes": "",
    }
    data.update(overrides)
    return data


def photo_the_classifier_disputes() -> tuple[Photo, Species, Species]:
    """(photo, humpback, dolphin): a humpback photo awaiting review under the active humpback model, which the
    species classifier took for a bottlenose dolphin at 91% (the review page's "Wrong species?" case)."""
    humpback = SpeciesFactory()
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    photo = PhotoFactory(
        sighting=SightingFactory(species=humpback),
        status=Photo.Status.AWAITING_REVIEW,
        model_version=ModelVersionFactory(is_active=True, species=humpback),
        suggested_species=dolphin,
        species_confidence=0.91,
    )
    return photo, humpback, dolphin
