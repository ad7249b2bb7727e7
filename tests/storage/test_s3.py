"""django-storages against a real S3 server (SeaweedFS on loopback)."""

import io
import urllib.request

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

pytestmark = [pytest.mark.s3, pytest.mark.django_db]


def _jpeg_bytes(size=(400, 260), colour=(30, 60, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def test_storage_round_trip_and_presigned_url(s3_storage, s3_server):
    name = s3_storage.save("photos/probe.jpg", io.BytesIO(_jpeg_bytes()))
    assert s3_storage.exists(name)
    with s3_storage.open(name) as handle:
        assert handle.read() == _jpeg_bytes()
    url = s3_storage.url(name)
    assert "Signature" in url or "X-Amz-Signature" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == _jpeg_bytes()
    keys = [o["Key"] for o in s3_server["client"].list_objects_v2(Bucket=s3_server["bucket"])["Contents"]]
    assert name in keys
    s3_storage.delete(name)
    assert not s3_storage.exists(name)


def test_photo_file_lands_in_the_bucket_under_an_unguessable_name(s3_storage, s3_server):
    from submissions.models import Photo
    from tests.factories import SightingFactory

    sighting = SightingFactory()
    photo = Photo(sighting=sighting, sha256="0" * 64, original_filename="my whale.jpg")
    photo.image.save("my whale.jpg", SimpleUploadedFile("my whale.jpg", _jpeg_bytes((500, 300))), save=True)
    photo.refresh_from_db()
    assert (photo.width, photo.height) == (500, 300)
    assert "my whale" not in photo.image.name and photo.image.name.startswith("photos/")
    head = s3_server["client"].head_object(Bucket=s3_server["bucket"], Key=photo.image.name)
    assert head["ContentLength"] == len(_jpeg_bytes((500, 300)))
    with photo.image.open("rb") as handle:
        assert Image.open(handle).size == (500, 300)
