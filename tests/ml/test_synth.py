from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from ml.images import load_image
from ml.preprocess import preprocess
from ml.synth import SynthSummary, generate_dataset, render_individual, render_photo
from ml.types import NEW_WHALE, Box


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return generate_dataset(out, individuals=6, photos=(1, 4), seed=11, progress=False, workers=1)


def test_dataset_files_and_headers(small_set):
    s = small_set
    assert isinstance(s, SynthSummary) and s.n_individuals == 6
    train = _read(s.csv_path)
    boxes = _read(s.boxes_path)
    assert train[0] == ["Image", "Id"]
    assert boxes[0] == ["Image", "x0", "y0", "x1", "y1"]
    assert len(train) - 1 == len(boxes) - 1 == s.n_images
    assert 6 <= s.n_images <= 24
    ids = [row[1] for row in train[1:]]
    assert len(set(ids)) == 6
    assert all(i.startswith("w_") and len(i) == 9 for i in ids)
    counts = {i: ids.count(i) for i in set(ids)}
    assert min(counts.values()) >= 1 and max(counts.values()) <= 4
    assert [r[0] for r in train[1:]] == [r[0] for r in boxes[1:]]
    assert len({r[0] for r in train[1:]}) == s.n_images


def test_boxes_lie_inside_their_images_and_cover_the_fluke(small_set):
    images_dir = small_set.images_dir
    for name, x0, y0, x1, y1 in _read(small_set.boxes_path)[1:]:
        img = load_image(f"{images_dir}/{name}")
        x0, y0, x1, y1 = map(float, (x0, y0, x1, y1))
        assert img.size == (320, 214)
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        assert (x1 - x0) > 0.3 * img.width and (x1 - x0) > 1.3 * (y1 - y0)  # a wide fluke
        assert img.mode in ("L", "RGB")


def test_render_photo_is_deterministic_and_varies():
    a, box_a = render_photo(123, 7)
    b, box_b = render_photo(123, 7)
    assert box_a == box_b and isinstance(box_a, Box)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    c, box_c = render_photo(123, 8)
    assert box_c != box_a or not np.array_equal(np.asarray(a), np.asarray(c))
    gray, _ = render_photo(123, 7, grayscale=True)
    colour, _ = render_photo(123, 7, grayscale=False, size=(400, 260))
    assert gray.mode == "L" and colour.mode == "RGB" and colour.size == (400, 260)


def test_dataset_is_deterministic_by_seed(tmp_path, small_set):
    again = generate_dataset(tmp_path / "again", individuals=6, photos=(1, 4), seed=11, progress=False, workers=2)
    assert _read(again.csv_path) == _read(small_set.csv_path)
    assert _read(again.boxes_path) == _read(small_set.boxes_path)
    first = _read(small_set.csv_path)[1][0]
    assert (tmp_path / "again" / "images" / first).read_bytes() == open(f"{small_set.images_dir}/{first}", "rb").read()
    other = generate_dataset(tmp_path / "other", individuals=6, photos=(1, 4), seed=12, progress=False, workers=1)
    assert {r[1] for r in _read(other.csv_path)[1:]} != {r[1] for r in _read(small_set.csv_path)[1:]}


def test_fixed_photo_count_grayscale_fraction_and_new_whale(tmp_path):
    s = generate_dataset(
        tmp_path,
        individuals=5,
        photos=2,
        seed=3,
        progress=False,
        grayscale_fraction=1.0,
        new_whale_fraction=1.0,
        workers=1,
    )
    rows = _read(s.csv_path)[1:]
    assert s.n_images == 10 and len(rows) == 10
    assert all(label == NEW_WHALE for _, label in rows) and s.n_new_whale == 5
    assert all(Image.open(f"{s.images_dir}/{name}").mode == "L" for name, _ in rows)
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "bad", individuals=2, photos=(3, 1), seed=0, progress=False)


def test_individuals_are_distinct_but_photos_of_one_are_related():
    # The identity signal: pigmentation crops of the same individual correlate better than of different ones
    def crop(ind, photo):
        img, box = render_photo(ind, photo, grayscale=True, jpeg_quality=95)
        return preprocess(img, box, size=64).ravel()

    inds = [101, 202, 303, 404, 505, 606]
    same, diff = [], []
    for k, ind in enumerate(inds):
        a, b = crop(ind, 1), crop(ind, 2)
        same.append(np.corrcoef(a, b)[0, 1])
        diff.append(np.corrcoef(a, crop(inds[(k + 1) % len(inds)], 2))[0, 1])
    assert np.mean(same) > np.mean(diff)
    assert not np.array_equal(render_individual(101).albedo, render_individual(202).albedo)
    ind = render_individual(101)
    assert ind.albedo.shape == ind.alpha.shape and 0 <= ind.albedo.min() and ind.albedo.max() <= 1


# Pixel hashes of fluke photos and of a whole data set, taken before ml.synth shared its sea, light, camera and
# data set writer with ml.synth_fins: the fluke output for a given seed must not change.
_FLUKE_PIXELS = [
    ((123, 7, {}), "1401a1a57b2a5d7e", Box(20.0, 103.0, 193.0, 156.0)),
    ((5, 1, {"grayscale": True}), "fd0b4803a8ac4e3b", Box(42.0, 60.0, 265.0, 140.0)),
    ((99, 3, {"size": (400, 260), "grayscale": False}), "fa870b0146cf16dd", Box(38.0, 154.0, 320.0, 242.0)),
    ((2024, 11, {"jpeg_quality": 80}), "5778544d96e86004", Box(13.0, 101.0, 291.0, 146.0)),
]


@pytest.mark.parametrize(("args", "digest", "box"), _FLUKE_PIXELS)
def test_fluke_photos_are_unchanged_for_their_seeds(args, digest, box):
    import hashlib

    ind, photo, kw = args
    img, got = render_photo(ind, photo, **kw)
    assert got == box
    assert hashlib.sha256(np.asarray(img).tobytes()).hexdigest()[:16] == digest


def test_fluke_data_set_is_unchanged_for_its_seed(tmp_path):
    import hashlib

    s = generate_dataset(
        tmp_path, individuals=3, photos=(1, 3), seed=5, progress=False, workers=1, new_whale_fraction=0.3
    )
    h = hashlib.sha256()
    for name in ["train.csv", "boxes.csv"] + sorted(p.name for p in (tmp_path / "images").iterdir()):
        path = tmp_path / name if name.endswith(".csv") else tmp_path / "images" / name
        h.update(name.encode())
        h.update(path.read_bytes())
    assert (s.n_images, s.n_new_whale, h.hexdigest()[:16]) == (7, 2, "ca3fb9392ffa68a1")
