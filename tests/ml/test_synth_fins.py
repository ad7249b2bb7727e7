"""Synthetic dolphin dorsal fins (ml.synth_fins): layout, determinism, boxes, sides and identity."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.images import load_image
from ml.synth import SynthSummary
from ml.synth_fins import (
    FIN_CANVAS_W,
    generate_fin_dataset,
    photo_side,
    render_fin,
    render_fin_mask,
    render_fin_photo,
)
from ml.types import NEW_WHALE, Box

ROOT = Path(__file__).resolve().parents[2]
SMALL = (160, 107)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture(scope="module")
def fin_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("fins")
    return generate_fin_dataset(out, individuals=5, photos=(1, 3), seed=3, image_size=SMALL, progress=False, workers=1)


def test_layout_and_csvs(fin_set):
    s = fin_set
    assert isinstance(s, SynthSummary) and s.n_individuals == 5 and s.n_new_whale == 0
    train, boxes = _read(s.csv_path), _read(s.boxes_path)
    assert train[0] == ["Image", "Id"] and boxes[0] == ["Image", "x0", "y0", "x1", "y1"]
    assert len(train) - 1 == len(boxes) - 1 == s.n_images and 5 <= s.n_images <= 15
    assert [r[0] for r in train[1:]] == [r[0] for r in boxes[1:]] == sorted(r[0] for r in train[1:])
    ids = [r[1] for r in train[1:]]
    assert len(set(ids)) == 5 and all(i.startswith("d_") and len(i) == 9 for i in ids)
    assert sorted(p.name for p in Path(s.images_dir).iterdir()) == [r[0] for r in train[1:]]


def test_dataset_boxes_lie_inside_their_images(fin_set):
    for name, *coords in _read(fin_set.boxes_path)[1:]:
        img = load_image(f"{fin_set.images_dir}/{name}")
        x0, y0, x1, y1 = map(float, coords)
        assert img.size == SMALL and img.mode in ("L", "RGB")
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        assert 0.4 < (y1 - y0) / (x1 - x0) < 2.5  # a fin, not a fluke's wide box
        assert (y1 - y0) > 0.2 * img.height


def test_deterministic_per_seed_whatever_the_workers(tmp_path, fin_set):
    again = generate_fin_dataset(
        tmp_path / "again", individuals=5, photos=(1, 3), seed=3, image_size=SMALL, progress=False, workers=2
    )
    assert _read(again.csv_path) == _read(fin_set.csv_path)
    assert _read(again.boxes_path) == _read(fin_set.boxes_path)
    for name, _ in _read(fin_set.csv_path)[1:]:
        assert (Path(again.images_dir) / name).read_bytes() == (Path(fin_set.images_dir) / name).read_bytes()
    other = generate_fin_dataset(
        tmp_path / "other", individuals=5, photos=(1, 3), seed=4, image_size=SMALL, progress=False, workers=1
    )
    assert {r[1] for r in _read(other.csv_path)[1:]} != {r[1] for r in _read(fin_set.csv_path)[1:]}


def test_fixed_counts_and_new_whale(tmp_path):
    s = generate_fin_dataset(
        tmp_path, individuals=8, photos=2, seed=1, image_size=SMALL, progress=False, new_whale_fraction=0.5
    )
    ids = [r[1] for r in _read(s.csv_path)[1:]]
    assert s.n_images == 16 and 0 < s.n_new_whale < 8
    assert ids.count(NEW_WHALE) == 2 * s.n_new_whale
    with pytest.raises(ValueError, match="photos per individual"):
        generate_fin_dataset(tmp_path / "bad", individuals=2, photos=(3, 1), progress=False)


@pytest.mark.parametrize(("ind", "photo"), [(7, 0), (7, 1), (42, 5), (1234, 9)])
def test_box_is_tight_around_the_fin_pixels(ind, photo):
    mask, box = render_fin_mask(ind, photo, SMALL)
    img, photo_box = render_fin_photo(ind, photo, SMALL)
    assert photo_box == box and isinstance(box, Box) and img.size == SMALL
    ys, xs = np.nonzero(mask > 0.5)
    assert xs.size > 200
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (box.x0, box.y0, box.x1, box.y1)
    x0, y0, x1, y1 = (int(v) for v in (box.x0, box.y0, box.x1, box.y1))
    assert mask[y0:y1, x0:x1].mean() > 0.3  # the fin fills its box (a falcate fin: not all of it)
    outside = mask.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() <= 0.5


def test_render_is_deterministic_and_varies():
    a, box_a = render_fin_photo(5, 1, SMALL)
    b, box_b = render_fin_photo(5, 1, SMALL)
    assert box_a == box_b and np.array_equal(np.asarray(a), np.asarray(b))
    c, _ = render_fin_photo(5, 2, SMALL)
    assert not np.array_equal(np.asarray(a.convert("L")), np.asarray(c.convert("L")))
    gray, _ = render_fin_photo(5, 1, SMALL, grayscale=True)
    colour, _ = render_fin_photo(5, 1, (200, 150), grayscale=False)
    assert gray.mode == "L" and colour.mode == "RGB" and colour.size == (200, 150)


def test_two_individuals_differ():
    a, b = render_fin(10), render_fin(11)
    fa, fb = a.left.fin > 0.5, b.left.fin > 0.5
    assert (fa & fb).sum() / (fa | fb).sum() < 0.95
    assert a.bbox != b.bbox


def test_sides_share_the_outline_but_not_the_marks():
    fin = render_fin(77)
    left, right = fin.left, fin.right
    assert np.allclose(left.alpha, right.alpha[:, ::-1]) and np.allclose(left.fin, right.fin[:, ::-1])
    inside = left.alpha > 0.9
    diff = np.abs(left.albedo - right.albedo[:, ::-1])[inside]
    assert (diff > 0.05).mean() > 0.002  # scars of one side are not on the other's mirror image
    assert not np.allclose(left.fin, left.fin[:, ::-1])  # and the outline itself is not symmetric
    sides = {photo_side(77, j) for j in range(12)}
    assert sides == {"left", "right"}
    x0, _, x1, _ = fin.bbox
    assert 0 <= x0 < x1 <= FIN_CANVAS_W


def _canonical_mask(ind: int, photo: int) -> np.ndarray:
    """The fin's mask in its box, 32x32, right-side photos mirrored to the left side's outline."""
    mask, b = render_fin_mask(ind, photo, SMALL)
    crop = mask[int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)]
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((32, 32), Image.Resampling.BILINEAR))
    small = small.astype(np.float32) / 255.0
    return small[:, ::-1] if photo_side(ind, photo) == "right" else small


def test_photos_of_one_individual_look_more_alike_than_photos_of_two():
    masks = {(i, j): _canonical_mask(i, j) for i in range(300, 305) for j in range(4)}

    def iou(a, b):
        return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())

    within, between = [], []
    for (i, j), a in masks.items():
        for (k, m), b in masks.items():
            if (i, j) < (k, m):
                (within if i == k else between).append(iou(a, b))
    assert np.mean(within) > np.mean(between) + 0.05
    hits = sum(
        max((iou(a, b), k) for (k, m), b in masks.items() if (k, m) != (i, j))[1] == i for (i, j), a in masks.items()
    )
    assert hits >= 8  # of 20; chance is about 3 (15 of the 19 others belong to another individual)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "ml", "synth", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_cli_profile_flag(tmp_path):
    fins = _cli("--profile", "dolphin_fin", "--out", tmp_path / "fins", "--individuals", 2, "--photos", 2, "--seed", 1)
    assert fins.returncode == 0, fins.stderr
    ids = {r[1] for r in _read(tmp_path / "fins" / "train.csv")[1:]}
    assert len(ids) == 2 and all(i.startswith("d_") for i in ids)
    assert len(list((tmp_path / "fins" / "images").glob("*.jpg"))) == 4
    flukes = _cli("--out", tmp_path / "flukes", "--individuals", 2, "--photos", 1)
    assert flukes.returncode == 0, flukes.stderr
    assert all(r[1].startswith("w_") for r in _read(tmp_path / "flukes" / "train.csv")[1:])
    bad = _cli("--profile", "seal_face", "--out", tmp_path / "seals")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr and not (tmp_path / "seals").exists()
