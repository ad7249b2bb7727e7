"""The bad-input corpus: every kind of bad (or merely unusual) input a watcher's upload can carry, built at
test time from synthetic pixels (never from real photos), as a table that ``test_corpus.py`` sends through
the real upload form, each kind alone and beside a good photo.

A kind says what it sends (``files``: ``(name, bytes, content type)`` built on demand; ``fields``: form
values that replace the good ones) and what a watcher must see:

* ``refused``: the file is turned away with ``needle`` in its message; a good photo beside it is kept;
* ``accepted``: an odd but usable photo, saved and queued (``needle``, if any, is a notice shown too);
  ``saved`` is how many of its files become photos (a file sent twice is saved once);
* ``form``: a form value is wrong: ``needle`` is shown on ``field``, nothing is saved half-way, and the
  page says which photos to choose again (a browser cannot refill a file input);
* ``too_big``: the request is over the per-upload cap and answered 413 before its body is read.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as default

import numpy as np
from PIL import Image

File = tuple[str, bytes, str]  # (file name, bytes, content type)

JPEG, PNG = "image/jpeg", "image/png"


@dataclass(frozen=True)
class Kind:
    name: str
    expect: str  # refused | accepted | form | too_big
    files: Callable[[], list[File]] = list
    needle: str = ""
    fields: dict = default(default_factory=dict)
    field: str = ""  # the form field the message belongs to (expect == "form")
    saved: int | None = None  # photos saved from ``files`` (accepted; default: all of them)
    settings: dict = default(default_factory=dict)
    size: tuple[int, int] | None = None  # the saved photo's (width, height) as displayed, where it is known

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------- pixels


def pixels(size=(640, 400), seed=0, mode="RGB") -> Image.Image:
    """A smooth random picture (so JPEG keeps it small), different for every seed."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4}[mode]
    a = rng.integers(0, 255, size=(max(1, size[1] // 8), max(1, size[0] // 8), channels), dtype=np.uint8)
    im = Image.fromarray(a[..., 0] if channels == 1 else a, mode)
    return im.resize(size, Image.Resampling.BILINEAR)


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def good_photo(seed: int = 7) -> File:
    return ("good-fluke.jpg", encode(pixels(seed=seed), "JPEG", quality=90), JPEG)


def jpeg(seed=1, size=(640, 400), **options) -> bytes:
    return encode(pixels(size, seed), "JPEG", quality=90, **options)


def png(seed=1, size=(640, 400), mode="RGB") -> bytes:
    return encode(pixels(size, seed, mode), "PNG")


def with_exif(seed: int, tags: dict[int, object], gps: dict[int, object] | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if gps:
        exif[0x8825] = gps  # the GPS IFD
    return encode(pixels((640, 400), seed), "JPEG", quality=90, exif=exif.tobytes())


def oriented(orientation: int) -> Kind:
    """A 640x400 JPEG with EXIF orientation ``orientation``: displayed 400x640 for 5-8 (turned by 90)."""
    size = (400, 640) if orientation >= 5 else (640, 400)
    return Kind(
        f"exif-orientation-{orientation}",
        "accepted",
        lambda: [(f"orient{orientation}.jpg", with_exif(30 + orientation, {0x0112: orientation}), JPEG)],
        size=size,
    )


def corrupt_exif() -> bytes:
    """A JPEG whose APP1 Exif segment is garbage after a valid-looking TIFF header."""
    data = jpeg(seed=3)
    junk = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 400) + b"\xff\x13" * 200
    segment = b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk
    return data[:2] + segment + data[2:]


def sof_claims(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim ``width`` x ``height``."""
    data = bytearray(jpeg(seed=4))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_text_bomb() -> bytes:
    """A normal PNG carrying a zTXt chunk that inflates to 64 MB (a zip bomb in a text chunk)."""
    data = png(seed=5)
    body = b"Comment\0\0" + zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk + data[end:]


def png_bad_crc() -> bytes:
    data = bytearray(png(seed=6))
    at = data.index(b"IDAT") + 4 + 10
    data[at] ^= 0xFF  # a flipped byte inside the compressed pixels: the chunk's CRC no longer matches
    return bytes(data)


def bomb_png(size=(9000, 8000)) -> bytes:
    """A few kilobytes of 1-bit PNG whose pixels are over the 60-megapixel cap."""
    return encode(Image.new("1", size), "PNG")


def sixteen_bit_png() -> bytes:
    a = (np.linspace(0, 65535, 640 * 400).reshape(400, 640)).astype(np.uint16)
    return encode(Image.fromarray(a), "PNG")  # mode I;16


def animated_gif() -> bytes:
    frames = [pixels(seed=s).convert("P") for s in (40, 41, 42)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def multipage_tiff() -> bytes:
    out = io.BytesIO()
    pages = [pixels(seed=s) for s in (50, 51, 52)]
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    return out.getvalue()


def bogus_tiff() -> bytes:
    """A TIFF header whose first IFD points past the end of the file."""
    return b"II*\0" + struct.pack("<I", 10_000_000) + b"\0" * 200


def palette_transparent_png() -> bytes:
    im = pixels(seed=8).convert("P")
    return encode(im, "PNG", transparency=0)


def heif(seed: int) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(pixels(seed=seed)).save(out, format="HEIF")
    return out.getvalue()


def gps_out_of_range() -> bytes:
    # latitude 123 degrees N, longitude 200 degrees E: impossible, so EXIF gives no position
    return with_exif(60, {}, gps={1: "N", 2: (123.0, 0.0, 0.0), 3: "E", 4: (200.0, 0.0, 0.0)})


def exif_dates_bad() -> bytes:
    return with_exif(61, {0x0132: "0000:00:00 00:00:00"})


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def zip_file() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("whale.jpg", b"\0" * 1_000_000)
    return out.getvalue()


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script><img src=x></body></html>"
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="640" height="400">'
    b'<script>alert(1)</script><rect width="640" height="400" fill="navy"/></svg>'
)
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 200
NOT_AN_IMAGE = "not an image we can read"
DAMAGED = "damaged or incomplete"
TOO_SMALL = "too small to identify a whale"
TOO_MANY_PIXELS = "too many pixels"
FAR_FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()


def value(name: str, form_field: str, text: str, needle: str) -> Kind:
    """A form value that is wrong: ``needle`` shown on that field."""
    return Kind(name, "form", fields={form_field: text}, needle=needle, field=form_field)


def _files(*files: File) -> Callable[[], list[File]]:
    return lambda: list(files)


def _lazy(name: str, build: Callable[[], bytes], content_type: str = JPEG) -> Callable[[], list[File]]:
    return lambda: [(name, build(), content_type)]


KINDS: list[Kind] = [
    # ---------------------------------------------------------------- files that are not usable photos
    Kind("empty-file", "refused", _files(("empty.jpg", b"", JPEG)), "empty"),
    Kind("truncated-jpeg", "refused", _lazy("cut.jpg", lambda: jpeg(seed=2, size=(1024, 768))[:5000]), DAMAGED),
    Kind("truncated-png", "refused", _lazy("cut.png", lambda: png(seed=2)[:3000], PNG), DAMAGED),
    Kind("jpeg-header-only", "refused", _lazy("header.jpg", lambda: jpeg(seed=2)[:20]), DAMAGED),
    Kind("png-bad-crc", "refused", _lazy("crc.png", png_bad_crc, PNG), DAMAGED),
    Kind("truncated-gif", "refused", _lazy("cut.gif", lambda: animated_gif()[:400], "image/gif"), DAMAGED),
    Kind("truncated-webp", "refused", _lazy("cut.webp", lambda: encode(pixels(), "WEBP")[:300], "image/webp"), DAMAGED),
    Kind("tiff-bad-ifd", "refused", _files(("bogus.tif", bogus_tiff(), "image/tiff")), DAMAGED),
    Kind("text-named-jpg", "refused", _files(("fake.jpg", b"plain text, not a JPEG\n" * 40, JPEG)), NOT_AN_IMAGE),
    Kind("text-file", "refused", _files(("notes.txt", b"whales!\n", "text/plain")), "can't be used as a photo"),
    Kind("html-with-script", "refused", _files(("page.html", HTML, "text/html")), "can't be used as a photo"),
    Kind("html-named-jpg", "refused", _files(("page.jpg", HTML, JPEG)), NOT_AN_IMAGE),
    Kind("svg-with-script", "refused", _files(("drawing.svg", SVG, "image/svg+xml")), "can't be used as a photo"),
    Kind("svg-named-png", "refused", _files(("drawing.png", SVG, PNG)), NOT_AN_IMAGE),
    Kind("pdf", "refused", _files(("report.pdf", pdf(), "application/pdf")), "can't be used as a photo"),
    Kind("pdf-named-jpg", "refused", _files(("report.jpg", pdf(), JPEG)), NOT_AN_IMAGE),
    Kind("executable-named-jpg", "refused", _files(("run.jpg", ELF, JPEG)), NOT_AN_IMAGE),
    Kind("gzip-named-jpg", "refused", _lazy("photo.jpg", lambda: gzip.compress(jpeg(seed=27))), NOT_AN_IMAGE),
    Kind("zip-named-jpg", "refused", _lazy("archive.jpg", zip_file), NOT_AN_IMAGE),
    Kind("jpeg-named-exe", "refused", _lazy("photo.exe", jpeg, "application/octet-stream"), ".exe"),
    Kind("bmp", "refused", _lazy("scan.bmp", lambda: encode(pixels(), "BMP"), "image/bmp"), ".bmp"),
    Kind("decompression-bomb-png", "refused", _lazy("bomb.png", bomb_png, PNG), TOO_MANY_PIXELS),
    Kind("jpeg-claims-huge-size", "refused", _lazy("huge.jpg", lambda: sof_claims(60000, 60000)), TOO_MANY_PIXELS),
    Kind("over-pixel-cap-png", "refused", _lazy("big.png", lambda: bomb_png((8000, 7600)), PNG), TOO_MANY_PIXELS),
    Kind("png-ztxt-bomb", "refused", _lazy("ztxt.png", png_text_bomb, PNG), DAMAGED),
    Kind("one-pixel", "refused", _lazy("dot.png", lambda: png(size=(1, 1)), PNG), TOO_SMALL),
    Kind("thin-strip", "refused", _lazy("strip.jpg", lambda: jpeg(size=(2000, 60))), TOO_SMALL),
    Kind("corrupt-heic", "refused", _lazy("IMG_0001.HEIC", lambda: heif(70)[:600], "image/heic"), DAMAGED),
    Kind(
        "heic-brand-garbage",
        "refused",
        _files(("IMG_0002.heic", b"\0\0\0\x18ftypheic" + b"\x00\x01" * 500, "image/heic")),
        DAMAGED,
    ),  # noqa: E501
    Kind(
        "over-per-file-cap",
        "refused",
        _lazy("large.jpg", lambda: jpeg(seed=9, size=(1600, 1200))),
        "limit per photo",
        settings={"MAX_UPLOAD_BYTES": 200_000},  # the good photo beside it is ~75 KB,
    ),
    Kind("no-extension-text", "refused", _files(("README", b"hello", "text/plain")), "no file extension"),
    Kind("path-traversal-text", "refused", _files(("../../../etc/passwd", b"root:x:0:0\n", "text/plain")), "passwd"),
    # ---------------------------------------------------------------- odd but usable photos
    Kind("cmyk-jpeg", "accepted", _lazy("cmyk.jpg", lambda: encode(pixels(seed=10, mode="CMYK"), "JPEG"))),
    Kind("sixteen-bit-png", "accepted", _lazy("deep.png", sixteen_bit_png, PNG)),
    Kind("animated-gif", "accepted", _lazy("anim.gif", animated_gif, "image/gif")),
    Kind("multipage-tiff", "accepted", _lazy("pages.tif", multipage_tiff, "image/tiff")),
    Kind("webp", "accepted", _lazy("fluke.webp", lambda: encode(pixels(seed=11), "WEBP"), "image/webp")),
    Kind("grayscale-jpeg", "accepted", _lazy("gray.jpg", lambda: encode(pixels(seed=12, mode="L"), "JPEG"))),
    Kind("rgba-png", "accepted", _lazy("alpha.png", lambda: png(seed=13, mode="RGBA"), PNG)),
    Kind("palette-transparent-png", "accepted", _lazy("pal.png", palette_transparent_png, PNG)),
    Kind("progressive-jpeg", "accepted", _lazy("prog.jpg", lambda: jpeg(seed=14, progressive=True))),
    Kind("heic", "accepted", _lazy("IMG_0003.HEIC", lambda: heif(71), "image/heic")),
    Kind("heif", "accepted", _lazy("IMG_0004.heif", lambda: heif(72), "image/heif")),
    Kind("corrupt-exif", "accepted", _lazy("badexif.jpg", corrupt_exif)),
    Kind("gps-exif-out-of-range", "accepted", _lazy("gps.jpg", gps_out_of_range)),
    Kind("exif-date-zero", "accepted", _lazy("zero-date.jpg", exif_dates_bad)),
    *(oriented(n) for n in range(1, 9)),
    Kind("png-named-jpg", "accepted", _lazy("really-png.jpg", lambda: png(seed=15), JPEG)),
    Kind("jpeg-named-png", "accepted", _lazy("really-jpeg.png", lambda: jpeg(seed=16), PNG)),
    Kind("lying-content-type", "accepted", _lazy("fluke.jpg", lambda: jpeg(seed=17), "application/x-msdownload")),
    Kind("trailing-garbage", "accepted", _lazy("tail.jpg", lambda: jpeg(seed=18) + b"\x00GARBAGE" * 100)),
    Kind("no-extension-jpeg", "accepted", _lazy("IMG_0005", lambda: jpeg(seed=19), JPEG)),
    Kind("uppercase-extension", "accepted", _lazy("DSC_0001.JPEG", lambda: jpeg(seed=20))),
    Kind("unicode-name", "accepted", _lazy("hnúfubakur 🐋 スキャン.jpg", lambda: jpeg(seed=21))),
    Kind("very-long-name", "accepted", _lazy("w" * 400 + ".jpg", lambda: jpeg(seed=22))),
    Kind("path-traversal-name", "accepted", _lazy("../../../../tmp/evil.jpg", lambda: jpeg(seed=23))),
    Kind("nul-in-name", "accepted", _lazy("whale\x00.php.jpg", lambda: jpeg(seed=24))),
    Kind("html-in-name", "accepted", _lazy('<img src=x onerror="alert(1)">.jpg', lambda: jpeg(seed=25))),
    Kind("smallest-usable", "accepted", _lazy("small.jpg", lambda: jpeg(seed=26, size=(100, 100))), size=(100, 100)),
    # ---------------------------------------------------------------- the upload as a whole
    Kind(
        "same-file-twice",
        "accepted",
        lambda: [("twice-a.jpg", jpeg(seed=28), JPEG), ("twice-b.jpg", jpeg(seed=28), JPEG)],
        "the same photo as twice-a.jpg",
        saved=1,
    ),
    Kind(
        "too-many-files",
        "form",
        lambda: [(f"{n}.jpg", jpeg(seed=100 + n, size=(120, 120)), JPEG) for n in range(21)],
        "At most 20 photos",
        field="photos",
    ),
    Kind(
        "over-request-cap",
        "too_big",
        lambda: [(f"pad{n}.jpg", jpeg(seed=130 + n) + b"\0" * 400_000, JPEG) for n in range(3)],
        "limit for one upload",
        settings={"MAX_REQUEST_BYTES": 1024 * 1024},
    ),
    # ---------------------------------------------------------------- form values
    value("missing-date", "observed_date", "", "Give the date"),
    value("bad-date", "observed_date", "2024-13-45", "valid date"),
    value("words-for-date", "observed_date", "last tuesday", "valid date"),
    value("nul-in-date", "observed_date", "2024-07-01\x00", "valid date"),
    value("future-date", "observed_date", FAR_FUTURE, "in the future"),
    value("date-0001", "observed_date", "0001-01-01", "can't be before"),
    value("date-1899", "observed_date", "1899-12-31", "can't be before"),
    value("bad-time", "observed_time", "25:61", "valid time"),
    value("latitude-over-90", "latitude", "91", "between -90 and 90"),
    value("longitude-under-180", "longitude", "-181", "between -180 and 180"),
    value("latitude-words", "latitude", "sixty-six", "decimal degrees"),
    value("longitude-nan", "longitude", "NaN", "decimal degrees"),
    value("latitude-infinite", "latitude", "1e309", "decimal degrees"),
    value("latitude-dms", "latitude", "66°03'N", "decimal degrees"),
    value("latitude-only", "longitude", "", "Give both latitude and longitude"),
    value("missing-species", "species", "", "Choose the species"),
    value("unknown-species", "species", "999999", "not in our list"),
    value("species-not-a-number", "species", "humpback", "not in our list"),
    value("place-too-long", "place_name", "p" * 201, "at most 200 characters"),
    value("bad-licence", "licence", "ALL-MINE", "valid choice"),
    Kind("nul-in-place", "accepted", fields={"place_name": "Skjálf\x00andi"}, needle="invisible control characters"),
    Kind("nul-in-notes", "accepted", fields={"notes": "fluke\x00 up"}, needle="invisible control characters"),
    Kind("notes-over-limit", "accepted", fields={"notes": "n" * 6000}, needle="longer than 5000 characters"),
    Kind("script-in-notes", "accepted", fields={"notes": "<script>alert(1)</script>"}),
]
