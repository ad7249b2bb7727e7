"""Loading uploaded photos safely, reading their EXIF, and hashing them.

Choices (documented here because the site relies on them):

* Accepted containers: JPEG (and MPO, the multi-picture JPEG some cameras write, first picture), PNG, WebP,
  TIFF, GIF and (with pillow-heif) HEIC/HEIF. Anything else is :class:`~ml.errors.NotAnImage`; a file that
  starts with one of their signatures but cannot be opened is :class:`~ml.errors.CorruptImage`.
* The pixel count is checked from the header **before** any decoding
  (:class:`~ml.errors.ImageTooLarge` above ``max_pixels``, default :data:`MAX_PIXELS` = 60
  megapixels). Pillow's own decompression-bomb error is also mapped to ``ImageTooLarge``.
* The short side must be at least ``min_side`` pixels (default :data:`MIN_SIDE` = 100): below
  that a fluke's trailing edge is a handful of pixels and identification is meaningless.
* The whole image is decoded up front with truncated images *not* tolerated, so a cut-short
  upload fails here (:class:`~ml.errors.CorruptImage`) and never stalls a queue later.
* Animations and multi-page files: the first frame/page.
* EXIF orientation is applied (``ImageOps.exif_transpose``); a broken orientation tag is ignored.
* Modes: the result is always ``"RGB"`` or ``"L"``.
  ``1``/``L``/``I;16*``/``I``/``F`` become ``L``; everything with colour becomes ``RGB``.
  Transparency (``LA``, ``RGBA``, ``PA``, ``P`` with a transparent index, ...) is composited on
  **white**: transparent regions in a fluke photo are padding, and white is what a person
  looking at the picture in a browser on a light page sees.
  High bit-depth grayscale is rescaled, not clipped: ``I;16`` by 1/257 (full 16-bit range to
  0..255); ``I``/``F`` keep values that already fit 0..255, floats in 0..1 are multiplied by
  255, 16-bit-range data is divided by 257, anything else is stretched min..max to 0..255.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import CorruptImage, ImageRejected, ImageTooLarge, ImageTooSmall, NotAnImage
from .types import ImageHashes

MIN_SIDE = 100
MAX_PIXELS = 60_000_000
NEAR_DUPLICATE_BITS = 6  # pHash distance at or below which two photos count as near-duplicates

_ORIENTATION = 0x0112


def _heif_formats() -> tuple[str, ...]:
    """HEIC/HEIF, what phones send, through pillow-heif's Pillow plugin when it is installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return ()
    register_heif_opener()
    return ("HEIF",)


FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "GIF") + _heif_formats()  # JPEG also opens MPO files

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

__all__ = [
    "MIN_SIDE",
    "MAX_PIXELS",
    "NEAR_DUPLICATE_BITS",
    "FORMATS",
    "ExifInfo",
    "read_bytes",
    "load_image",
    "to_rgb_or_l",
    "read_exif",
    "compute_hashes",
    "phash",
    "hamming",
]


# --------------------------------------------------------------------------- reading


def read_bytes(source: Source) -> bytes:
    """All the bytes of ``source``; a file object is put back where it was."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as fh:
                return fh.read()
        except IsADirectoryError as exc:
            raise NotAnImage(detail=str(exc)) from exc
    if hasattr(source, "read"):
        start = None
        try:
            start = source.tell()
        except (OSError, AttributeError, ValueError):
            pass
        data = source.read()
        if start is not None:
            try:
                source.seek(start)
            except (OSError, ValueError):
                pass
        if isinstance(data, str):
            raise TypeError("open the file in binary mode ('rb')")
        return bytes(data)
    raise TypeError(f"expected a path, bytes or a binary file object, not {type(source).__name__}")


def _open(data: bytes) -> Image.Image:
    if not data:
        raise NotAnImage(detail="empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # corrupt EXIF is not our problem here
        try:
            return Image.open(io.BytesIO(data), formats=FORMATS)
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(detail=str(exc)) from exc
        except UnidentifiedImageError as exc:
            if _looks_like_an_image(data):  # a photo's signature, cut short or garbled after it
                raise CorruptImage(detail=str(exc)) from exc
            raise NotAnImage(detail=str(exc)) from exc
        except Exception as exc:  # a recognised header that then fails to parse
            raise CorruptImage(detail=f"{type(exc).__name__}: {exc}") from exc


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\0", b"MM\0*")
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def _looks_like_an_image(data: bytes) -> bool:
    """The file starts as one of the accepted formats does: so it is a damaged photo (tell the watcher to
    export it again), not a file of another kind (tell them to send a photo)."""
    if data.startswith(_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _check_size(width: int, height: int, min_side: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImage(detail=f"size {width}x{height}")
    if max_pixels and width * height > max_pixels:
        raise ImageTooLarge(detail=f"{width}x{height} = {width * height} pixels > {max_pixels}")
    if min(width, height) < min_side:
        raise ImageTooSmall(
            f"This image is too small to identify a whale ({width}x{height} pixels; the short side "
            f"must be at least {min_side} pixels). Please upload the original, full-size photo.",
            detail=f"{width}x{height}",
        )


def dct_scale(width: int, height: int, short_side: int | None) -> int:
    """The largest JPEG decoder scale (1, 2, 4 or 8) that keeps the short side at least ``short_side``."""
    if not short_side:
        return 1
    scale = 1
    while scale < 8 and min(width, height) // (scale * 2) >= short_side:
        scale *= 2
    return scale


def load_image(
    source: Source,
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
    gray: bool = False,
    short_side: int | None = None,
) -> Image.Image:
    """Open, check, fully decode and normalise an uploaded photo to mode ``"RGB"`` or ``"L"``.

    ``gray=True`` returns mode ``"L"`` (what the localizer and the crop use). For a JPEG the
    decoder is then asked for the luma plane only (``Image.draft("L", full size)``: no colour
    conversion, no chroma upsampling, same pixel grid, so boxes keep their coordinates), about
    twice as fast as decoding RGB and converting; the values match ``convert("L")`` to within
    one grey level. All the checks (header size, truncation, bombs) are the same.

    ``short_side`` (with ``gray``): a large JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
    DCT scaling, which averages like a box filter) while its short side stays at least this long.
    The image's ``info["scale"]`` then says by how much (a pixel of it covers ``scale x scale``
    pixels of the photo), and ``info["original_size"]`` gives the photo's own size; coordinates
    map exactly by the factor. Other images get ``scale`` 1.

    Raises a subclass of :class:`~ml.errors.ImageRejected` for anything we cannot use.
    """
    data = read_bytes(source)
    im = _open(data)
    _check_size(im.width, im.height, min_side, max_pixels)  # from the header, nothing decoded yet
    full_width, full_height = im.size
    scale = _draft_luma(im, short_side) if gray else 1
    _decode(im, data)
    im, (full_width, full_height) = _oriented(im, (full_width, full_height))
    out = to_rgb_or_l(im)
    if gray and out.mode != "L":
        out = out.convert("L")
    out.info.pop("exif", None)
    out.info["scale"] = scale
    out.info["original_size"] = (full_width, full_height)
    return out


def _draft_luma(im: Image.Image, short_side: int | None) -> int:
    """Ask a JPEG's decoder for the luma plane only, at 1/scale while the short side stays at least
    ``short_side``; the scale it will decode at (1 for other formats, or a decoder that cannot)."""
    if im.format not in ("JPEG", "MPO") or im.mode not in ("RGB", "YCbCr", "L"):
        return 1
    full_width, full_height = im.size
    scale = dct_scale(full_width, full_height, short_side)
    try:
        # luma only, at 1/scale: -(-n // scale) is the size libjpeg gives, so it picks exactly that scale
        im.draft("L", (-(-full_width // scale), -(-full_height // scale)))
        return round(full_width / im.size[0])
    except Exception:  # a decoder that cannot: decode normally, convert below
        return 1


def _decode(im: Image.Image, data: bytes) -> None:
    """Decode every pixel now (first frame), turning decoder failures into ``ImageRejected``."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed it globally: still refuse cut-short files
        raise_truncated = True
    else:
        raise_truncated = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            if raise_truncated and im.format in ("JPEG", "MPO") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
                raise OSError("image file is truncated (no end-of-image marker)")
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(detail=str(exc)) from exc
        except MemoryError as exc:
            raise ImageTooLarge(detail="out of memory while decoding") from exc
        except ImageRejected:
            raise
        except Exception as exc:  # OSError (truncated), SyntaxError, struct.error, EOFError, ...
            raise CorruptImage(detail=f"{type(exc).__name__}: {exc}") from exc


def _oriented(im: Image.Image, full_size: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """``im`` turned upright by its EXIF orientation, and the photo's own size turned with it."""
    full_width, full_height = full_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" from garbage segments
            if im.getexif().get(_ORIENTATION, 1) not in (None, 1):  # else exif_transpose only copies
                oriented = ImageOps.exif_transpose(im)
                if oriented is not None:
                    if oriented.size != im.size:  # turned by 90 degrees: so is the photo's own size
                        full_width, full_height = full_height, full_width
                    im = oriented
    except Exception:  # garbage orientation tag: keep the pixels as stored
        pass
    return im, (full_width, full_height)


# --------------------------------------------------------------------------- modes


def _composite_on_white(im: Image.Image, mode: str) -> Image.Image:
    """``im`` (``"LA"`` or ``"RGBA"``) → ``mode`` (``"L"``/``"RGB"``) blended over a white background."""
    background = Image.new(mode, im.size, 255 if mode == "L" else (255, 255, 255))
    background.paste(im.convert(mode), mask=im.getchannel("A"))
    return background


def _scale_numeric(im: Image.Image) -> Image.Image:
    """Modes ``I;16*``, ``I`` and ``F`` → ``L`` (see the module docstring for the rule)."""
    if im.mode.startswith("I;16"):
        a = np.asarray(im).astype(np.float64) / 257.0
    else:
        a = np.asarray(im.convert("F") if im.mode != "F" else im).astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0 and hi <= 1.0 and im.mode == "F":
            a = a * 255.0
        elif lo >= 0 and hi <= 255:
            pass
        elif lo >= 0 and hi <= 65535:
            a = a / 257.0
        elif hi > lo:
            a = (a - lo) * (255.0 / (hi - lo))
        else:
            a = np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def to_rgb_or_l(im: Image.Image) -> Image.Image:
    """Any Pillow mode → ``"RGB"`` or ``"L"`` (transparency composited on white)."""
    mode = im.mode
    if mode in ("RGB", "L"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scale_numeric(im)
    if mode == "P":
        if "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA":
            return _composite_on_white(im.convert("RGBA"), "RGB")
        return im.convert("RGB")
    if mode == "PA":
        return _composite_on_white(im.convert("RGBA"), "RGB")
    if mode in ("LA", "La"):
        return _composite_on_white(im.convert("LA"), "L")
    if mode in ("RGBA", "RGBa"):
        return _composite_on_white(im.convert("RGBA"), "RGB")
    if mode == "L" or mode.startswith("L;"):
        return im.convert("L")
    if mode == "CMYK":
        return im.convert("RGB")
    try:
        return im.convert("RGB")  # RGBX, YCbCr, LAB, HSV, ...
    except Exception as exc:
        raise NotAnImage(detail=f"unsupported mode {mode}") from exc


# --------------------------------------------------------------------------- EXIF


@dataclass(frozen=True)
class ExifInfo:
    """What a sighting form can prefill from a photo. Every field may be ``None``.

    ``taken_at`` is timezone-aware when the camera recorded an offset (``OffsetTimeOriginal``),
    naive (camera-local time) otherwise.
    """

    taken_at: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None


_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004
_OFFSET_TIME_ORIGINAL = 0x9011


def _parse_datetime(value, offset=None) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    if not isinstance(value, str):
        return None
    value = value.strip().strip("\0").strip()
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            dt = datetime.strptime(value[:19] if "S" in fmt else value[:16], fmt)
            break
        except ValueError:
            continue
    else:
        return None
    if dt.year < 1900:
        return None
    if isinstance(offset, bytes):
        offset = offset.decode("ascii", "ignore")
    if isinstance(offset, str):
        offset = offset.strip().strip("\0")
        try:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = offset.lstrip("+-").split(":")
            delta = timedelta(hours=int(hours), minutes=int(minutes))
            if delta <= timedelta(hours=14):
                dt = dt.replace(tzinfo=timezone(sign * delta))
        except (ValueError, IndexError):
            pass
    return dt


def _to_float(value) -> float:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0] / value[1]
    return float(value)


def _gps_coordinate(value, ref, positive: str, negative: str, limit: float) -> float | None:
    try:
        if isinstance(value, (tuple, list)):
            parts = [_to_float(v) for v in value]
            while len(parts) < 3:
                parts.append(0.0)
            degrees = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
        else:
            degrees = _to_float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not math.isfinite(degrees):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    ref = (ref or "").strip().strip("\0").upper()[:1]
    if ref == negative:
        degrees = -abs(degrees)
    elif ref and ref != positive:
        return None
    if abs(degrees) > limit:
        return None
    return round(degrees, 7)


def read_exif(source: Source) -> ExifInfo:
    """Capture time and GPS position from EXIF. Never raises for bad or missing EXIF."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; we just skip it
        return _read_exif(source)


def _read_exif(source: Source) -> ExifInfo:
    try:
        data = read_bytes(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data), formats=FORMATS)
            exif = im.getexif()
    except Exception:
        return ExifInfo()
    taken_at = latitude = longitude = None
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        sub = {}
    try:
        offset = sub.get(_OFFSET_TIME_ORIGINAL)
        for value in (sub.get(_DATETIME_ORIGINAL), sub.get(_DATETIME_DIGITIZED), exif.get(_DATETIME)):
            taken_at = _parse_datetime(value, offset)
            if taken_at is not None:
                break
    except Exception:
        taken_at = None
    try:
        gps = exif.get_ifd(_GPS_IFD)
        if gps:
            latitude = _gps_coordinate(gps.get(2), gps.get(1), "N", "S", 90.0)
            longitude = _gps_coordinate(gps.get(4), gps.get(3), "E", "W", 180.0)
            if latitude is None or longitude is None:
                latitude = longitude = None
    except Exception:
        latitude = longitude = None
    return ExifInfo(taken_at=taken_at, latitude=latitude, longitude=longitude)


# --------------------------------------------------------------------------- hashes


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0, :] /= np.sqrt(2.0)
    return m


_DCT32 = _dct_matrix(32)


def phash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash as 16 hex characters.

    Grayscale, resized to 32x32, 2-D DCT (orthonormal DCT-II as a matrix product), the 8x8 block of
    the lowest frequencies *without* the DC row and column (coefficients 1..8, as in the original
    pHash library), each bit = coefficient above the block's median.
    """
    gray = to_rgb_or_l(image).convert("L")
    small = gray.resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(small, dtype=np.float64)
    dct = _DCT32 @ pixels @ _DCT32.T
    block = dct[1:9, 1:9]
    bits = (block > np.median(block)).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths: {a!r} and {b!r}")
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def compute_hashes(source: Source) -> ImageHashes:
    """sha256 of the file bytes and the pHash of the (oriented) picture.

    Raises :class:`~ml.errors.ImageRejected` if the bytes are not a readable image (no minimum
    size is enforced here, so tiny thumbnails can still be hashed).
    """
    data = read_bytes(source)
    image = load_image(data, min_side=1)
    return ImageHashes(sha256=hashlib.sha256(data).hexdigest(), phash=phash(image))
