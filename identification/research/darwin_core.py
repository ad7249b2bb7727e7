"""A Darwin Core Archive of the confirmed catalogue, for GBIF and OBIS.

* ``occurrence.txt`` (core): one row per photographed individual per sighting, from the confirmed
  photos whose licence allows export (CC0 and CC BY; CC BY-NC only with
  ``EXPORT_NONCOMMERCIAL_PHOTOS``). A sighting's photos of one whale make one occurrence, of that whale's
  species (a confirmed photo's species is its individual's): a sighting with a humpback fluke and a dolphin
  fin gives two occurrences, each with its own ``scientificName``.
* ``multimedia.txt`` (GBIF Simple Multimedia extension): one row per exported photo.
* ``meta.xml`` (the archive's layout) and ``eml.xml`` (dataset metadata from the ``DWCA_*`` settings).

The ZIP is written entry by entry into a ``StreamSink`` while the photos are read with
``.iterator()``, so neither the rows nor the archive are ever held whole.
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from xml.sax.saxutils import escape

from django.conf import settings
from django.utils import timezone

from submissions.models import Licence

from .common import (
    CHUNK_ROWS,
    ExportOptions,
    People,
    StreamSink,
    clean_cell,
    confirmed_photos,
    iso,
    photo_format,
    photo_url,
    photographer,
    round_coordinate,
    rounding_uncertainty_m,
    site_host,
)

DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
OCCURRENCE_ROW_TYPE = DWC + "Occurrence"
MULTIMEDIA_ROW_TYPE = "http://rs.gbif.org/terms/1.0/Multimedia"
LICENCE_URIS = {
    Licence.CC0: "http://creativecommons.org/publicdomain/zero/1.0/legalcode",
    Licence.CC_BY: "http://creativecommons.org/licenses/by/4.0/legalcode",
    Licence.CC_BY_NC: "http://creativecommons.org/licenses/by-nc/4.0/legalcode",
}
RESTRICTIVENESS = [Licence.CC0, Licence.CC_BY, Licence.CC_BY_NC]  # an occurrence takes its photos' strictest
VERIFIED = "verified by expert"  # a moderator (the site's reviewers) confirmed the match

OCCURRENCE_TERMS = [
    ("occurrenceID", DWC),
    ("basisOfRecord", DWC),
    ("occurrenceStatus", DWC),
    ("organismID", DWC),
    ("organismName", DWC),
    ("eventDate", DWC),
    ("decimalLatitude", DWC),
    ("decimalLongitude", DWC),
    ("coordinateUncertaintyInMeters", DWC),
    ("geodeticDatum", DWC),
    ("locality", DWC),
    ("scientificName", DWC),
    ("scientificNameID", DWC),
    ("vernacularName", DWC),
    ("recordedBy", DWC),
    ("identifiedBy", DWC),
    ("dateIdentified", DWC),
    ("identificationVerificationStatus", DWC),
    ("license", DC),
    ("rightsHolder", DC),
    ("associatedMedia", DWC),
]
MULTIMEDIA_TERMS = [
    ("identifier", DC),
    ("type", DC),
    ("format", DC),
    ("license", DC),
    ("rightsHolder", DC),
    ("creator", DC),
    ("created", DC),
    ("references", DC),
]


def exportable_licences() -> list[str]:
    """CC0 and CC BY always; CC BY-NC only where ``EXPORT_NONCOMMERCIAL_PHOTOS`` allows it."""
    allowed = [Licence.CC0, Licence.CC_BY]
    if settings.EXPORT_NONCOMMERCIAL_PHOTOS:
        allowed.append(Licence.CC_BY_NC)
    return [str(x) for x in allowed]


def exported_photos(options: ExportOptions):
    """Confirmed, licensed for export, ordered so that one occurrence's photos come together."""
    return (
        confirmed_photos(options)
        .filter(licence__in=exportable_licences())
        .order_by("sighting__observed_at", "sighting_id", "whale_catalogue_id", "pk")
    )


def occurrence_id(photo) -> str:
    """Stable across exports: the site's host, the sighting and the whale's catalogue id."""
    return f"{site_host()}:occ:{photo.sighting_id}-{photo.whale_catalogue_id}"


def occurrences(options: ExportOptions):
    """Yield (occurrence row dict, its photos), one per whale per sighting."""
    people = People()
    photos = exported_photos(options).iterator(chunk_size=CHUNK_ROWS)
    for _, group in itertools.groupby(photos, key=lambda p: (p.sighting_id, p.whale_id)):
        group = list(group)  # one whale's photos in one sighting: a handful
        yield occurrence_row(group, options, people), group


def occurrence_row(photos, options: ExportOptions, people: People) -> dict:
    first, sighting = photos[0], photos[0].sighting
    # the photos' own species (one whale's photos share its species), never the sighting's: a sighting can
    # hold a fluke and a fin
    species, located = first.species or sighting.species, sighting.latitude is not None
    by = photographer(sighting)
    confirmed = [p for p in photos if p.confirmed_at] or photos
    latest = max(confirmed, key=lambda p: p.confirmed_at or p.decided_at or sighting.observed_at)
    identified_by = sorted({people.name(p.confirmed_by_id) for p in photos} - {""})
    return {
        "occurrenceID": occurrence_id(first),
        "basisOfRecord": "HumanObservation",
        "occurrenceStatus": "present",
        "organismID": first.whale_catalogue_id,
        "organismName": first.whale_nickname or "",
        "eventDate": iso(timezone.localtime(sighting.observed_at)),
        "decimalLatitude": round_coordinate(sighting.latitude, options.decimals),
        "decimalLongitude": round_coordinate(sighting.longitude, options.decimals),
        "coordinateUncertaintyInMeters": rounding_uncertainty_m(options.decimals) if located else "",
        "geodeticDatum": "EPSG:4326" if located else "",
        "locality": sighting.place_name,
        "scientificName": species.scientific_name,
        "scientificNameID": species.scientific_name_id,
        "vernacularName": species.common_name,
        "recordedBy": by,
        "identifiedBy": " | ".join(identified_by),
        "dateIdentified": iso(latest.confirmed_at or latest.decided_at),
        "identificationVerificationStatus": VERIFIED,
        "license": LICENCE_URIS[max((p.licence for p in photos), key=RESTRICTIVENESS.index)],
        "rightsHolder": by,
        "associatedMedia": " | ".join(photo_url(p) for p in photos),
    }


def multimedia_row(photo, core_id: str) -> dict:
    by = photographer(photo.sighting)
    return {
        "identifier": photo_url(photo),
        "type": "StillImage",
        "format": photo_format(photo),
        "license": LICENCE_URIS[photo.licence],
        "rightsHolder": by,
        "creator": by,
        "created": iso(timezone.localtime(photo.sighting.observed_at)),
        "references": "",
        "coreid": core_id,
    }


def meta_xml() -> str:
    """The archive's descriptor: tab-separated UTF-8 files with a header line, no quoting."""

    def fields(terms, offset):
        return "".join(f'\n    <field index="{i + offset}" term="{ns}{name}"/>' for i, (name, ns) in enumerate(terms))

    files = (
        'encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1"'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">\n'
        f'  <core rowType="{OCCURRENCE_ROW_TYPE}" {files}>\n    <files><location>occurrence.txt</location></files>\n'
        f'    <id index="0"/>{fields(OCCURRENCE_TERMS, 0)}\n  </core>\n'
        f'  <extension rowType="{MULTIMEDIA_ROW_TYPE}" {files}>\n'
        "    <files><location>multimedia.txt</location></files>\n"
        f'    <coreid index="0"/>{fields(MULTIMEDIA_TERMS, 1)}\n  </extension>\n</archive>\n'
    )


def eml_xml() -> str:
    """Dataset metadata (EML 2.1.1 as GBIF's IPT writes it) from the ``DWCA_*`` settings."""
    title, creator = escape(settings.DWCA_TITLE), escape(settings.DWCA_CREATOR)
    licence = LICENCE_URIS.get(settings.DWCA_LICENCE, settings.DWCA_LICENCE)
    email = (
        f"<electronicMailAddress>{escape(settings.DWCA_CONTACT_EMAIL)}</electronicMailAddress>"
        if settings.DWCA_CONTACT_EMAIL
        else ""
    )
    party = f"<organizationName>{creator}</organizationName>{email}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 '
        'http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd" '
        f'packageId="{escape(site_host())}:dataset" system="http://gbif.org" scope="system" xml:lang="en">\n'
        f"  <dataset>\n    <title>{title}</title>\n    <creator>{party}</creator>\n"
        f"    <metadataProvider>{party}</metadataProvider>\n"
        f"    <pubDate>{timezone.localdate().isoformat()}</pubDate>\n    <language>en</language>\n"
        f"    <abstract><para>{escape(settings.DWCA_DESCRIPTION)}</para></abstract>\n"
        f'    <intellectualRights><para>This work is licensed under <ulink url="{escape(licence)}">'
        f"<citetitle>{escape(settings.DWCA_LICENCE)}</citetitle></ulink>.</para></intellectualRights>\n"
        f"    <contact>{party}</contact>\n  </dataset>\n</eml:eml>\n"
    )


def _table(zf, name, header, rows, sink):
    """Write one tab-separated entry row by row, yielding whatever the sink holds as it fills."""
    with zf.open(name, "w", force_zip64=True) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        writer = csv.writer(text, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar=None)
        writer.writerow(header)
        for row in rows:
            writer.writerow([clean_cell(row.get(col, "")) for col in header])
            if sink.full():
                text.flush()
                yield sink.take()


def archive_stream(options: ExportOptions):
    """Yield the Darwin Core Archive (ZIP) chunk by chunk."""
    sink = StreamSink()
    core = [name for name, _ in OCCURRENCE_TERMS]
    media = ["coreid"] + [name for name, _ in MULTIMEDIA_TERMS]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        zf.writestr("meta.xml", meta_xml())
        zf.writestr("eml.xml", eml_xml())
        yield sink.take()
        yield from _table(zf, "occurrence.txt", core, (row for row, _ in occurrences(options)), sink)
        media_rows = (multimedia_row(p, row["occurrenceID"]) for row, photos in occurrences(options) for p in photos)
        yield from _table(zf, "multimedia.txt", media, media_rows, sink)
    yield sink.take()
