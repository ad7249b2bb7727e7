"""The import's ZIP of photos, opened safely: no member is ever extracted to disk by its own name, and
the whole archive is refused for a path that climbs out (``../``, absolute), for too many bytes
uncompressed in total, or for a member that inflates more than ``IMPORT_MAX_ZIP_RATIO`` times (a zip
bomb). Members are read whole into memory one at a time, bounded by the size they declare."""

from __future__ import annotations

import posixpath
import zipfile

from django.conf import settings
from django.core.exceptions import ValidationError


class ArchiveError(Exception):
    """A member that cannot be read (corrupt, or larger than it declared)."""


def _gb(n: int) -> str:
    return f"{n / 1024**3:.1f} GB"


def _unsafe(name: str) -> bool:
    normal = posixpath.normpath(name.replace("\\", "/"))
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or normal.split("/")[0] == ".."


class PhotoArchive:
    """The ZIP's photos by their path inside it and by their file name (when the name is unique)."""

    def __init__(self, f):
        try:
            self.zip = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise ValidationError("The photos file is not a ZIP archive (or it is damaged).") from None
        infos = [i for i in self.zip.infolist() if not i.is_dir()]
        check_members(infos)
        self.by_path = {i.filename: i for i in infos if not _hidden(i.filename)}
        names: dict[str, list] = {}
        for i in self.by_path.values():
            names.setdefault(posixpath.basename(i.filename).lower(), []).append(i)
        self.by_name = names

    def find(self, photo: str) -> tuple[zipfile.ZipInfo | None, str]:
        """(the member for a sheet's photo name, "") or (None, why not)."""
        photo = photo.strip().replace("\\", "/")
        if photo in self.by_path:
            return self.by_path[photo], ""
        found = self.by_name.get(posixpath.basename(photo).lower(), [])
        if len(found) == 1:
            return found[0], ""
        if found:
            return None, f"{len(found)} files in the ZIP are named {photo!r}; give its path inside the ZIP."
        return None, f"No file named {photo!r} in the ZIP."

    def read(self, path: str) -> bytes:
        info = self.zip.getinfo(path)
        try:
            with self.zip.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            raise ArchiveError(f"The file cannot be read from the ZIP ({type(exc).__name__}: {exc}).") from exc
        if len(data) > info.file_size:
            raise ArchiveError("The file is larger inside the ZIP than the ZIP declares (a damaged or forged ZIP).")
        return data

    def close(self) -> None:
        self.zip.close()


def _hidden(name: str) -> bool:
    """macOS's resource forks and dot files, which every ZIP made in Finder carries."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or posixpath.basename(name).startswith(".")


def check_members(infos) -> None:
    climbing = [i.filename for i in infos if _unsafe(i.filename)]
    if climbing:
        raise ValidationError(
            f"The ZIP is refused: {climbing[0]!r} points outside the archive (path traversal). "
            "Nothing was imported; zip the photos again from their folder."
        )
    total = sum(i.file_size for i in infos)
    if total > settings.IMPORT_MAX_UNCOMPRESSED_BYTES:
        raise ValidationError(
            f"The ZIP is refused: its files add up to {_gb(total)} uncompressed, over the "
            f"{_gb(settings.IMPORT_MAX_UNCOMPRESSED_BYTES)} limit. Split it into several imports."
        )
    ratio = settings.IMPORT_MAX_ZIP_RATIO
    for i in infos:
        if i.file_size > 1024 * 1024 and i.file_size > ratio * max(i.compress_size, 1):
            raise ValidationError(
                f"The ZIP is refused: {i.filename!r} would inflate {i.file_size // max(i.compress_size, 1)} times "
                f"(over {ratio}×; photos barely compress), which is how a zip bomb looks."
            )
