"""submit_sighting: the happy path, every kind of bad file, and duplicates."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.utils import timezone

from submissions.models import Photo, Sighting
from submissions.services import exif_prefill, submit_sighting
from tests.conftest import photo_inserts_fail
from tests.factories import SpeciesFactory, UserFactory, bomb_png, jpeg_bytes, upload

pytestmark = pytest.mark.django_db


def submit(files, **kw):
    return submit_sighting(
        user=kw.pop("user", None) or UserFactory(),
        species=SpeciesFactory(),
        observed_at=timezone.now(),
        files=files,
        **kw,
    )


def test_happy_path_saves_photos_with_unguessable_names():
    out = submit(
        [upload("IMG_1.JPG", jpeg_bytes(seed=1)), upload("b.png", jpeg_bytes(seed=2, fmt="PNG"))],
        place_name="Hervey Bay",
        latitude=-25.0,
        longitude=152.9,
    )
    assert out.sighting is not None and out.rejected == [] and out.duplicates == []
    assert len(out.accepted) == 2
    for photo in out.accepted:
        photo.refresh_from_db()
        assert photo.status == Photo.Status.UPLOADED
        assert default_storage.exists(photo.image.name)
        assert "IMG_1" not in photo.image.name and len(photo.sha256) == 64 and len(photo.phash) == 16
        assert (photo.width, photo.height) == (320, 200)
    assert out.accepted[0].original_filename == "IMG_1.JPG"


def test_png_named_jpg_is_fine():
    out = submit([upload("whale.jpg", jpeg_bytes(fmt="PNG"))])
    assert len(out.accepted) == 1


@pytest.mark.parametrize(
    "name,data,needle",
    [
        ("virus.exe", jpeg_bytes(), "Files ending in .exe can't be used as a photo"),
        ("notes.txt", b"hello whales", "Files ending in .txt can't be used as a photo"),
        ("fake.jpg", b"this is plain text, not a JPEG" * 20, "not an image"),
        ("cut.jpg", jpeg_bytes(size=(640, 480))[:3000], "damaged or incomplete"),
        ("tiny.jpg", jpeg_bytes(size=(64, 48)), "too small"),
        ("bomb.png", bomb_png(), "too many pixels"),
    ],
)
def test_bad_files_are_rejected_and_nothing_is_saved(name, data, needle):
    out = submit([upload(name, data)])
    assert out.sighting is None and out.accepted == []
    assert out.rejected[0][0] == name and needle in out.rejected[0][1]
    assert not Sighting.objects.exists() and not Photo.objects.exists()


def test_oversized_file(settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    out = submit([upload("big.jpg", jpeg_bytes(size=(1200, 900), seed=3))])
    assert out.sighting is None and "limit" in out.rejected[0][1]
    assert not Photo.objects.exists()


def test_good_files_kept_when_others_fail():
    out = submit([upload("ok.jpg", jpeg_bytes(seed=4)), upload("bad.txt", b"x")])
    assert len(out.accepted) == 1 and [r[0] for r in out.rejected] == ["bad.txt"]
    assert Photo.objects.count() == 1


def test_zero_or_too_many_files(settings):
    with pytest.raises(ValidationError):
        submit([])
    settings.MAX_PHOTOS_PER_SIGHTING = 2
    with pytest.raises(ValidationError):
        submit([upload(f"{i}.jpg", jpeg_bytes(seed=i)) for i in range(3)])
    assert not Sighting.objects.exists()


def test_exact_duplicate_is_flagged_not_processed():
    data = jpeg_bytes(seed=9)
    first = submit([upload("a.jpg", data)]).accepted[0]
    out = submit([upload("again.jpg", data), upload("other.jpg", jpeg_bytes(seed=10))])
    assert len(out.duplicates) == 1 and len(out.accepted) == 1
    dup = out.duplicates[0]
    dup.refresh_from_db()
    assert dup.duplicate_of_id == first.pk and dup.status == Photo.Status.REJECTED and dup.reject_reason == "duplicate"


def test_a_sighting_whose_only_photo_is_an_exact_duplicate_is_not_saved():
    data = jpeg_bytes(seed=11)
    submit([upload("a.jpg", data)])
    out = submit([upload("again.jpg", data)])
    assert out.sighting is None and out.accepted == []
    assert [p.original_filename for p in out.duplicates] == ["again.jpg"]
    assert Sighting.objects.count() == 1 and Photo.objects.count() == 1


def test_the_watchers_own_pending_photo_sent_again_is_recognised_not_a_duplicate():
    user = UserFactory()
    data = jpeg_bytes(seed=12)
    first = submit([upload("a.jpg", data)], user=user).accepted[0]
    out = submit([upload("a.jpg", data)], user=user)
    assert out.sighting is None and out.duplicates == [] and [p.pk for p in out.resumed] == [first.pk]
    assert Sighting.objects.count() == 1 and Photo.objects.count() == 1


def test_exif_prefill():
    assert exif_prefill(upload("a.jpg", jpeg_bytes())) == {"observed_at": None, "latitude": None, "longitude": None}


@pytest.mark.django_db(transaction=True)
def test_a_database_failure_mid_upload_leaves_no_file_behind(media_root):
    """The photo INSERT fails (``photo_inserts_fail``: a real lock timeout) after its file was written; the
    rollback removes the file."""
    from django.db import OperationalError

    def stored():
        return sorted(p.relative_to(media_root) for p in media_root.rglob("*") if p.is_file())

    user, species = UserFactory(), SpeciesFactory()
    before = stored()
    with photo_inserts_fail(), pytest.raises(OperationalError):
        submit_sighting(
            user=user,
            species=species,
            observed_at=timezone.now(),
            files=[upload("a.jpg", jpeg_bytes(seed=41)), upload("b.jpg", jpeg_bytes(seed=42))],
        )
    assert not Sighting.objects.exists() and not Photo.objects.exists()
    assert stored() == before


def test_heic_and_heif_photos_from_phones_are_accepted():
    """Needs pillow-heif (a dependency in pyproject.toml); skipped where the environment lacks it."""
    pillow_heif = pytest.importorskip("pillow_heif")
    import io

    from PIL import Image

    def heif(seed):
        out = io.BytesIO()
        pillow_heif.from_pillow(Image.open(io.BytesIO(jpeg_bytes(seed=seed))).convert("RGB")).save(out, format="HEIF")
        return out.getvalue()

    out = submit(
        [
            upload("IMG_0001.HEIC", heif(81), content_type="image/heic"),
            upload("IMG_0002.heif", heif(82), content_type="image/heif"),
        ]
    )
    assert out.rejected == [] and [p.original_filename for p in out.accepted] == ["IMG_0001.HEIC", "IMG_0002.heif"]
    for photo in out.accepted:
        photo.refresh_from_db()
        assert (photo.width, photo.height) == (320, 200) and photo.status == Photo.Status.UPLOADED
