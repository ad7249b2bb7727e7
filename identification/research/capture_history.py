"""Capture histories for mark-recapture (Program MARK, RMark): one row per individual, one ``1`` /
``0`` per occasion.

An occasion is a day, a month or a season, chosen at export. A season is the months of
``RESEARCH_SEASON_MONTHS`` in order (default Dec-Mar, a breeding season that spans New Year): it is
labelled by the year it starts in (``2025/26`` when it wraps, ``2025`` when not); photos taken
outside the season months belong to no occasion. The occasions are those with at least one
confirmed photo in the export's range (the site records no survey effort, so an occasion with
nobody photographed is not known to have happened).

A capture history is of one population, so it is of one species: with "all species" chosen and the
catalogue holding confirmed whales of more than one, :func:`population` refuses (``MixedSpecies``) and says
which to choose, rather than putting humpbacks and dolphins in one table.

Two passes, neither held whole: the distinct dates (to fix the columns), then the photos in
catalogue-id order, grouped by whale.
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date

from django.conf import settings
from django.utils import timezone

from .common import CHUNK_ROWS, ExportOptions, confirmed_photos

OCCASIONS = ("day", "month", "season")


class MixedSpecies(ValueError):
    """The options would mix the capture histories of more than one species."""


def population(options: ExportOptions) -> ExportOptions:
    """``options`` narrowed to the one species its confirmed photos hold; ``MixedSpecies`` naming them when
    no species is chosen and they hold several."""
    if options.species is not None:
        return options
    codes = sorted(set(confirmed_photos(options).order_by().values_list("species__code", flat=True).distinct()))
    if len(codes) > 1:
        raise MixedSpecies(
            f"A capture history follows one population: choose a species ({', '.join(codes)} have confirmed whales)."
        )
    return options


def season_label(day: date, months: list[int]) -> str | None:
    """The season ``day`` falls in, or None when its month is outside the season. Months after the
    wrap (Jan-Mar of a Dec-Mar season) belong to the season that started the year before."""
    if day.month not in months:
        return None
    wrap = next((i for i in range(1, len(months)) if months[i] < months[i - 1]), None)
    if wrap is None:
        return str(day.year)
    start_year = day.year - 1 if months.index(day.month) >= wrap else day.year
    return f"{start_year}/{(start_year + 1) % 100:02d}"


def occasion_label(day: date, occasion: str, months: list[int] | None = None) -> str | None:
    if occasion == "day":
        return day.isoformat()
    if occasion == "month":
        return f"{day:%Y-%m}"
    if occasion == "season":
        return season_label(day, months or settings.RESEARCH_SEASON_MONTHS)
    raise ValueError(f"occasion must be one of {', '.join(OCCASIONS)}, not {occasion!r}")


def _local_day(moment) -> date:
    return timezone.localtime(moment).date()


def occasions(options: ExportOptions, occasion: str, months=None) -> list[str]:
    """The occasion labels in time order (the columns)."""
    moments = confirmed_photos(options).order_by().values_list("sighting__observed_at", flat=True).distinct()
    labels = {occasion_label(_local_day(m), occasion, months) for m in moments.iterator(chunk_size=CHUNK_ROWS)}
    return sorted(label for label in labels if label is not None)


def histories(options: ExportOptions, occasion: str, months=None):
    """Yield (catalogue id, nickname, history string) per whale, in catalogue-id order (one species:
    check the options with :func:`population` first)."""
    columns = occasions(options, occasion, months)
    index = {label: i for i, label in enumerate(columns)}
    rows = (
        confirmed_photos(options)
        .order_by("whale_catalogue_id")
        .values_list("whale_catalogue_id", "whale_nickname", "sighting__observed_at")
        .iterator(chunk_size=CHUNK_ROWS)
    )
    for (catalogue_id, nickname), group in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
        marks = ["0"] * len(columns)
        for _, _, moment in group:
            label = occasion_label(_local_day(moment), occasion, months)
            if label is not None:
                marks[index[label]] = "1"
        if "1" in marks:
            yield catalogue_id, nickname or "", "".join(marks)


def _comment(text: str) -> str:
    """MARK comments end at ``*/``; keep a nickname from closing one early."""
    return text.replace("*/", "* /").replace("/*", "/ *")


def mark_inp_stream(options: ExportOptions, occasion: str, months=None):
    """Yield MARK's ``.inp`` lines: ``/* HW-0001 Moby */ 0101001 1;`` (frequency 1 per whale)."""
    for catalogue_id, nickname, history in histories(options, occasion, months):
        label = _comment(f"{catalogue_id} {nickname}".strip())
        yield f"/* {label} */ {history} 1;\n".encode()


def csv_stream(options: ExportOptions, occasion: str, months=None):
    """Yield a CSV: ``catalogue_id,nickname,<occasion labels...>`` then one 1/0 row per whale."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")

    def line(row) -> bytes:
        writer.writerow(row)
        data = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return data.encode()

    yield line(["catalogue_id", "nickname", *occasions(options, occasion, months)])
    for catalogue_id, nickname, history in histories(options, occasion, months):
        yield line([catalogue_id, nickname, *history])
