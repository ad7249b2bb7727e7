"""Validating every row of an import before anything is written: each row gets its cleaned values
(JSON-ready) or the reasons it cannot be imported, each in words a person can act on."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from identification.models import Individual, Species
from identification.training.dataset import resolve_merged

from ..forms import NOTES_MAX_CHARS, date_floor
from ..models import Licence
from ..services import extension_error, size_error
from .archive import PhotoArchive

DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
LENGTHS = {"place": 200, "photographer": 200, "notes": NOTES_MAX_CHARS, "catalogue_id": 20, "nickname": 100}


@dataclass
class CheckedRow:
    number: int
    raw: dict
    values: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_when(value) -> tuple[dt.datetime | None, str]:
    """A sheet's date and time: an XLSX date cell, or text in one of ``DATE_FORMATS`` (an ISO offset is
    honoured; a time without one is the site's time zone)."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime.combine(value, dt.time())
    else:
        s = text(value)
        if not s:
            return None, "observed_at is empty."
        when = next((w for f in DATE_FORMATS if (w := _strptime(s, f))), None) or _with_offset(s)
        if when is None:
            return None, f"observed_at {s!r} is not a date and time: write YYYY-MM-DD HH:MM, e.g. 2024-07-14 09:30."
    if timezone.is_naive(when):
        when = timezone.make_aware(when, timezone.get_current_timezone())
    if when > timezone.now() + dt.timedelta(days=1):
        return None, f"observed_at {when:%Y-%m-%d} is in the future."
    if when.date() < date_floor():
        return None, f"observed_at {when:%Y-%m-%d} is before {date_floor():%Y-%m-%d}, the earliest date accepted."
    return when, ""


def _strptime(s: str, fmt: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(s, fmt)
    except ValueError:
        return None


def _with_offset(s: str) -> dt.datetime | None:
    """2024-07-14T09:30:00+02:00 or ...Z; None for anything else (ambiguous forms such as 14/07/2024)."""
    if len(s) < 16 or s[4] != "-" or s[10] not in " T":
        return None
    try:
        when = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def parse_coordinate(value, name: str, bound: float) -> tuple[float | None, str]:
    s = text(value)
    if not s:
        return None, ""
    try:
        number = float(s.replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None, f"{name} {s!r} is not a number: use decimal degrees, e.g. {bound / 2:g}."
    if not math.isfinite(number) or not -bound <= number <= bound:
        return None, f"{name} {s} is out of range: it must be between {-bound:g} and {bound:g}."
    return number, ""


class Lookups:
    """The catalogue's species, licences and individuals, read once per sheet."""

    def __init__(self):
        self.species = {}
        for sp in Species.objects.all():
            for key in (sp.code, sp.common_name, sp.scientific_name):
                if key:
                    self.species[key.strip().lower()] = sp
        self.licences = {v.lower(): v for v in Licence.values} | {str(label).lower(): v for v, label in Licence.choices}
        self.sheet_individuals: dict[str, tuple[int, str, int]] = {}  # id -> (species pk, nickname, first line)

    def species_names(self) -> str:
        return ", ".join(sorted({f"{s.code} ({s.common_name})" for s in self.species.values()}))


def check_rows(rows: list[tuple[int, dict]], archive: PhotoArchive) -> list[CheckedRow]:
    lookups = Lookups()
    seen_photos: dict[str, int] = {}
    out = []
    for number, cells in rows:
        row = CheckedRow(number, {k: text(v) for k, v in cells.items()})
        _check_fields(row, cells, lookups)
        _check_photo(row, archive, seen_photos)
        _check_individual(row, lookups)
        if row.errors:
            row.values = {}
        out.append(row)
    return out


def _check_fields(row: CheckedRow, cells: dict, lookups: Lookups) -> None:
    v, errors = row.values, row.errors
    when, error = parse_when(cells.get("observed_at"))
    errors += [error] if error else []
    v["observed_at"] = when.isoformat() if when else None
    lat, lat_error = parse_coordinate(cells.get("latitude"), "latitude", 90)
    lon, lon_error = parse_coordinate(cells.get("longitude"), "longitude", 180)
    errors += [e for e in (lat_error, lon_error) if e]
    if (lat is None) != (lon is None) and not (lat_error or lon_error):
        errors.append("Give both latitude and longitude, or neither.")
    v["latitude"], v["longitude"] = lat, lon
    for name, limit in LENGTHS.items():
        v[name] = row.raw.get(name, "")
        if len(v[name]) > limit:
            errors.append(f"{name} is {len(v[name])} characters long, over the {limit} allowed.")
    if lat is None and lon is None and not v["place"] and not any("itude" in e for e in errors):
        errors.append("Give latitude and longitude, or a place.")
    species = lookups.species.get(row.raw.get("species", "").lower())
    if species is None:
        errors.append(
            f"Unknown species {row.raw.get('species', '')!r}; the catalogue has: {lookups.species_names()}."
            if row.raw.get("species")
            else "species is empty."
        )
    v["species"] = species.pk if species else None
    licence = row.raw.get("licence", "")
    v["licence"] = lookups.licences.get(licence.lower()) if licence else settings.DEFAULT_PHOTO_LICENCE
    if v["licence"] is None:
        errors.append(f"Unknown licence {licence!r}; use one of {', '.join(Licence.values)}.")


def _check_photo(row: CheckedRow, archive: PhotoArchive, seen: dict[str, int]) -> None:
    name = row.raw.get("photo", "")
    if not name:
        row.errors.append("photo is empty: give the photo's file name inside the ZIP.")
        return
    info, error = archive.find(name)
    if info is None:
        row.errors.append(error)
        return
    if info.filename in seen:
        row.errors.append(f"{name!r} is already the photo of line {seen[info.filename]}.")
        return
    seen[info.filename] = row.number
    error = extension_error(info.filename) or size_error(info.file_size)
    if error:
        row.errors.append(f"{name}: {error}")
    row.values["photo_path"] = info.filename


def _check_individual(row: CheckedRow, lookups: Lookups) -> None:
    """An id already in the catalogue or earlier in the sheet extends that individual (never a second
    one); only a different species or nickname for it is an error."""
    cid, nickname, species_pk = row.values.get("catalogue_id"), row.values.get("nickname"), row.values.get("species")
    if not cid:
        if nickname:
            row.errors.append("nickname is given without a catalogue_id.")
        return
    if cid in lookups.sheet_individuals:
        sp, nick, line = lookups.sheet_individuals[cid]
        if species_pk and sp != species_pk:
            row.errors.append(f"{cid} is another species on line {line}.")
        if nickname and nick and nickname != nick:
            row.errors.append(f"{cid} is nicknamed {nick!r} on line {line}.")
        if nickname and not nick:
            lookups.sheet_individuals[cid] = (sp, nickname, line)
        return
    known = Individual.objects.filter(catalogue_id=cid).first()
    if known is not None:
        known = resolve_merged(known)
        if species_pk and known.species_id != species_pk:
            row.errors.append(f"{cid} is a {known.species} in the catalogue.")
        if nickname and known.nickname and nickname != known.nickname:
            row.errors.append(f"{cid} is nicknamed {known.nickname!r} in the catalogue.")
    lookups.sheet_individuals[cid] = (species_pk, nickname or (known.nickname if known else ""), row.number)
