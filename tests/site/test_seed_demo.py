"""``manage.py seed_demo --fast``: a working demo from nothing (in process, tiny model)."""

import io

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command

from identification import pipeline
from identification.management.commands.seed_demo import DEMO_PASSWORD
from identification.models import Embedding, Individual, ModelVersion, Species, TrainingExample, TrainingRun
from identification.pipeline import cache
from identification.training.dataset import holdout_photo_ids
from submissions.models import Photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_seed_demo_fast_builds_a_working_demo(tmp_path):
    uploads = tmp_path / "uploads"
    out = io.StringIO()
    try:
        call_command("seed_demo", "--fast", "--uploads-dir", str(uploads), stdout=out)
    finally:
        pipeline.reset()  # the in-process promotion loaded the model into this process's cache
    text = out.getvalue()

    individuals = Individual.objects.filter(species__code="HW")
    assert individuals.count() == 6
    assert sorted(individuals.values_list("catalogue_id", flat=True)) == [f"HW-{n:04d}" for n in range(1, 7)]
    gallery = Photo.objects.in_gallery().filter(species__code="HW")
    assert gallery.count() == 6 * 3
    assert all(default_storage.exists(p.image.name) for p in gallery)
    for code in ("HW", "TT"):  # each species' run trained on its own photos, all but its frozen holdout
        species = Species.objects.get(code=code)
        examples = TrainingExample.objects.filter(photo__species=species)
        used = examples.filter(status=TrainingExample.Status.USED, used_by=TrainingRun.objects.get(species=species))
        assert used.exists() and not set(used.values_list("photo_id", flat=True)) & holdout_photo_ids(species)
        assert set(used.values_list("photo_id", flat=True)) | holdout_photo_ids(species) == set(
            examples.values_list("photo_id", flat=True)
        )

    version = ModelVersion.objects.get(is_active=True, species__code="HW")
    assert version.gallery_ready and version.promoted_at is not None
    assert "map5" in version.metrics and version.history
    assert (cache.model_dir(version) / "model.pt").is_file()
    assert TrainingRun.objects.get(species__code="HW").model_version_id == version.pk
    vectors = Embedding.objects.filter(model_version=version)
    assert set(vectors.values_list("photo_id", flat=True)) == set(gallery.values_list("pk", flat=True))
    v = np.frombuffer(bytes(vectors.first().vector), dtype=np.float32)
    assert v.size == version.metrics.get("embedding_dim", v.size) and abs(float(np.linalg.norm(v)) - 1) < 1e-3
    assert f"Active HW model {version.name}" in text

    User = get_user_model()
    roles = {"admin@example.org": "Admins", "moderator@example.org": "Moderators", "watcher@example.org": "Watchers"}
    for email, group in roles.items():
        user = User.objects.get(email=email)
        assert user.check_password(DEMO_PASSWORD)
        assert list(user.groups.values_list("name", flat=True)) == [group]
    assert User.objects.get(email="admin@example.org").has_perm("identification.manage_models")
    moderator = User.objects.get(email="moderator@example.org")
    assert moderator.has_perm("submissions.review_photo") and not moderator.has_perm("identification.manage_models")
    assert not User.objects.get(email="watcher@example.org").has_perm("submissions.review_photo")

    dolphins = Individual.objects.filter(species__code="TT")  # the fin catalogue: its own ids and photos
    assert sorted(dolphins.values_list("catalogue_id", flat=True)) == ["TT-0001", "TT-0002", "TT-0003"]
    fin_gallery = Photo.objects.in_gallery().filter(species__code="TT", individual__in=dolphins)
    fin_version = ModelVersion.objects.get(is_active=True, species__code="TT")  # its own model, beside the HW one
    assert fin_version.gallery_ready and f"Active TT model {fin_version.name}" in text
    assert (cache.model_dir(fin_version) / "model.pt").is_file()
    fin_vectors = Embedding.objects.filter(model_version=fin_version)
    assert set(fin_vectors.values_list("photo_id", flat=True)) == set(fin_gallery.values_list("pk", flat=True))
    assert fin_gallery.count() == 3 * 3 and Photo.objects.in_gallery().count() == 6 * 3 + 3 * 3
    assert not Embedding.objects.filter(model_version=version, photo__in=fin_gallery).exists()  # flukes only
    assert dict(Species.objects.exclude(profile="").values_list("code", "profile")) == {
        "HW": "humpback_fluke",
        "TT": "dolphin_fin",
    }
    fins = sorted(uploads.glob("demo-fin-*.jpg"))  # held-out fins, to try the per-photo species with
    assert len(fins) == 3 + 2 * 2 and all(f.stat().st_size > 1000 for f in fins)
    assert {f.name.split("-", 3)[3].rsplit(".", 1)[0] for f in fins if "-new" not in f.name} == set(
        dolphins.values_list("catalogue_id", flat=True)
    )
    files = sorted(set(uploads.iterdir()) - set(fins))
    assert len(files) == 6 + 2 * 2  # one held-out photo of each known whale, two of each of two new whales
    assert sum("-new" in f.name for f in files) == 4
    assert all(f.stat().st_size > 1000 for f in files)
    known = {f.name.split("-", 2)[2].rsplit(".", 1)[0] for f in files if "-new" not in f.name}
    assert known == set(individuals.values_list("catalogue_id", flat=True))

    from ml.species import SpeciesClassifier
    from submissions.species_guess import classifier_dir

    classifier = SpeciesClassifier.load(classifier_dir())  # the upload form's suggestion: flukes and fins
    assert (
        set(classifier.profiles) == {"humpback_fluke", "dolphin_fin"}
        and f"Species classifier in {classifier_dir()}" in text
    )

    # running it again is a no-op
    again = io.StringIO()
    call_command("seed_demo", "--fast", "--uploads-dir", str(uploads), stdout=again)
    assert "already present" in again.getvalue()
    assert Individual.objects.count() == 6 + 3 and ModelVersion.objects.count() == 2
