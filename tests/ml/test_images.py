from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from ml.errors import CorruptImage, ImageRejected, ImageTooLarge, ImageTooSmall, NotAnImage
from ml.images import (
    MAX_PIXELS,
    MIN_SIDE,
    NEAR_DUPLICATE_BITS,
    compute_hashes,
    hamming,
    load_image,
    phash,
    read_exif,
)
from tests.ml.conftest import encode

# ----------------------------------------------------------------- typed refusals


def test_errors_are_value_errors_with_codes_and_readable_messages():
    codes = {
        NotAnImage: "not_an_image",
        CorruptImage: "corrupt",
        ImageTooSmall: "too_small",
        ImageTooLarge: "too_large",
    }
    for cls, code in codes.items():
        err = cls(detail="libjpeg says no")
        assert isinstance(err, ImageRejected) and isinstance(err, ValueError)
        assert err.code == code
        assert "libjpeg" not in str(err) and len(str(err)) > 20


@pytest.mark.parametrize("data", [b"", b"hello, this is not a picture", b"%PDF-1.4\n%....", b"\x00" * 500])
def test_non_images_are_refused(data):
    with pytest.raises(NotAnImage) as info:
        load_image(data)
    assert "JPEG, PNG, WebP, TIFF or HEIC" in str(info.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF", "WEBP"])
def test_a_photo_cut_inside_its_header_is_damaged_not_another_kind_of_file(textured_rgb, fmt):
    """Cut before Pillow can even identify it, the file still starts as a photo does: the watcher is told to
    export it again ("damaged"), not to send a photo ("not an image")."""
    with pytest.raises(CorruptImage):
        load_image(encode(textured_rgb, fmt)[:14])


def test_unsupported_format_is_not_an_image(textured_rgb):
    with pytest.raises(NotAnImage):
        load_image(encode(textured_rgb, "BMP"))


def test_truncated_jpeg_is_corrupt(textured_rgb):
    data = encode(textured_rgb, "JPEG", quality=90)
    assert load_image(data).size == (240, 160)
    with pytest.raises(CorruptImage) as info:
        load_image(data[: len(data) // 2])
    assert info.value.code == "corrupt"


def test_truncated_png_is_corrupt(textured_rgb):
    data = encode(textured_rgb, "PNG")
    with pytest.raises(CorruptImage):
        load_image(data[: len(data) - 200])


def test_too_small_uses_short_side():
    assert MIN_SIDE == 100
    with pytest.raises(ImageTooSmall) as info:
        load_image(encode(Image.new("RGB", (400, 99))))
    assert "400x99" in str(info.value)
    assert load_image(encode(Image.new("RGB", (400, 100)))).size == (400, 100)
    assert load_image(encode(Image.new("RGB", (40, 30))), min_side=20).size == (40, 30)


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_pixel_bomb_is_refused_from_the_header():
    # 100000 x 100000 claimed, a few bytes of file: must fail before any decode is attempted
    with pytest.raises(ImageTooLarge):
        load_image(_png_header_only(100_000, 100_000))
    # above our cap but below Pillow's own bomb limit
    with pytest.raises(ImageTooLarge):
        load_image(_png_header_only(8000, 8000))
    assert MAX_PIXELS == 60_000_000


def test_small_max_pixels(textured_rgb):
    data = encode(textured_rgb, "PNG")
    with pytest.raises(ImageTooLarge):
        load_image(data, max_pixels=240 * 160 - 1)
    assert load_image(data, max_pixels=240 * 160).size == (240, 160)


# ----------------------------------------------------------------- sources


def test_sources_path_bytes_and_file_object(tmp_path, textured_rgb):
    data = encode(textured_rgb, "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    fh = io.BytesIO(b"JUNK" + data)
    fh.seek(4)
    from_file = load_image(fh)
    assert fh.tell() == 4  # rewound to where it was
    for img in (load_image(path), load_image(str(path)), load_image(data), from_file):
        assert img.size == (240, 160) and img.mode == "RGB"
        assert np.array_equal(np.asarray(img), np.asarray(textured_rgb))


# ----------------------------------------------------------------- modes


def _all_modes():
    rgb = np.zeros((120, 130, 3), np.uint8)
    rgb[:, :65] = (200, 30, 10)
    gray = np.full((120, 130), 77, np.uint8)
    rgba = np.zeros((120, 130, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:60, :, 3] = 255  # top opaque red, bottom transparent
    la = np.zeros((120, 130, 2), np.uint8)
    la[:60, :, 1] = 255
    return {
        "L": (Image.fromarray(gray), "L", 77),
        "LA": (Image.fromarray(la), "L", None),
        "RGB": (Image.fromarray(rgb, "RGB"), "RGB", None),
        "RGBA": (Image.fromarray(rgba), "RGB", None),
        "P": (Image.fromarray(rgb, "RGB").convert("P", palette=Image.Palette.ADAPTIVE), "RGB", None),
        "CMYK": (Image.fromarray(rgb, "RGB").convert("CMYK"), "RGB", None),
        "I;16": (Image.fromarray(np.full((120, 130), 65535, np.uint16)), "L", 255),
        "I": (Image.fromarray(np.full((120, 130), 30000, np.int32)), "L", round(30000 / 257)),
        "F": (Image.fromarray(np.full((120, 130), 0.5, np.float32)), "L", 128),
        "1": (Image.fromarray(gray > 50).convert("1"), "L", 255),
    }


@pytest.mark.parametrize("mode", list(_all_modes()))
def test_every_mode_becomes_rgb_or_l(mode):
    source, expected_mode, expected_value = _all_modes()[mode]
    assert source.mode == mode
    fmt = {"CMYK": "TIFF", "I": "TIFF", "F": "TIFF", "LA": "PNG", "I;16": "PNG"}.get(mode, "PNG")
    img = load_image(encode(source, fmt))
    assert img.mode == expected_mode
    assert img.size == (130, 120)
    arr = np.asarray(img)
    if expected_value is not None:
        assert abs(int(arr[50, 50]) - expected_value) <= 1
    if mode == "RGBA":  # transparent part composited on white
        assert tuple(arr[100, 10]) == (255, 255, 255)
        assert tuple(arr[10, 10]) == (255, 0, 0)
    if mode == "LA":
        assert arr[100, 10] == 255 and arr[10, 10] == 0
    if mode in ("RGB", "P", "CMYK"):
        r, g, b = (int(v) for v in arr[50, 10])
        assert r > 180 and g < 60 and b < 40
        assert tuple(arr[50, 100]) == (0, 0, 0) or max(arr[50, 100]) < 10


def test_p_with_transparency_goes_on_white():
    im = Image.new("P", (120, 120), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 60, 120))
    im.info["transparency"] = 0
    img = load_image(encode(im, "PNG"))
    assert img.mode == "RGB"
    assert tuple(np.asarray(img)[5, 100]) == (255, 255, 255)
    assert tuple(np.asarray(img)[5, 5]) == (255, 0, 0)


# ----------------------------------------------------------------- formats, orientation, frames


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_formats(fmt, textured_rgb):
    img = load_image(encode(textured_rgb, fmt))
    assert img.size == (240, 160) and img.mode == "RGB"
    diff = np.abs(np.asarray(img, np.int16) - np.asarray(textured_rgb, np.int16)).mean()
    assert diff < 12


def test_exif_orientation_is_applied(textured_rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(textured_rgb, "JPEG", exif=exif.tobytes(), quality=95)
    img = load_image(data)
    assert img.size == (160, 240)
    expected = textured_rgb.transpose(Image.Transpose.ROTATE_270)
    assert np.abs(np.asarray(img, np.int16) - np.asarray(expected, np.int16)).mean() < 12


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (120, 110), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = load_image(buf.getvalue())
    assert img.mode == "RGB" and img.size == (120, 110)
    assert tuple(np.asarray(img)[50, 50]) == (255, 0, 0)


def test_multi_page_tiff_uses_first_page():
    pages = [Image.new("L", (120, 120), v) for v in (10, 200)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    assert np.asarray(load_image(buf.getvalue()))[5, 5] == 10


# ----------------------------------------------------------------- EXIF


def _exif_with_gps_and_date(lat_ref="S", lon_ref="W"):
    exif = Image.Exif()
    exif[0x0132] = "2001:01:01 00:00:00"  # DateTime (file changed): not preferred
    exif.get_ifd(0x8769)[0x9003] = "2019:08:14 16:42:07"
    gps = exif.get_ifd(0x8825)
    gps[1] = lat_ref
    gps[2] = (33.0, 51.0, 54.0)
    gps[3] = lon_ref
    gps[4] = (151.0, 12.0, 36.0)
    return exif


def test_read_exif_date_and_gps(textured_rgb):
    data = encode(textured_rgb, "JPEG", exif=_exif_with_gps_and_date().tobytes())
    info = read_exif(data)
    assert info.taken_at == datetime(2019, 8, 14, 16, 42, 7)
    assert info.latitude == pytest.approx(-(33 + 51 / 60 + 54 / 3600), abs=1e-6)
    assert info.longitude == pytest.approx(-(151 + 12 / 60 + 36 / 3600), abs=1e-6)
    north_east = read_exif(encode(textured_rgb, "JPEG", exif=_exif_with_gps_and_date("N", "E").tobytes()))
    assert north_east.latitude > 33.8 and north_east.longitude > 151.2


def test_read_exif_offset_makes_aware_datetime(textured_rgb):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2020:02:03 04:05:06"
    exif.get_ifd(0x8769)[0x9011] = "-03:00"
    info = read_exif(encode(textured_rgb, "JPEG", exif=exif.tobytes()))
    assert info.taken_at.utcoffset().total_seconds() == -3 * 3600


def test_read_exif_never_raises_on_garbage(textured_rgb):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "not a date at all"
    gps = exif.get_ifd(0x8825)
    gps[1] = "Q"
    gps[2] = (1.0, 2.0, 3.0)
    info = read_exif(encode(textured_rgb, "JPEG", exif=exif.tobytes()))
    assert info.taken_at is None and info.latitude is None and info.longitude is None
    assert read_exif(b"not an image").taken_at is None
    assert read_exif(encode(textured_rgb, "PNG")).latitude is None
    # a JPEG whose APP1 EXIF segment is random bytes
    raw = encode(textured_rgb, "JPEG")
    junk = b"Exif\x00\x00MM\x00\x2a" + bytes(range(256)) * 2
    bad = raw[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + raw[2:]
    assert read_exif(bad).latitude is None
    assert load_image(bad).size == (240, 160)


# ----------------------------------------------------------------- hashes


def test_phash_format_and_hamming():
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("00000000000000f0", "0000000000000010") == 3
    with pytest.raises(ValueError):
        hamming("00", "000")
    h = phash(Image.new("RGB", (50, 50), (1, 2, 3)))
    assert len(h) == 16 and int(h, 16) >= 0


def test_hashes_same_picture_reencoded_is_near(textured_rgb):
    png = encode(textured_rgb, "PNG")
    small_jpeg = encode(textured_rgb.resize((180, 120)), "JPEG", quality=40)
    a, b = compute_hashes(png), compute_hashes(small_jpeg)
    assert a.sha256 != b.sha256 and len(a.sha256) == 64
    assert hamming(a.phash, b.phash) <= NEAR_DUPLICATE_BITS
    gray = compute_hashes(encode(textured_rgb.convert("L"), "JPEG", quality=80))
    assert hamming(a.phash, gray.phash) <= NEAR_DUPLICATE_BITS


def test_hashes_different_pictures_are_far(textured_rgb):
    rng = np.random.default_rng(7)
    other = Image.fromarray((rng.random((160, 240)) * 255).astype(np.uint8))
    flipped = textured_rgb.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    base = compute_hashes(encode(textured_rgb)).phash
    assert hamming(base, compute_hashes(encode(other)).phash) > 3 * NEAR_DUPLICATE_BITS
    assert hamming(base, compute_hashes(encode(flipped)).phash) > 3 * NEAR_DUPLICATE_BITS


def test_hash_of_oriented_copy_matches_rotated_copy(textured_rgb):
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged = compute_hashes(encode(textured_rgb, "JPEG", exif=exif.tobytes(), quality=95))
    rotated = compute_hashes(encode(textured_rgb.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95))
    assert hamming(tagged.phash, rotated.phash) <= 2
    with pytest.raises(NotAnImage):
        compute_hashes(b"nope")


# ----------------------------------------------------------------- reduced decode of large JPEGs


def _large_jpeg(size=(3200, 1600), orientation=None) -> bytes:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, size=(size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    im = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    else:
        im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("short_side, scale", [(None, 1), (1600, 1), (800, 2), (400, 4), (200, 8), (50, 8)])
def test_a_large_jpeg_is_decoded_at_the_largest_scale_that_keeps_the_short_side(short_side, scale):
    data = _large_jpeg()
    im = load_image(data, gray=True, short_side=short_side)
    assert im.mode == "L" and im.size == (3200 // scale, 1600 // scale)
    assert im.info["scale"] == scale and im.info["original_size"] == (3200, 1600)
    if scale > 1:  # libjpeg's DCT scaling averages: close to a box-filter reduction of the full decode
        full = load_image(data, gray=True).reduce(scale)
        diff = np.abs(np.asarray(im, dtype=np.float32) - np.asarray(full, dtype=np.float32))
        assert diff.mean() < 2.0


def test_reduced_decode_keeps_the_oriented_size_and_leaves_other_formats_alone():
    im = load_image(_large_jpeg(orientation=6), gray=True, short_side=800)
    assert im.size == (800, 1600) and im.info["scale"] == 2 and im.info["original_size"] == (1600, 3200)
    buf = io.BytesIO()
    Image.open(io.BytesIO(_large_jpeg())).save(buf, "PNG")
    png = load_image(buf.getvalue(), gray=True, short_side=400)
    assert png.size == (3200, 1600) and png.info["scale"] == 1 and png.info["original_size"] == (3200, 1600)
    assert load_image(_large_jpeg(), short_side=400).size == (3200, 1600)  # colour decodes stay full size
