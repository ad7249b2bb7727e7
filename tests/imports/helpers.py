"""Building import sheets and ZIPs for the bulk import tests (real files, read by the real code)."""

from __future__ import annotations

import csv
import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

from submissions.imports.sheet import NAMES
from tests.factories import jpeg_bytes


def row(photo: str, **values) -> dict:
    base = {"photo": photo, "observed_at": "2024-07-14 09:30", "latitude": "65.98", "longitude": "-17.45"}
    base.update({"species": "HW", "photographer": "A. Watcher", "licence": "CC-BY"})
    base.update(values)
    return base


def sheet_csv(rows: list[dict], columns=NAMES, name="sheet.csv") -> SimpleUploadedFile:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r.get(c, "") for c in columns])
    return SimpleUploadedFile(name, out.getvalue().encode(), content_type="text/csv")


def photos_zip(files: dict[str, bytes], name="photos.zip") -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    return SimpleUploadedFile(name, buf.getvalue(), content_type="application/zip")


def photos(n: int, seed: int = 0, size=(320, 200)) -> dict[str, bytes]:
    return {f"p{i:04d}.jpg": jpeg_bytes(size=size, seed=seed + i) for i in range(n)}
