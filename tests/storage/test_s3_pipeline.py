"""Uploads through the real services with S3 (SeaweedFS) as the default storage, and the real Celery
worker processing a photo it reads from (and writes its crop to) the bucket."""

from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from PIL import Image

from submissions.models import Photo
from submissions.services import submit_sighting
from tests.conftest import photo_inserts_fail, wait_for
from tests.factories import SpeciesFactory, UserFactory, jpeg_bytes, upload
from tests.storage.conftest import ACCESS_KEY, SECRET_KEY

pytestmark = [pytest.mark.s3]


def _keys(s3_server) -> set[str]:
    pages = s3_server["client"].get_paginator("list_objects_v2").paginate(Bucket=s3_server["bucket"])
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _object(s3_server, key) -> bytes:
    return s3_server["client"].get_object(Bucket=s3_server["bucket"], Key=key)["Body"].read()


@pytest.mark.django_db
def test_submit_sighting_stores_each_accepted_upload_in_the_bucket(s3_storage, s3_server):
    from storages.backends.s3 import S3Storage

    before = _keys(s3_server)
    good = jpeg_bytes((480, 300), seed=5)
    out = submit_sighting(
        user=UserFactory(role="watcher"),
        species=SpeciesFactory(),
        observed_at=timezone.now(),
        files=[upload("left fluke.jpg", good), upload("broken.jpg", b"\xff\xd8\xff\xe0 cut short")],
    )
    assert [name for name, _ in out.rejected] == ["broken.jpg"]
    (photo,) = out.accepted
    photo = Photo.objects.get(pk=photo.pk)
    assert isinstance(photo.image.storage, S3Storage)
    assert photo.image.name.startswith("photos/") and "left fluke" not in photo.image.name
    assert _keys(s3_server) - before == {photo.image.name}  # the rejected file was never stored
    assert _object(s3_server, photo.image.name) == good
    assert (photo.width, photo.height) == (480, 300)
    assert not (Path(settings.MEDIA_ROOT) / photo.image.name).exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_failure_mid_upload_leaves_no_object_in_the_bucket(s3_storage, s3_server):
    """Issue 13, item 5 on S3: the file is in the bucket before the photo INSERT fails (a real lock
    timeout); the rollback removes the object."""
    from django.db import OperationalError

    before = _keys(s3_server)
    with photo_inserts_fail(), pytest.raises(OperationalError):
        submit_sighting(
            user=UserFactory(role="watcher"),
            species=SpeciesFactory(),
            observed_at=timezone.now(),
            files=[upload("left.jpg", jpeg_bytes((480, 300), seed=61))],
        )
    assert not Photo.objects.exists()
    assert _keys(s3_server) == before


@pytest.fixture
def s3_worker(celery_worker, s3_server):
    """The session's real worker, restarted with S3 as its default storage (and back afterwards)."""
    original = dict(celery_worker.env)
    celery_worker.stop()
    celery_worker.env = {
        **original,
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": s3_server["bucket"],
        "AWS_S3_ENDPOINT_URL": s3_server["endpoint"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_REGION_NAME": "us-east-1",
    }
    celery_worker.start()
    yield celery_worker
    celery_worker.stop()
    celery_worker.env = original
    celery_worker.start()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_worker_reads_the_upload_from_s3_and_writes_the_crop_there(s3_storage, s3_server, active_model, s3_worker):
    label = sorted(active_model.held_out)[0]
    path = active_model.held_out[label]
    out = submit_sighting(
        user=active_model.users["watcher"],
        species=active_model.species,
        observed_at=timezone.now(),
        files=[upload(path.name, path.read_bytes())],
    )
    (photo,) = out.accepted
    assert _object(s3_server, photo.image.name) == path.read_bytes()

    def settled():
        photo.refresh_from_db()
        return photo.status in (Photo.Status.AWAITING_REVIEW, Photo.Status.FAILED)

    wait_for(settled, timeout=180, message=f"the worker to process photo {photo.pk}")
    assert photo.status == Photo.Status.AWAITING_REVIEW, (
        photo.failure_code,
        photo.failure_reason,
        s3_worker.log_tail(),
    )
    assert photo.suggestions.count() == 6
    assert photo.crop and photo.crop.name in _keys(s3_server)
    with photo.crop.open("rb") as fh:
        crop = Image.open(fh)
        crop.load()
    assert min(crop.size) > 0
    # nothing went to the worker's local MEDIA_ROOT: it read the upload from S3 and wrote the crop there
    media = Path(settings.MEDIA_ROOT)
    assert not (media / photo.image.name).exists() and not (media / photo.crop.name).exists()
