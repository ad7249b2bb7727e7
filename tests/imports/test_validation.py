"""Every row of an import is checked before anything is written; a sheet or ZIP that cannot be read at
all is refused whole with its reason; the import page shows each row's status and reason."""

import io
import re
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from identification.models import Individual
from submissions.imports import run, sheet
from submissions.models import BulkImport, ImportRow, Photo, Sighting
from tests.factories import IndividualFactory, SpeciesFactory, UserFactory
from tests.imports.helpers import photos, photos_zip, row, sheet_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator():
    SpeciesFactory()
    return UserFactory(email="mod@example.org", role="moderator")


def _reasons(bulk) -> dict[int, str]:
    return {r.number: " ".join(r.errors) for r in bulk.rows.all()}


def test_a_sheet_of_good_and_bad_rows_is_checked_row_by_row_and_nothing_is_written(moderator):
    IndividualFactory(catalogue_id="HW-0100", nickname="Notch")
    files = photos(9)
    rows = [
        row("p0000.jpg", catalogue_id="HW-0100"),  # 2: extends a known whale
        row("p0001.jpg"),  # 3: no id, goes to review
        row("p0002.jpg", observed_at="14/07/2024"),  # 4: wrong date format
        row("p0003.jpg", latitude="95", longitude="10"),  # 5: out of range
        row("p0004.jpg", species="Blue whale"),  # 6: unknown species
        row("missing.jpg"),  # 7: not in the ZIP
        row("p0005.jpg", catalogue_id="HW-0100", nickname="Other"),  # 8: nickname differs from the catalogue
        row("p0006.jpg", latitude="", longitude="", place=""),  # 9: nowhere
        row("p0001.jpg"),  # 10: the same photo twice
        row("p0007.jpg", photographer="x" * 201),  # 11: over-long field, never cut silently
        row("p0008.jpg", observed_at="2024-07-14T09:30:00+02:00", latitude="", longitude="", place="Húsavík"),
    ]
    bulk = run.create_import(user=moderator, sheet=sheet_csv(rows), archive=photos_zip(files))

    statuses = dict(bulk.rows.values_list("number", "status"))
    assert [n for n, s in statuses.items() if s == ImportRow.Status.VALID] == [2, 3, 12]
    reasons = _reasons(bulk)
    assert "'14/07/2024' is not a date and time: write YYYY-MM-DD HH:MM" in reasons[4]
    assert reasons[5] == "latitude 95 is out of range: it must be between -90 and 90."  # and nothing else
    assert "Unknown species 'Blue whale'; the catalogue has: HW (Humpback whale)" in reasons[6]
    assert "No file named 'missing.jpg' in the ZIP." in reasons[7]
    assert "HW-0100 is nicknamed 'Notch' on line 2." in reasons[8]
    assert "Give latitude and longitude, or a place." in reasons[9]
    assert "'p0001.jpg' is already the photo of line 3." in reasons[10]
    assert "photographer is 201 characters long, over the 200 allowed." in reasons[11]
    assert bulk.rows.get(number=12).values["observed_at"] == "2024-07-14T09:30:00+02:00"
    # checking wrote the import and its rows only
    assert not Sighting.objects.exists() and not Photo.objects.exists()
    assert Individual.objects.count() == 1
    assert bulk.status == BulkImport.Status.CHECKED


def test_a_missing_column_refuses_the_sheet_and_saves_nothing(moderator):
    columns = [c for c in sheet.NAMES if c != "species"]
    with pytest.raises(ValidationError, match="missing column: species"):
        run.create_import(user=moderator, sheet=sheet_csv([row("p0000.jpg")], columns), archive=photos_zip(photos(1)))
    with pytest.raises(ValidationError, match="unknown column: photgrapher"):
        run.create_import(
            user=moderator,
            sheet=sheet_csv([row("p0000.jpg")], [*sheet.NAMES, "photgrapher"]),
            archive=photos_zip(photos(1)),
        )
    assert not BulkImport.objects.exists()


def _zip_of(entries) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    buf.seek(0)
    buf.name = "photos.zip"
    return buf


@pytest.mark.parametrize(
    "entries,message",
    [
        ([("../../etc/evil.jpg", b"x")], "points outside the archive (path traversal)"),
        ([("/abs/evil.jpg", b"x")], "points outside the archive (path traversal)"),
        ([("p0000.jpg", b"\0" * (20 * 1024 * 1024))], "which is how a zip bomb looks"),
    ],
    ids=["traversal", "absolute", "bomb-ratio"],
)
def test_a_dangerous_zip_is_refused_whole(moderator, entries, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        run.create_import(user=moderator, sheet=sheet_csv([row("p0000.jpg")]), archive=_zip_of(entries))
    assert not BulkImport.objects.exists()


def test_a_zip_over_the_uncompressed_cap_or_not_a_zip_is_refused(moderator):
    with override_settings(IMPORT_MAX_UNCOMPRESSED_BYTES=10_000):
        with pytest.raises(ValidationError, match="uncompressed, over the"):
            run.create_import(user=moderator, sheet=sheet_csv([row("p0000.jpg")]), archive=photos_zip(photos(2)))
    not_zip = io.BytesIO(b"this is not a zip")
    with pytest.raises(ValidationError, match="not a ZIP archive"):
        run.create_import(user=moderator, sheet=sheet_csv([row("p0000.jpg")]), archive=not_zip)
    assert not BulkImport.objects.exists()


def test_an_xlsx_sheet_with_date_cells_is_read(moderator):
    import datetime as dt

    from django.core.files.uploadedfile import SimpleUploadedFile
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    ws.append(list(sheet.NAMES))
    ws.append(["p0000.jpg", dt.datetime(2023, 8, 1, 14, 5), 65.9, -17.4, "", "Humpback whale", "", "", "", 42, ""])
    buf = io.BytesIO()
    book.save(buf)
    xlsx = SimpleUploadedFile("catalogue.xlsx", buf.getvalue())
    bulk = run.create_import(user=moderator, sheet=xlsx, archive=photos_zip(photos(1)))
    r = bulk.rows.get()
    assert r.status == ImportRow.Status.VALID, r.errors
    assert r.values["observed_at"].startswith("2023-08-01T14:05") and r.values["catalogue_id"] == "42"


def test_the_template_downloads_and_reads_back_as_a_valid_header(client, moderator):
    client.force_login(moderator)
    response = client.get(reverse("submissions:import_template"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    header = response.content.decode().splitlines()[0].split(",")
    assert header == list(sheet.NAMES)
    sheet.check_header(header)  # raises on a missing or unknown column


def test_the_import_page_lists_each_rows_status_and_offers_the_valid_rows_only(client, moderator):
    client.force_login(moderator)
    rows = [row("p0000.jpg"), row("p0001.jpg", latitude="abc")]
    response = client.post(reverse("submissions:imports"), {"sheet": sheet_csv(rows), "archive": photos_zip(photos(2))})
    bulk = BulkImport.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("submissions:import_detail", args=[bulk.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Import the 1 valid row only" in page
    assert "latitude &#x27;abc&#x27; is not a number" in page
    assert 'data-row="3" data-status="invalid"' in page

    response = client.post(reverse("submissions:import_start", args=[bulk.pk]))
    bulk.refresh_from_db()
    assert bulk.status == BulkImport.Status.RUNNING
    assert dict(bulk.rows.values_list("number", "status")) == {2: "valid", 3: "skipped"}


def test_a_bad_sheet_is_answered_on_the_page(client, moderator):
    client.force_login(moderator)
    columns = [c for c in sheet.NAMES if c != "photo"]
    response = client.post(
        reverse("submissions:imports"),
        {"sheet": sheet_csv([row("p0000.jpg")], columns), "archive": photos_zip(photos(1))},
    )
    assert response.status_code == 200
    assert "missing column: photo" in response.content.decode()
    assert not BulkImport.objects.exists()


@override_settings(MAX_REQUEST_BYTES=1000, IMPORT_MAX_REQUEST_BYTES=5000)
def test_an_oversized_upload_is_refused_before_it_is_read(client, moderator):
    client.force_login(moderator)
    big = client.post(reverse("submissions:imports"), data=b"x" * 6000, content_type="application/octet-stream")
    assert big.status_code == 413 and b"over the 0 MB limit" in big.content
    # the import page has its own, larger cap: a request the upload page would refuse reaches the form
    mid = client.post(reverse("submissions:imports"), data=b"x" * 3000, content_type="application/octet-stream")
    assert mid.status_code == 200
    assert client.post(reverse("submissions:submit"), data=b"x" * 3000, content_type="text/plain").status_code == 413
