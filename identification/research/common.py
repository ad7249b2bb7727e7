"""What the research exports share: the confirmed photos, names, coordinates and streaming."""

from __future__ import annotations

import math
import mimetypes
from dataclasses import dataclass
from datetime import date
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import Coalesce

from submissions.models import Photo

from ..models import Decision, Species
from ..permissions import MANAGE_MODELS_PERMISSION

CHUNK_ROWS = 2000  # rows per database round trip (``.iterator(chunk_size=...)``)
FLUSH_BYTES = 256 * 1024  # hand what was written to the response once this much is waiting
METRES_PER_DEGREE = 111_320  # at the equator: the upper bound, so uncertainty is never understated
CONFIRMING_ACTIONS = (Decision.Action.CONFIRM, Decision.Action.NEW_INDIVIDUAL)


@dataclass(frozen=True)
class ExportOptions:
    """What every export may be narrowed to, and at which coordinate precision (None = as recorded)."""

    start: date | None = None
    end: date | None = None
    species: Species | None = None
    decimals: int | None = None


def coordinate_decimals(user) -> int | None:
    """Administrators get coordinates as recorded; moderators at ``MODERATOR_COORDINATE_DECIMALS``."""
    if user is not None and user.has_perm(MANAGE_MODELS_PERMISSION):
        return None
    return settings.MODERATOR_COORDINATE_DECIMALS


def round_coordinate(value: float | None, decimals: int | None) -> str:
    if value is None:
        return ""
    return repr(float(value)) if decimals is None else f"{value:.{decimals}f}"


def rounding_uncertainty_m(decimals: int | None) -> str:
    """The radius that rounding to ``decimals`` adds (half a cell's diagonal), in whole metres.
    Empty when coordinates are as recorded: the GPS's own uncertainty is not known to the site."""
    if decimals is None:
        return ""
    return str(math.ceil(METRES_PER_DEGREE * 10**-decimals * math.sqrt(2) / 2))


def confirming_decisions():
    """The final, not undone confirm / new-individual decision of the outer photo, newest first."""
    return Decision.objects.filter(
        photo=OuterRef("pk"), action__in=CONFIRMING_ACTIONS, undone_at__isnull=True, pending=False
    ).order_by("-created_at")


def photos_with_whale(options: ExportOptions, base=None):
    """Photos annotated with ``whale_id`` / ``whale_catalogue_id`` / ``whale_nickname`` (a merged
    whale counts as the one it was merged into) and who confirmed them, when."""
    qs = (Photo.objects.all() if base is None else base).observed_between(options.start, options.end)
    if options.species is not None:
        qs = qs.filter(species=options.species)  # each photo's own species: one sighting can hold a fluke and a fin
    decisions = confirming_decisions()
    return qs.select_related("species", "sighting__species", "sighting__submitted_by").annotate(
        whale_id=Coalesce(F("individual__merged_into_id"), F("individual_id")),
        whale_catalogue_id=Coalesce(F("individual__merged_into__catalogue_id"), F("individual__catalogue_id")),
        whale_nickname=Coalesce(F("individual__merged_into__nickname"), F("individual__nickname")),
        confirmed_by_id=Subquery(decisions.values("moderator_id")[:1]),
        confirmed_at=Subquery(decisions.values("created_at")[:1]),
    )


def confirmed_photos(options: ExportOptions):
    """The catalogue: photos a moderator confirmed as a known whale or named as a new one."""
    return photos_with_whale(options, Photo.objects.in_gallery())


def not_an_email(name: str) -> str:
    """Exports never carry e-mail addresses, even one typed as a name."""
    name = " ".join((name or "").split())
    return "" if "@" in name else name


def display_name(user) -> str:
    """A person's public name: their full name, else a user name that is not an e-mail address."""
    if user is None:
        return ""
    return not_an_email(user.get_full_name()) or not_an_email(user.get_username())


class People:
    """Display names by user id, read once each (moderators are few; rows are many)."""

    def __init__(self):
        self.names: dict[int, str] = {}

    def name(self, user_id: int | None) -> str:
        if user_id is None:
            return ""
        if user_id not in self.names:
            user = get_user_model().objects.filter(pk=user_id).first()
            self.names[user_id] = display_name(user)
        return self.names[user_id]


def photographer(sighting) -> str:
    """Who took the photos: the observer named on the sighting, else the uploader."""
    return not_an_email(sighting.observer_name) or display_name(sighting.submitted_by)


def photo_url(photo) -> str:
    """The photo's absolute address (``SITE_URL`` joined with the storage URL)."""
    if not photo.image:
        return ""
    return urljoin(settings.SITE_URL.rstrip("/") + "/", photo.image.url)


def photo_format(photo) -> str:
    return mimetypes.guess_type(photo.image.name or "")[0] or "image/jpeg"


def site_host() -> str:
    return urlsplit(settings.SITE_URL).hostname or "whalesite"


def iso(moment) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def clean_cell(value) -> str:
    """Tab-separated files carry no tabs or line breaks inside a value."""
    return " ".join(str(value).split()) if value is not None else ""


class StreamSink:
    """A write-only file object for ``zipfile`` and text writers: what is written waits in
    ``parts`` until the generator takes it and yields it to the response."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.offset = 0
        self.waiting = 0

    def write(self, data) -> int:
        data = data.encode() if isinstance(data, str) else bytes(data)
        self.parts.append(data)
        self.offset += len(data)
        self.waiting += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def full(self) -> bool:
        return self.waiting >= FLUSH_BYTES

    def take(self) -> bytes:
        data, self.parts, self.waiting = b"".join(self.parts), [], 0
        return data


def write_to_file(chunks, path) -> int:
    """Write an export's chunks to ``path`` (the management command); returns the bytes written."""
    written = 0
    with open(path, "wb") as fh:
        for chunk in chunks:
            if chunk:
                fh.write(chunk)
                written += len(chunk)
    return written
