from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ml.preprocess import (
    EvalTransform,
    TrainTransform,
    affine_crop,
    crop_box,
    expand_box,
    preprocess,
    standardize,
    widen_to_aspect,
)
from ml.types import Box

# A fluke box chosen so that the seed-000 numbers come out round (computed by hand):
#   box x 200..300 (dx=100), y 100..182.5 (dy=82.5) in a 500x300 picture
#   expand: x0 = 200-10 = 190, x1 = 300+15+1 = 316, y0 = 100-8.25 = 91.75, y1 = 182.5+8.25+1 = 191.75
#   dx' = 126, dy' = 100; 126 < 2.09*100 = 209, so x grows by (209-126)/2 = 41.5 on each side
#   widened: x 148.5..357.5, y 91.75..191.75  (209 x 100)
BOX = Box(200.0, 100.0, 300.0, 182.5)
EXPANDED = (190.0, 91.75, 316.0, 191.75)
WIDENED = (148.5, 91.75, 357.5, 191.75)


def _tuple(b: Box):
    return (b.x0, b.y0, b.x1, b.y1)


def test_expand_box_hand_computed():
    assert _tuple(expand_box(BOX, 500, 300)) == pytest.approx(EXPANDED)


def test_expand_box_clips_to_the_picture():
    # dx = dy = 100 at the top-left corner of a 150x140 picture
    b = expand_box(Box(5, 8, 105, 108), 150, 140)
    # x0 = 5-10 -> 0, y0 = 8-10 -> 0, x1 = 105+15+1 = 121, y1 = 108+10+1 = 119
    assert _tuple(b) == pytest.approx((0, 0, 121, 119))
    b = expand_box(Box(60, 50, 140, 135), 150, 140)  # x1 = 140+12+1 -> 150, y1 = 135+8.5+1 -> 140
    assert _tuple(b) == pytest.approx((52, 41.5, 150, 140))


def test_widen_to_aspect_both_branches():
    assert _tuple(widen_to_aspect(Box(*EXPANDED))) == pytest.approx(WIDENED)
    # wide box: 418 x 100 > 2.09*100, so y grows to 418/2.09 = 200, i.e. 50 on each side
    assert _tuple(widen_to_aspect(Box(0, 100, 418, 200))) == pytest.approx((0, 50, 418, 250))
    w = widen_to_aspect(Box(3, 4, 50, 70), aspect=1.5)
    assert w.width / w.height == pytest.approx(1.5)


def test_crop_box_is_expand_then_widen():
    assert _tuple(crop_box(BOX, 500, 300)) == pytest.approx(WIDENED)


def test_affine_crop_geometry_is_pinned_on_a_linear_ramp():
    # Bilinear interpolation of a linear function is exact, so every output pixel tells where it sampled:
    # output column u samples x = 148.5 + (u + 0.5) * 209/224 and pixel i holds the value at its centre i+0.5.
    xs = np.arange(500, dtype=np.float32)
    ys = np.arange(300, dtype=np.float32)
    ramp_x = Image.fromarray(np.tile(xs + 0.5, (300, 1)))  # mode "F": value = x of the pixel centre
    ramp_y = Image.fromarray(np.tile((ys + 0.5)[:, None], (1, 500)))
    out_x = affine_crop(ramp_x, Box(*WIDENED), 224)
    out_y = affine_crop(ramp_y, Box(*WIDENED), 224)
    assert out_x.shape == (224, 224) and out_x.dtype == np.float32
    u = np.arange(224)
    np.testing.assert_allclose(out_x[10], 148.5 + (u + 0.5) * 209 / 224, atol=1e-3)
    np.testing.assert_allclose(out_y[:, 10], 91.75 + (u + 0.5) * 100 / 224, atol=1e-3)
    # corners: first and last samples
    assert out_x[0, 0] == pytest.approx(148.5 + 0.5 * 209 / 224, abs=1e-3)
    assert out_y[223, 0] == pytest.approx(191.75 - 0.5 * 100 / 224, abs=1e-3)


def test_preprocess_crop_of_a_white_rectangle_is_all_white():
    # black picture, white exactly over the widened box (rounded inwards): the crop is white inside
    arr = np.zeros((300, 500), np.uint8)
    arr[92:191, 149:357] = 255
    crop = affine_crop(Image.fromarray(arr).convert("RGB"), crop_box(BOX, 500, 300), 224)
    # (one input row is 2.24 output rows; rows 91 and 191 are only partly inside the box and were left black)
    assert crop[5:-5, 5:-5].min() == pytest.approx(255, abs=0.5)
    assert crop[0, 100] < 200 and crop[-1, 100] < 50
    assert crop.mean() > 250
    # the fluke box alone (before margins) covers only the middle of the crop
    arr2 = np.zeros((300, 500), np.uint8)
    arr2[100:182, 200:300] = 255
    crop2 = affine_crop(Image.fromarray(arr2), crop_box(BOX, 500, 300), 224)
    # x: box 200..300 -> columns (200-148.5)*224/209 = 55.2 .. 162.3; y: 100..182 -> rows 18.5 .. 201
    assert crop2[110, 60:158].min() > 250 and crop2[110, :50].max() < 5 and crop2[110, 168:].max() < 5
    assert crop2[25:195, 110].min() > 250 and crop2[:15, 110].max() < 5 and crop2[207:, 110].max() < 5


def test_border_is_filled_with_the_picture_mean():
    arr = np.zeros((120, 200), np.uint8)
    arr[:, :100] = 200  # mean 100
    crop = affine_crop(Image.fromarray(arr), Box(-200, 0, 0, 120), 32)  # entirely left of the picture
    np.testing.assert_allclose(crop, 100.0, atol=1e-3)


def test_preprocess_whole_picture_and_standardisation():
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((150, 300, 3)) * 255).astype(np.uint8))
    z = preprocess(img, None, size=64)
    assert z.shape == (64, 64) and z.dtype == np.float32
    assert abs(float(z.mean())) < 1e-4 and float(z.std()) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(standardize(np.full((4, 4), 7.0)), np.zeros((4, 4), np.float32))


def test_upside_down_rotates_picture_and_box_together():
    rng = np.random.default_rng(1)
    arr = (rng.random((200, 320)) * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    box = Box(40, 30, 250, 130)
    upright = preprocess(img, box, size=96)
    flipped_img = img.rotate(180)
    flipped_box = Box(320 - 250, 200 - 130, 320 - 40, 200 - 30)
    restored = preprocess(flipped_img, flipped_box, size=96, upside_down=True)
    np.testing.assert_allclose(restored, upright, atol=1e-4)
    assert not np.allclose(preprocess(flipped_img, flipped_box, size=96), upright, atol=0.1)


def test_antialias_keeps_geometry_for_large_pictures():
    # 10x downscale: the reduced path must sample the same places as the plain one on a smooth ramp
    xs = np.arange(3000, dtype=np.float32)
    ramp = Image.fromarray(np.tile((xs + 0.5) / 12.0, (1000, 1)).astype(np.float32))
    box = Box(500, 100, 2590, 1100)
    a = affine_crop(ramp, box, 200, antialias=True)
    b = affine_crop(ramp, box, 200, antialias=False)
    np.testing.assert_allclose(a[50, 5:-5], b[50, 5:-5], atol=0.05)


def test_eval_transform_shape_and_values():
    crop = standardize(np.random.default_rng(2).random((64, 64)))
    t = EvalTransform(64)(crop)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and tuple(t.shape) == (1, 64, 64)
    np.testing.assert_allclose(t[0].numpy(), crop)


def test_train_transform_is_random_deterministic_and_never_flips_vertically():
    crop = standardize(np.random.default_rng(3).random((64, 64)))
    a = TrainTransform(64, seed=5)
    b = TrainTransform(64, seed=5)
    ta, tb = a(crop), b(crop)
    assert tuple(ta.shape) == (1, 64, 64) and ta.dtype == torch.float32
    torch.testing.assert_close(ta, tb)
    assert not torch.allclose(a(crop), ta)  # the next draw differs
    # only translation/rotation/zoom/hflip: a top-bright picture stays top-bright
    top = np.zeros((64, 64), np.float32)
    top[:20] = 3.0
    t = TrainTransform(64, hflip=True, rotation=20, zoom=0.2, shift=0.0, seed=0)
    for _ in range(20):
        out = t(top)[0]
        assert out[:20].mean() > out[44:].mean() + 1.0
    params = [TrainTransform(64, rotation=20, zoom=0.2, shift=0.2, seed=9).sample_params() for _ in range(1)]
    tt = TrainTransform(64, hflip=False, rotation=20, zoom=0.2, shift=0.2, seed=9)
    draws = [tt.sample_params() for _ in range(200)]
    assert draws[0] == params[0]
    assert all(abs(d["angle"]) <= 20 and 0.8 <= d["scale"] <= 1.2 and not d["flip"] for d in draws)
    assert all(abs(v) <= 0.2 * 64 for d in draws for v in d["translate"])
    assert max(abs(d["angle"]) for d in draws) > 15


def test_train_transform_hflip_draws_both_ways():
    t = TrainTransform(32, hflip=True, seed=4)
    flips = [t.sample_params()["flip"] for _ in range(100)]
    assert 20 < sum(flips) < 80


def test_train_transform_strength_scales_every_range():
    tf = TrainTransform(32, rotation=20, zoom=0.2, shift=0.2, seed=3)
    tf.strength = 0.25
    params = [tf.sample_params() for _ in range(400)]
    assert max(abs(p["angle"]) for p in params) <= 5.0 and max(abs(p["angle"]) for p in params) > 4.0
    assert all(0.95 <= p["scale"] <= 1.05 for p in params)
    assert max(abs(t) for p in params for t in p["translate"]) <= 0.05 * 32 + 1e-9
    tf.strength = 0.0  # no augmentation at all: the batch comes back as it went in
    x = torch.randn(4, 1, 32, 32)
    assert torch.allclose(tf.apply_batch(x), x, atol=1e-5)


def _whole_photo_crop(img: Image.Image, box: Box, size: int) -> np.ndarray:
    """The seed-000 crop written the plain way: a float copy of the whole photo, its float64 mean as the fill."""
    gray = img.convert("L") if img.mode not in ("L", "F") else img
    mean = float(np.asarray(gray).mean(dtype=np.float64))
    x0, y0, x1, y1 = box.x0, box.y0, box.x1, box.y1
    factor = int(min((x1 - x0) / size, (y1 - y0) / size))
    if factor >= 2:
        gray = gray.reduce(factor)
        x0, y0, x1, y1 = x0 / factor, y0 / factor, x1 / factor, y1 / factor
    out = gray.convert("F").transform(
        (size, size),
        Image.Transform.AFFINE,
        ((x1 - x0) / size, 0.0, x0, 0.0, (y1 - y0) / size, y0),
        resample=Image.Resampling.BILINEAR,
        fillcolor=mean,
    )
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_affine_crop_of_the_reachable_region_equals_the_whole_photo_crop(seed):
    # affine_crop only converts and resamples the part of the photo a box can reach: boxes inside, across the
    # edges, wholly outside, and large enough to be reduced first must all give the whole-photo result exactly
    rng = np.random.default_rng(seed)
    for _ in range(60):
        w, h = int(rng.integers(60, 900)), int(rng.integers(60, 700))
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
        img = Image.fromarray(arr) if rng.random() < 0.7 else Image.fromarray(np.stack([arr] * 3, -1))
        bw = float(rng.uniform(0.05, 2.0)) * w
        x0, y0 = float(rng.uniform(-1.2 * w, 1.1 * w)), float(rng.uniform(-1.2 * h, 1.1 * h))
        box = Box(x0, y0, x0 + bw, y0 + bw / float(rng.uniform(1.0, 3.0)))
        size = int(rng.choice([32, 64, 224]))
        np.testing.assert_array_equal(affine_crop(img, box, size), _whole_photo_crop(img, box, size))


def _ramp_crop(size: int = 64) -> torch.Tensor:
    y, x = np.mgrid[0:size, 0:size]
    a = np.sin(x / 5.0) + np.cos(y / 7.0)
    return torch.as_tensor(((a - a.mean()) / a.std()).astype(np.float32))[None]


def test_photometric_transform_changes_appearance_not_geometry_and_stays_standardized():
    from ml.preprocess import PhotometricTransform

    crop = _ramp_crop()
    out = PhotometricTransform(p=1.0, occlusion=0.0, seed=0)(crop)
    assert out.shape == crop.shape and abs(float(out.mean())) < 1e-4 and abs(float(out.std()) - 1) < 1e-3
    assert not torch.allclose(out, crop, atol=1e-2)  # contrast, gamma, blur, JPEG and noise all applied
    corr = float(torch.corrcoef(torch.stack([out.ravel(), crop.ravel()]))[0, 1])
    assert corr > 0.8  # the same picture in the same place: photometric only
    # each op alone, at full strength, moves the crop
    for op in ("contrast", "gamma", "blur", "jpeg", "noise", "occlusion"):
        t = PhotometricTransform(p=1.0, seed=1)
        params = t.sample_params()
        t.sample_params = lambda params=params, op=op: {k: (v if k == op else None) for k, v in params.items()}
        assert not torch.allclose(t(crop), crop, atol=1e-3), op


def test_photometric_transform_is_reproducible_and_off_at_p_zero():
    from ml.preprocess import PhotometricTransform

    crop = _ramp_crop()
    a, b = PhotometricTransform(seed=3), PhotometricTransform(seed=3)
    assert torch.equal(a.apply_batch(torch.stack([crop] * 3)), b.apply_batch(torch.stack([crop] * 3)))
    assert torch.allclose(PhotometricTransform(p=0.0, seed=0)(crop), crop, atol=1e-3)


def test_train_transform_applies_photometric_before_the_warp_only_when_asked():
    from ml.preprocess import PhotometricTransform

    batch = torch.stack([_ramp_crop()] * 2)
    geometric = TrainTransform(64, rotation=0, zoom=0, shift=0, seed=0)
    assert torch.allclose(geometric.apply_batch(batch), batch, atol=1e-4)  # no geometry, no photometry
    both = TrainTransform(64, rotation=0, zoom=0, shift=0, seed=0, photometric=PhotometricTransform(p=1.0))
    both.reseed([0, 1])
    assert not torch.allclose(both.apply_batch(batch), batch, atol=1e-2)
    assert "PhotometricTransform" in repr(both)
