"""The import sheet: its columns (named once, here: the template, the docs and the validator read them)
and reading a CSV or XLSX file into rows of strings or cell values."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    help: str
    example: str


COLUMNS = (
    Column("photo", True, "File name of the photo inside the ZIP (a path inside it also works)", "IMG_0412.jpg"),
    Column(
        "observed_at",
        True,
        "Date and time: YYYY-MM-DD HH:MM (24 h, site time zone unless an offset such as +02:00 is given), "
        "or YYYY-MM-DD",
        "2024-07-14 09:30",
    ),
    Column("latitude", False, "Decimal degrees, -90 to 90 (give latitude and longitude, or a place)", "65.98"),
    Column("longitude", False, "Decimal degrees, -180 to 180", "-17.45"),
    Column("place", False, "Place name, up to 200 characters (needed when there are no coordinates)", "Skjálfandi"),
    Column("species", True, "Species code, common name or scientific name as in the catalogue", "HW"),
    Column("photographer", False, "Who took the photo, up to 200 characters", "A. Watcher"),
    Column("licence", False, "CC0, CC-BY or CC-BY-NC (empty: the site's default licence)", "CC-BY"),
    Column("notes", False, "Free text, up to 5000 characters", "Breaching calf nearby"),
    Column(
        "catalogue_id",
        False,
        "A known individual's catalogue id, up to 20 characters: the photo joins it as confirmed "
        "(a new id creates the individual)",
        "HW-0042",
    ),
    Column("nickname", False, "The individual's nickname, up to 100 characters (with catalogue_id)", "Notch"),
)
NAMES = tuple(c.name for c in COLUMNS)
REQUIRED = tuple(c.name for c in COLUMNS if c.required)


def template_csv() -> str:
    """The downloadable template: the header and one example row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(NAMES)
    writer.writerow([c.example for c in COLUMNS])
    return out.getvalue()


def _header(cells) -> list[str]:
    return [str(c or "").strip().lower().replace(" ", "_") for c in cells]


def check_header(header: list[str]) -> None:
    """A missing or unknown column stops the whole sheet, named in the message (a typo would lose a column's
    data silently otherwise)."""
    problems = []
    missing = [n for n in REQUIRED if n not in header]
    if missing:
        problems.append(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if not ({"latitude", "longitude"} <= set(header) or "place" in header):
        problems.append("give the columns latitude and longitude, or place")
    unknown = [h for h in header if h and h not in NAMES]
    if unknown:
        problems.append(f"unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    doubled = sorted({h for h in header if h and header.count(h) > 1})
    if doubled:
        problems.append(f"column{'s' if len(doubled) > 1 else ''} given twice: {', '.join(doubled)}")
    if problems:
        raise ValidationError(
            f"The sheet cannot be read: {'; '.join(problems)}. The columns are: {', '.join(NAMES)} "
            "(download the template)."
        )


def read_sheet(f, name: str) -> list[tuple[int, dict]]:
    """[(line number, {column: value})] of the sheet's non-empty rows; the header is line 1."""
    size = getattr(f, "size", None)
    if size is not None and size > settings.IMPORT_MAX_SHEET_BYTES:
        raise ValidationError(
            f"The sheet is {size // (1024 * 1024)} MB, over the "
            f"{settings.IMPORT_MAX_SHEET_BYTES // (1024 * 1024)} MB limit; split it into several imports."
        )
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext == "csv":
        table = _csv_rows(f)
    elif ext == "xlsx":
        table = _xlsx_rows(f)
    else:
        raise ValidationError("The sheet must be a .csv or .xlsx file (download the template).")
    if not table:
        raise ValidationError("The sheet is empty: the first line must name the columns.")
    header = _header(table[0])
    check_header(header)
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        values = {h: cells[i] if i < len(cells) else None for i, h in enumerate(header) if h}
        if any(str(v).strip() for v in values.values() if v is not None):
            rows.append((number, values))
    if not rows:
        raise ValidationError("The sheet has no rows below its header.")
    if len(rows) > settings.IMPORT_MAX_ROWS:
        raise ValidationError(
            f"The sheet has {len(rows)} rows, over the {settings.IMPORT_MAX_ROWS} limit; split it into several imports."
        )
    return rows


def _csv_rows(f) -> list[list]:
    data = b"".join(f.chunks()) if hasattr(f, "chunks") else f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("The CSV file is not UTF-8 text; save it as 'CSV UTF-8' and upload it again.") from None
    try:
        dialect = csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [row for row in csv.reader(io.StringIO(text), dialect)]


def _xlsx_rows(f) -> list[list]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(f, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise ValidationError(
            f"The XLSX file cannot be opened ({type(exc).__name__}); is it an Excel workbook?"
        ) from exc
    try:
        sheet = book.worksheets[0]
        return [list(row) for row in sheet.iter_rows(values_only=True, max_row=settings.IMPORT_MAX_ROWS + 2)]
    finally:
        book.close()
